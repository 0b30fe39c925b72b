"""Restoration and super-resolution: a U-Net turns crappy images into clean ones.

The model predicts a correction added to its (upscaled) input, starting at zero (open_correction),
so it begins exactly at the baseline and every gain is learned. The loss is the course's
perceptual loss on an ImageNet-trained VGG16-BN when its weights are at hand, else pixel L1; the
run's log and info["loss"] say which.
"""
import random

import torch
from torch import nn

from ..errors import ConfigError, WeightsUnavailable
from ..grid import captioned, side_by_side, to_pil
from ..image_metrics import PSNR, SSIM, InputPSNR, InputSSIM, psnr
from ..losses import FeatureLoss, PixelL1
from ..models.unet import NORMS, UNet
from ..models.vgg_features import pretrained_vgg_features, vgg_weights_present
from ..models.weights import weights_file
from ..data import read_manifest
from ..paired_data import RestorePairs, read_scale, scan_pairs
from .registry import register
from .base import Setting, Task, TaskParts
from .segment import check_unet_config, input_stats

LOSSES = ("feature", "pixel")
VALID_SIDE = 256  # validation crops up to this side (RestorePairs says why)


def open_correction(model, gain=1.0):
    """Start the correction at zero with its gate open: a zero head behind a gate of `gain`.

    UNet's gate starts at 0 in front of a random head: the correction is then a product of two
    factors that each get a gradient only through the other (a saddle), and the gate stayed under
    0.01 for 144 steps: no gain over the input (issue 5). A zero head behind an open gate learns
    from the first step; the one-cycle warm-up (lr/25) keeps those first steps small. Only the
    initial values change, so checkpoints still load into a plain UNet."""
    with torch.no_grad():
        model.residual_gate.gain.fill_(gain)
        nn.init.zeros_(model.head.weight)
        nn.init.zeros_(model.head.bias)
    return model


def unet_settings(config) -> dict:
    """The U-Net's shape as this run builds it. info["unet"] keeps it, so a checkpoint's loader
    (Try, the gan task, benchmarks) rebuilds the same network. A from-scratch encoder uses
    group norm (UNet's comment says why); a pretrained one keeps the batch norm it learnt with."""
    extra = config.extra
    return {"blur": bool(extra.get("blur", True)), "self_attention": bool(extra.get("self_attention", True)),
            "norm": extra.get("norm") or ("batch" if config.pretrained else "group")}


def restore_unet(arch, scale, mean, std, settings=None, pretrained=False) -> UNet:
    """The restore network from unet_settings(). Runs saved before info["unet"] existed pass
    their config's extra (blur, self_attention) and get batch norm, which they were trained with."""
    s = {"blur": True, "self_attention": True, "norm": "batch", **(settings or {})}
    return UNet(arch, n_out=3, pretrained=pretrained, scale=scale, blur=s["blur"],
                self_attention=s["self_attention"], norm=s["norm"], image_residual=(tuple(mean), tuple(std)))


def checkpoint_unet_settings(info: dict, extra: dict) -> dict:
    """unet_settings of a saved run: its info["unet"], else what its config's extra says."""
    if info.get("unet"):
        return dict(info["unet"])
    return {k: extra[k] for k in ("blur", "self_attention") if k in (extra or {})}


def choose_loss(choice):
    """-> (loss module, a sentence saying which loss and why)."""
    if choice == "pixel":
        return PixelL1(), "pixel L1 (chosen in the config)"
    if choice is None and not vgg_weights_present():
        return PixelL1(), (f"pixel L1 (no VGG16-BN weights for the feature loss: {weights_file('vgg16_bn')} "
                           f"is missing; put the file there and train again to use the feature loss)")
    try:
        features = pretrained_vgg_features()
    except WeightsUnavailable as e:
        return PixelL1(), f"pixel L1 (no VGG16-BN weights for the feature loss: {e})"
    return FeatureLoss(features), "feature loss: VGG16-BN activations before 3 max pools, Gram matrices, pixel L1"


@register
class Restore(Task):
    name = "restore"
    default_monitor = "psnr"
    dataset_kinds = ("restore",)
    settings_spec = (
        Setting("loss", str, None, "feature (VGG feature loss, when its weights are here) or pixel L1; "
                "left out: feature when possible.", choices=LOSSES, optional=True),
        Setting("norm", str, None, "batch or group norm in the U-Net; left out: group from scratch, batch "
                "with a pretrained encoder.", choices=NORMS, optional=True),
        Setting("blur", bool, True, "Blur after each pixel-shuffle upsampling (fewer checkerboard artefacts)."),
        Setting("self_attention", bool, True, "A self-attention layer in the decoder."),
        Setting("flip", bool, None, "Random horizontal flips; left out: the dataset's hint.", optional=True),
    )
    try_view, try_button = "before_after", "Restore"
    try_about = "Upload a damaged or small picture: before and after."
    exports = True

    def smoke_config(self, data, train):
        return {**super().smoke_config(data, train), "extra": {"loss": "pixel"}}

    def model_from_checkpoint(self, config, info):
        # info["unet"] says how the U-Net was built (blur, self-attention, norm)
        return restore_unet(info.get("arch", config.get("arch", "resnet18")), int(info.get("scale", 1)), info["mean"],
                            info["std"], checkpoint_unet_settings(info, config.get("extra") or {}))
    # Trained from scratch, a U-Net needs optimiser steps more than big pictures: 64 px crops
    # cost a quarter of 128 px ones, and more, smaller steps gained more on held-out photos in
    # the same time (docs/BENCHMARKS.md). RunConfig's batch of 32 gave one step an epoch on a
    # few dozen pairs.
    defaults = {"image_size": 64, "batch_size": 8, "epochs": 16}

    def validate(self, config):
        scale = read_scale(config.data)
        train, _ = scan_pairs(config.data, "crappy", "clean", config.valid_pct, config.seed)
        check_unet_config(config, "restore", len(train), scale)
        norm = self.read_settings(config)["norm"]  # loss and norm checked against settings_spec
        if norm == "group" and config.pretrained:
            raise ConfigError("'extra.norm' \"group\" needs an encoder trained from scratch: a pretrained "
                              "encoder learnt its weights with batch norm. Turn pretrained off, or leave norm out.")

    def build(self, config, device) -> TaskParts:
        scale = read_scale(config.data)
        train, valid = scan_pairs(config.data, "crappy", "clean", config.valid_pct, config.seed)
        flip = bool(config.extra.get("flip", read_manifest(config.data).get("flip", True)))
        mean, std = input_stats(config, [p for p, _ in train])
        size = config.image_size
        train_ds = RestorePairs(train, scale, size, mean, std, train=True, augment=config.augment, flip=flip)
        valid_ds = RestorePairs(valid, scale, size, mean, std, valid_side=VALID_SIDE)
        settings = unet_settings(config)
        model = open_correction(restore_unet(config.arch, scale, mean, std, settings, config.pretrained))
        loss, loss_note = choose_loss(config.extra.get("loss"))
        loss = loss.to(device)
        metrics = [PSNR(), SSIM(), InputPSNR(), InputSSIM()]
        monitor = config.monitor or self.default_monitor
        higher = next((m.higher_is_better for m in metrics if m.name == monitor), False)
        return TaskParts(
            model=model, train_ds=train_ds, valid_ds=valid_ds, loss_fn=loss, metrics=metrics,
            monitor=monitor, higher_is_better=higher,
            sample_fn=_sampler(valid_ds, config.sample_count, config.seed, device),
            info={"scale": scale, "loss": loss_note, "unet": settings, "mean": list(mean), "std": list(std),
                  "image_size": size, "train_count": len(train), "valid_count": len(valid)},
        )


def _sampler(valid_ds, count, seed, device):
    """Fixed validation items, one row each: crappy | output | clean, with PSNRs."""
    indices = random.Random(seed).sample(range(len(valid_ds)), min(count, len(valid_ds)))

    @torch.inference_mode()
    def sample(model):
        was_training = model.training
        model.eval()
        pairs = [valid_ds[i] for i in indices]
        xs = torch.stack([x for x, _ in pairs])
        outs = model(xs.to(device)).float().clamp(0, 1).cpu()
        model.train(was_training)
        rows = []
        for (_, target), out in zip(pairs, outs):
            clean, baseline = target[0], target[1]
            before = psnr(baseline[None], clean[None]).item()
            after = psnr(out[None], clean[None]).item()
            rows.append([captioned(to_pil(baseline), f"input {before:.1f} dB"),
                         captioned(to_pil(out), f"output {after:.1f} dB"),
                         captioned(to_pil(clean), "clean")])
        return side_by_side(rows)

    return sample
