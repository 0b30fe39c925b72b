"""Heatmaps of where a classifier looks: CAM (the course's lesson 6), Grad-CAM and Layer-CAM.

All hook a layer with the self-removing hooks of `hooks.py`, work with any channel count,
and return a map with ReLU applied and normalised to [0, 1], upsampled to the input's size.
Grad-CAM and Layer-CAM take the layer's gradient with a hook on its output tensor, which
sees every path that uses the output (a U-Net's skip connections too); the deprecated
non-full module backward hooks gave wrong gradients on modules with several operations, a
bug fastai users met, and even full ones miss the skip connections.
"""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .hooks import hook_live_output, hook_output, no_inplace


CONV = (nn.Conv2d, nn.ConvTranspose2d)  # a generator's layers are transposed convolutions


def conv_layers(model: nn.Module) -> list:
    """[(name, module)] that Grad-CAM can use: every module whose output is a feature map,
    here the convolutions and the blocks built from them (ResNet layers and blocks)."""
    names = []
    for name, m in model.named_modules():
        if not name:
            continue
        if isinstance(m, CONV) or (any(isinstance(c, CONV) for c in m.modules())
                                        and not isinstance(m, (nn.ModuleList, nn.ModuleDict))):
            names.append((name, m))
    return names


def default_layer(model: nn.Module) -> str:
    """The last block of the pretrained-style body (a classifier's `body`, a U-Net's `encoder`):
    the course's choice, coarse but class-specific; else the last convolutional layer."""
    for attr in ("body", "encoder"):
        body = getattr(model, attr, None)
        if isinstance(body, nn.Sequential) and len(body):
            for name, m in model.named_modules():
                if m is body[-1]:
                    return name
    layers = conv_layers(model)
    if not layers:
        raise ValueError("This model has no convolutional layer to make a heatmap from.")
    return layers[-1][0]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if not name or name not in modules:
        raise ValueError(f"The model has no layer named {name!r}; pick one from the list.")
    return modules[name]


def upsample_to_input(maps: torch.Tensor, size) -> torch.Tensor:
    """(B, 1, h, w) -> (B, 1, H, W), each cell put where the network computed it.

    A stride-s convolution with 'same' padding (every ResNet layer) centres its output cell j
    on input pixel s*j, the top-left of its s x s window, not on the window's middle, which is
    where `interpolate(align_corners=False)` would put it. At layer4 (s = 32) that half-cell
    shift is 16 pixels and moved heatmap peaks off small objects. So: bilinear between cells
    at pixels j*H/h, held constant past the last one."""
    (h, w), (H, W) = maps.shape[-2:], size
    if (h, w) == (H, W):
        return maps

    def coords(cells, pixels):  # pixel p -> cell p*cells/pixels, as grid_sample's [-1, 1]
        if cells == 1:
            return torch.zeros(pixels, device=maps.device)
        return torch.arange(pixels, device=maps.device, dtype=maps.dtype) * cells / pixels / (cells - 1) * 2 - 1

    gy, gx = torch.meshgrid(coords(h, H), coords(w, W), indexing="ij")
    grid = torch.stack([gx, gy], -1).expand(maps.shape[0], H, W, 2)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _normalise(maps: torch.Tensor, size) -> torch.Tensor:
    """(B, h, w) -> (B, H, W) in [0, 1]: ReLU, upsample, divide by the maximum."""
    maps = upsample_to_input(F.relu(maps)[:, None].float(), size)[:, 0]
    peak = maps.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    return (maps / peak).clamp(0, 1)


def class_indices(logits: torch.Tensor, class_index=None) -> torch.Tensor:
    """(B,) classes to explain: `class_index` (an int or one per picture), or by default the
    predicted class; for per-pixel scores (B, C, H, W) the class predicted on most pixels."""
    if class_index is None:
        if logits.dim() == 4:
            votes = F.one_hot(logits.argmax(1), logits.shape[1]).flatten(1, 2).sum(1)
            return votes.argmax(1)
        return logits.argmax(1)
    if isinstance(class_index, int):
        if not 0 <= class_index < logits.shape[1]:
            raise ValueError(f"Class {class_index} does not exist: the model has {logits.shape[1]} classes.")
        return torch.full((logits.shape[0],), class_index, dtype=torch.long, device=logits.device)
    return torch.as_tensor(class_index, device=logits.device)


def class_score(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The scores whose gradient Grad-CAM follows, summed over the batch. A classifier's
    (B, C): the target logit. A segmenter's (B, C, H, W): the target class's logits summed over
    the pixels predicted as that class (all pixels where it is predicted nowhere), so the map
    says what made the network paint that region."""
    if logits.dim() == 2:
        return logits.gather(1, target[:, None]).sum()
    if logits.dim() != 4:
        raise ValueError("Grad-CAM needs class scores, (B, classes) or (B, classes, H, W), from the model.")
    chosen = logits.gather(1, target[:, None, None, None].expand(-1, 1, *logits.shape[2:]))[:, 0]
    region = (logits.argmax(1) == target[:, None, None]).float()
    region = torch.where(region.flatten(1).sum(1)[:, None, None] > 0, region, torch.ones_like(region))
    return (chosen * region.detach()).sum()


def activations_and_gradients(model: nn.Module, x: torch.Tensor, class_index=None, layer: str | None = None) -> tuple:
    """(activations, gradients of the class score) of `layer`, both (B, C, h, w), hooked with
    self-removing hooks; in-place activations are off meanwhile and the model is left as it was."""
    layer = layer or default_layer(model)
    module = find_layer(model, layer)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad(), no_inplace(model), hook_live_output(module) as out:
            # The layer's output is on the graph even in a frozen body, or when it is the first layer.
            x = x.detach().clone().requires_grad_(True)
            logits = model(x)
            target = class_indices(logits, class_index)
            score = class_score(logits, target)
            a, g = out.stored, None
            if isinstance(a, torch.Tensor) and a.requires_grad:
                # The gradient at the layer only: backward() would go on through the rest of the
                # body to every weight, most of a ResNet-18 heatmap's time on a CPU.
                (g,) = torch.autograd.grad(score, a, allow_unused=True)
                a = a.detach()
    finally:
        model.train(was_training)
    if g is None or a.dim() != 4:
        raise ValueError(f"Layer {layer!r} does not give a feature map (B, C, H, W); pick a convolutional layer.")
    return a.float(), g.float()


def grad_cam(model: nn.Module, x: torch.Tensor, class_index=None, layer: str | None = None) -> torch.Tensor:
    """Grad-CAM heatmaps (B, H, W) in [0, 1] for `class_index` (default: the predicted class):
    the hooked layer's activations weighted by the mean gradient of the class score per
    channel, then ReLU and normalised. Works for classifiers and for segmenters (see
    `class_score`)."""
    a, g = activations_and_gradients(model, x, class_index, layer)
    weights = g.mean(dim=(2, 3), keepdim=True)
    return _normalise((weights * a).sum(1), x.shape[-2:])


def layer_cam(model: nn.Module, x: torch.Tensor, class_index=None, layer: str | None = None) -> torch.Tensor:
    """Layer-CAM (Jiang et al., 2021): like Grad-CAM, but each position's activations are
    weighted by the positive gradient at that position rather than by the channel's mean.
    At a coarse layer a channel's mean gradient mixes the evidence of every cell (and a max-
    pooling head sends a channel's whole gradient to one cell), so Grad-CAM can light up cells
    the class score does not depend on; Layer-CAM keeps where the gradient came from."""
    a, g = activations_and_gradients(model, x, class_index, layer)
    return _normalise((F.relu(g) * a).sum(1), x.shape[-2:])


@torch.no_grad()
def cam(model: nn.Module, x: torch.Tensor, class_index=None) -> torch.Tensor:
    """CAM (B, H, W) in [0, 1], the course's way: hook the body's last activations and weight
    them by the head. The head is applied to each position's feature vector as if it were the
    pooled one, which for a pool-then-linear head is exactly CAM's weighted sum of channels."""
    body, head = getattr(model, "body", None), getattr(model, "head", None)
    if body is None or head is None:
        raise ValueError("CAM needs a classifier made of a body and a head; use Grad-CAM for this model.")
    was_training = model.training
    model.eval()
    try:
        with hook_output(body) as acts:
            logits = model(x)
        a = acts.stored                                 # (B, C, h, w)
        b, c, h, w = a.shape
        # Each position as a 1x1 feature map: average and max pooling both give the vector itself.
        positions = a.permute(0, 2, 3, 1).reshape(b * h * w, c, 1, 1)
        scores = head(positions).reshape(b, h, w, -1)  # (B, h, w, classes)
    finally:
        model.train(was_training)
    target = class_indices(logits, class_index)
    maps = scores[torch.arange(b), :, :, target]       # (B, h, w)
    # Shift so the least class-like position is 0, then ReLU and normalise as Grad-CAM does.
    maps = maps - maps.flatten(1).min(1).values[:, None, None]
    return _normalise(maps, x.shape[-2:])


def peak(heatmap: torch.Tensor) -> tuple:
    """(row, column) of the hottest pixel of one (H, W) map."""
    index = int(heatmap.flatten().argmax())
    return divmod(index, heatmap.shape[-1])


def colourise(heatmap) -> np.ndarray:
    """(H, W) in [0, 1] -> (H, W, 3) uint8 in a jet-like colour scale (blue cold, red hot)."""
    v = np.asarray(heatmap, dtype=np.float32).clip(0, 1)
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def overlay(image: Image.Image, heatmap, opacity: float = 0.5) -> Image.Image:
    """The picture with the heatmap laid over it at `opacity` (0 = picture only)."""
    heat = Image.fromarray(colourise(heatmap)).resize(image.size, Image.BILINEAR)
    return Image.blend(image.convert("RGB"), heat, float(np.clip(opacity, 0, 1)))
