"""Tiled inference: a picture of any size through an image-to-image network, in overlapping
tiles of the size it trained on, blended without seams.

One function for every place a restoration network meets a whole picture: the restore run's
validation, the Try tab (restore, super-resolution, gan) and the benchmarks, so the score a run
reports is the one a person sees. Tiles bound the memory a large photo needs, and a network
with statistics over its input (the U-Net's group norm and self-attention) sees pictures of the
size it learned on.

Each tile's output is weighted by a ramp that rises from the tile's edges over the overlap, where
its convolutions saw zero padding instead of the picture; the weights are normalised per pixel,
so a pixel covered by one tile keeps that tile's value, and the tiles cross-fade where they
overlap instead of meeting at a hard line. torch has no such function (F.fold sums without
weights; it would still need the ramp), hence this one.
"""

import torch


def tile_starts(length: int, tile: int, stride: int) -> list:
    """Starts of the tiles along one side: every `stride`, the last one flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(n: int, overlap: int, device=None) -> torch.Tensor:
    """(n,) weights: rising over `overlap` from each end, 1 in the middle, never 0."""
    i = torch.arange(n, dtype=torch.float32, device=device)
    if overlap <= 0:
        return torch.ones(n, device=device)
    return torch.minimum((i + 0.5) / overlap, (n - i - 0.5) / overlap).clamp(max=1.0)


def default_overlap(tile: int) -> int:
    return max(tile // 4, min(16, tile // 2))


@torch.inference_mode()
def tiled(
    model, x: torch.Tensor, tile: int, overlap: int | None = None, scale: int = 1, batch: int = 8
) -> torch.Tensor:
    """model(x) for x (B, C, H, W) computed in tiles of side `tile` (input pixels) overlapping
    by `overlap`; the model's output is `scale` times its input. Pictures no larger than one
    tile go through whole."""
    b, _, h, w = x.shape
    if h <= tile and w <= tile:
        return model(x).float()
    overlap = default_overlap(tile) if overlap is None else overlap
    stride = max(1, tile - overlap)
    th, tw = min(tile, h), min(tile, w)
    boxes = [(top, left) for top in tile_starts(h, th, stride) for left in tile_starts(w, tw, stride)]
    s = scale
    weight = ramp(th * s, overlap * s, x.device)[:, None] * ramp(tw * s, overlap * s, x.device)[None, :]
    out = total = None
    for i in range(0, len(boxes), max(1, batch // b)):
        chunk = boxes[i : i + max(1, batch // b)]
        tiles = torch.cat([x[..., top : top + th, left : left + tw] for top, left in chunk])
        pred = model(tiles).float()
        if out is None:
            out = pred.new_zeros(b, pred.shape[1], h * s, w * s)
            total = pred.new_zeros(1, 1, h * s, w * s)
        for k, (top, left) in enumerate(chunk):
            region = (..., slice(top * s, (top + th) * s), slice(left * s, (left + tw) * s))
            out[region] += pred[k * b : (k + 1) * b] * weight
            total[region] += weight
    return out / total
