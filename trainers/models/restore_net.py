"""A small residual CNN for restoration and super-resolution that a CPU trains in minutes.

In the spirit of DnCNN/ARCNN (a plain stack of 3x3 convolutions that predicts the correction
to its input) with two borrowings: FFDNet's pixel unshuffle, which runs the body at half the
resolution (four times fewer pixels for the same width, twice the receptive field: JPEG's 8x8
blocks and a 2x blur need one), and EDSR's residual blocks without normalisation (no batch
statistics: a batch of 8 crops trains as it validates, and a tile is computed exactly as it
would be inside the whole picture).

The output is the (bicubic-upscaled) input plus the correction. The last convolution starts at
zero, so at initialisation the network returns its input exactly, at any size: every gain is
learned, and a single weight matrix at zero still gets its gradient (no saddle, unlike a gate in
front of a zero head). Inputs come normalised by (mean, std), as the U-Net's; outputs are
images in [0, 1] (unclamped).
"""

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled and added (EDSR). The scale keeps a deep stack stable at the
    one-cycle peak rate without normalisation."""

    def __init__(self, width: int, res_scale: float = 0.2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1)
        )
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.res_scale * self.body(x)


class RestoreCNN(nn.Module):
    def __init__(
        self,
        scale: int = 1,
        width: int = 64,
        blocks: int = 6,
        unshuffle: int = 2,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    ):
        """scale: the output is scale times the input (super-resolution). unshuffle: the body runs
        on a grid this many times coarser than the input (1: the input's own grid)."""
        super().__init__()
        self.scale, self.unshuffle = int(scale), int(unshuffle)
        self.register_buffer("in_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("in_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        d, up = self.unshuffle, self.unshuffle * self.scale
        self.head = nn.Sequential(nn.Conv2d(3 * d * d, width, 3, padding=1), nn.ReLU(inplace=True))
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.tail = nn.Conv2d(width, 3 * up * up, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x):
        base = x * self.in_std + self.in_mean
        if self.scale > 1:
            base = F.interpolate(base, scale_factor=self.scale, mode="bicubic", align_corners=False)
        h, w = x.shape[-2:]
        d = self.unshuffle
        # Odd sides: pad to the coarse grid, crop the answer back. Always padded (by 0 on even
        # sides) rather than under an `if`, so an exported trace keeps this for every size.
        x = F.pad(x, (0, (-w) % d, 0, (-h) % d), mode="replicate")
        y = F.pixel_unshuffle(x, d) if d > 1 else x
        y = self.tail(self.body(self.head(y)))
        y = F.pixel_shuffle(y, d * self.scale) if d * self.scale > 1 else y
        return base + y[..., : h * self.scale, : w * self.scale]

    def layer_groups(self) -> list:
        return [self]
