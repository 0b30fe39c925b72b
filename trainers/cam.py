"""Heatmaps of where a classifier looks: CAM (the course's lesson 6) and Grad-CAM.

Both hook a layer with the self-removing hooks of `hooks.py`, work with any channel count,
and return a map with ReLU applied and normalised to [0, 1], upsampled to the input's size.
Grad-CAM uses full backward hooks (the deprecated non-full ones gave wrong gradients on
modules with several operations, a bug fastai users met).
"""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .hooks import hook_output, hook_output_grad, no_inplace


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
    """The last convolutional block: the course's choice, coarse but class-specific."""
    body = getattr(model, "body", None)
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


def _normalise(maps: torch.Tensor, size) -> torch.Tensor:
    """(B, h, w) -> (B, H, W) in [0, 1]: ReLU, upsample, divide by the maximum."""
    maps = F.relu(maps)[:, None]
    maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0]
    peak = maps.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    return (maps / peak).clamp(0, 1)


def _class_indices(logits: torch.Tensor, class_index):
    if class_index is None:
        return logits.argmax(1)
    if isinstance(class_index, int):
        if not 0 <= class_index < logits.shape[1]:
            raise ValueError(f"Class {class_index} does not exist: the model has {logits.shape[1]} classes.")
        return torch.full((logits.shape[0],), class_index, dtype=torch.long, device=logits.device)
    return torch.as_tensor(class_index, device=logits.device)


def grad_cam(model: nn.Module, x: torch.Tensor, class_index=None, layer: str | None = None) -> torch.Tensor:
    """Grad-CAM heatmaps (B, H, W) in [0, 1] for `class_index` (default: the predicted class):
    the hooked layer's activations weighted by the mean gradient of the class score per
    channel, then ReLU and normalised."""
    layer = layer or default_layer(model)
    module = find_layer(model, layer)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad(), no_inplace(model), \
                hook_output(module) as acts, hook_output_grad(module) as grads:
            x = x.detach().clone().requires_grad_(True)  # the hook fires even for the first layer
            logits = model(x)
            target = _class_indices(logits, class_index)
            score = logits.gather(1, target[:, None]).sum()
            model.zero_grad(set_to_none=True)
            score.backward()
            a, g = acts.stored, grads.stored
        model.zero_grad(set_to_none=True)
    finally:
        model.train(was_training)
    if a is None or g is None or a.dim() != 4:
        raise ValueError(f"Layer {layer!r} does not give a feature map (B, C, H, W); pick a convolutional layer.")
    weights = g.mean(dim=(2, 3), keepdim=True)
    return _normalise((weights * a).sum(1), x.shape[-2:])


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
    target = _class_indices(logits, class_index)
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
