"""Losses for image-to-image tasks: the perceptual (feature) loss with a Gram-matrix style term,
as in the course's lesson 14, and plain pixel L1.

Restoration targets carry their baseline alongside the clean image (see paired_data), so every
loss here takes `target[:, 0]` when the target has that extra axis.
"""
import torch
import torch.nn.functional as F
from torch import nn

from .augment import IMAGENET_MEAN, IMAGENET_STD
from .image_metrics import ssim
from .models.vgg_features import layers_before_pools


def clean_target(target: torch.Tensor) -> torch.Tensor:
    """(B, 2, C, H, W) restoration targets -> the clean images (B, C, H, W)."""
    return target[:, 0] if target.dim() == 5 else target


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """Per image: (B, C, H, W) -> (B, C, C) by batch matrix multiply, scaled by C*H*W."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


class PixelL1(nn.Module):
    name = "pixel L1"

    def forward(self, pred, target):
        return F.l1_loss(pred, clean_target(target))


class PixelSSIM(nn.Module):
    """(1 - a) x L1 + a x (1 - SSIM), a = 0.84: Zhao et al., "Loss Functions for Image Restoration
    with Neural Networks" (2017) found this mix better than L1 or L2 alone, on PSNR and on
    perceived quality, for demosaicking, denoising and JPEG artefacts. It needs no downloaded
    weights. SSIM compares local means, contrasts and structure in 11 px Gaussian windows, so it
    rewards restored edges and texture that a per-pixel L1 averages away."""

    name = "L1 + SSIM"

    def __init__(self, ssim_weight: float = 0.84):
        super().__init__()
        self.ssim_weight = ssim_weight

    def forward(self, pred, target):
        target = clean_target(target)
        pred = pred.float()
        l1 = F.l1_loss(pred, target)
        return (1 - self.ssim_weight) * l1 + self.ssim_weight * (1 - ssim(pred, target, clamp=False).mean())


class FeatureLoss(nn.Module):
    """L1 on pixels + weighted L1 on VGG activations before three max pools + weighted L1 on
    their Gram matrices. Images come in [0, 1] and are ImageNet-normalised here."""

    name = "feature loss (VGG16-BN)"

    def __init__(self, features: nn.Sequential, layer_weights=(20.0, 70.0, 10.0), gram_weight=5e3, first_pool=2):
        super().__init__()
        ids = layers_before_pools(features)[first_pool:first_pool + len(layer_weights)]
        self.layer_ids = ids
        self.features = features[: max(ids) + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.layer_weights = tuple(layer_weights)
        self.gram_weight = gram_weight
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode=True):
        super().train(mode)
        self.features.eval()  # the VGG's batch norm statistics stay ImageNet's
        return self

    def activations(self, x):
        x = (x - self.mean) / self.std
        found = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layer_ids:
                found.append(x)
        return found

    def forward(self, pred, target):
        target = clean_target(target)
        pred = pred.float()
        with torch.no_grad():
            wanted = self.activations(target.float())
        got = self.activations(pred)
        loss = F.l1_loss(pred, target)
        for g, t, w in zip(got, wanted, self.layer_weights):
            loss = loss + w * F.l1_loss(g, t)
            loss = loss + self.gram_weight * w**2 * F.l1_loss(gram_matrix(g), gram_matrix(t))
        return loss
