"""Restoration and super-resolution: a network turns crappy images into clean ones.

Two networks, chosen for the device and the weights at hand (extra.net, choose_net): on a CPU
from scratch, a small residual CNN (models/restore_net.py) that takes thousands of steps in ten
minutes; with a pretrained encoder or a GPU, the course's ResNet U-Net. Both predict a
correction added to their (upscaled) input and start with it at zero, so a run begins exactly
at the baseline and every gain is learned.

Pairs: a dataset made by the crappify builder records its recipe (crappify.json); the run
re-applies it to random crops of the clean training pictures on the fly (CrappifyPairs), fresh
damage every batch. Imported pairs without a recipe train on random crops, turned and flipped
alike (CropPairs). Either way an epoch is extra.crops_per_epoch crops.

Validation scores the whole held-out pictures, tiled at the training size exactly as the Try
tab shows them (trainers/tiling.py). The loss is the course's perceptual loss on VGG16-BN for
the U-Net when its weights are at hand, else pixel L1 (L1 + SSIM on request); the log and
info["loss"] say which.
"""

import json
from pathlib import Path

import torch
from torch import nn

from ..degrade import CrappifyParams, RecipeError
from ..errors import ConfigError, WeightsUnavailable
from ..grid import captioned, side_by_side, to_pil
from ..heldout import HeldoutSet, Pictures, pick
from ..image_metrics import PSNR, SSIM, InputPSNR, InputSSIM, psnr
from ..losses import FeatureLoss, PixelL1, PixelSSIM
from ..models.restore_net import RestoreCNN
from ..models.unet import NORMS, UNet
from ..models.vgg_features import pretrained_vgg_features, vgg_weights_present
from ..models.weights import weights_file
from ..data import read_manifest
from ..paired_data import CropPairs, CrappifyPairs, WholePairs, read_scale, scan_pairs
from ..tiling import tiled
from .registry import register
from .base import Setting, Task, TaskParts
from .segment import PROGRESSIVE, check_unet_config, input_stats

LOSSES = ("feature", "pixel", "ssim")
NETS = ("cnn", "unet")
CNN = {"width": 32, "blocks": 4, "unshuffle": 2}  # RestoreCNN's defaults here (docs/BENCHMARKS.md: why)
CROPS_PER_EPOCH = 1600


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
    return {
        "blur": bool(extra.get("blur", True)),
        "self_attention": bool(extra.get("self_attention", True)),
        "norm": extra.get("norm") or ("batch" if config.pretrained else "group"),
    }


def restore_unet(arch, scale, mean, std, settings=None, pretrained=False) -> UNet:
    """The restore network from unet_settings(). Runs saved before info["unet"] existed pass
    their config's extra (blur, self_attention) and get batch norm, which they were trained with."""
    s = {"blur": True, "self_attention": True, "norm": "batch", **(settings or {})}
    return UNet(
        arch,
        n_out=3,
        pretrained=pretrained,
        scale=scale,
        blur=s["blur"],
        self_attention=s["self_attention"],
        norm=s["norm"],
        image_residual=(tuple(mean), tuple(std)),
    )


def checkpoint_unet_settings(info: dict, extra: dict) -> dict:
    """unet_settings of a saved run: its info["unet"], else what its config's extra says."""
    if info.get("unet"):
        return dict(info["unet"])
    return {k: extra[k] for k in ("blur", "self_attention") if k in (extra or {})}


def choose_loss(choice, net="unet"):
    """-> (loss module, a sentence saying which loss and why). Left to choose (None), the U-Net
    takes the feature loss when VGG16-BN's weights are on disk; the CNN, and the U-Net without
    them, take pixel L1 (the CNN is the CPU's network: a VGG pass per step would halve its steps;
    L1 + SSIM gained less than L1 alone in the same steps, docs/BENCHMARKS.md)."""
    if choice == "pixel":
        return PixelL1(), "pixel L1 (chosen in the config)"
    if choice == "ssim":
        return PixelSSIM(), "L1 + SSIM (chosen in the config)"
    if choice is None and net == "cnn":
        return PixelL1(), "pixel L1 (the CPU network's loss; set extra.loss to \"feature\" for VGG16-BN's)"
    if choice is None and not vgg_weights_present():
        return PixelL1(), (
            f"pixel L1 (no VGG16-BN weights for the feature loss: {weights_file('vgg16_bn')} "
            f"is missing; put the file there and train again to use the feature loss)"
        )
    try:
        features = pretrained_vgg_features()
    except WeightsUnavailable as e:
        return PixelL1(), f"pixel L1 (no VGG16-BN weights for the feature loss: {e})"
    return FeatureLoss(features), "feature loss: VGG16-BN activations before 3 max pools, Gram matrices, pixel L1"


def choose_net(config, device) -> str:
    """extra.net, else the U-Net where its encoder is pretrained or a GPU trains it, else the CNN."""
    chosen = config.extra.get("net")
    if chosen:
        return chosen
    return "unet" if config.pretrained or torch.device(device).type == "cuda" else "cnn"


def cnn_settings(config) -> dict:
    return {k: int(config.extra.get(k, v)) for k, v in CNN.items()}


def restore_network(arch, info: dict, extra: dict | None = None) -> nn.Module:
    """The network a restore run (or a gan run on one) trained, from its checkpoint's info and
    its config's extra. Runs saved before info["net"] existed are U-Nets."""
    net = info.get("net") or {"kind": "unet"}
    scale = int(info.get("scale", 1))
    if net["kind"] == "cnn":
        return RestoreCNN(scale, net["width"], net["blocks"], net["unshuffle"], info["mean"], info["std"])
    return restore_unet(
        info.get("arch", arch), scale, info["mean"], info["std"], checkpoint_unet_settings(info, extra or {})
    )


def read_recipe(data_dir) -> CrappifyParams | None:
    """The crappify recipe the builder recorded in DATA/crappify.json, or None (imported pairs)."""
    path = Path(data_dir) / "crappify.json"
    if not path.is_file():
        return None
    try:
        return CrappifyParams.from_dict(json.loads(path.read_text(encoding="utf-8"))["params"])
    except (ValueError, KeyError, TypeError, RecipeError) as e:
        raise ConfigError(
            f"{path} does not hold a crappify recipe the run can re-apply ({e}); "
            f'set extra.pairs to "fixed" to train on the saved pairs only.'
        )


def tile_infer(tile: int, scale: int):
    """model, x -> output: whole pictures in tiles of the training size (trainers/tiling.py)."""
    return lambda model, x: tiled(model, x, tile, scale=scale)


def restore_datasets(config, scale, mean, std, train, valid):
    """(training crops, whole validation pictures, a note for the log): fresh pairs from the
    recipe when the dataset has one and extra.pairs is not "fixed", else crops of the fixed pairs."""
    flip = bool(config.extra.get("flip", read_manifest(config.data).get("flip", True)))
    length = int(config.extra.get("crops_per_epoch", CROPS_PER_EPOCH))
    recipe = read_recipe(config.data) if config.extra.get("pairs", "recipe") == "recipe" else None
    if recipe is not None and (recipe.scale if recipe.super_res else 1) != scale:
        raise ConfigError(
            f"The recipe in {Path(config.data) / 'crappify.json'} makes pairs of scale "
            f"{recipe.scale if recipe.super_res else 1}, but dataset.json says {scale}."
        )
    if recipe is not None:
        channels = bool(config.extra.get("channels", True))
        train_ds = CrappifyPairs(
            [clean for _, clean in train], recipe, config.image_size, mean, std, length, flip, channels
        )
        note = (
            f"fresh pairs: the crappify recipe re-applied to {len(train)} clean pictures, "
            f"{len(train_ds)} crops an epoch, colour channels {'in a random order' if channels else 'as they are'}"
        )
    else:
        train_ds = CropPairs(train, scale, config.image_size, mean, std, length, flip)
        note = f"fixed pairs (no recipe): random crops of {len(train)} pairs, {len(train_ds)} an epoch"
    return train_ds, WholePairs(valid, scale, mean, std), note


RESTORE_SETTINGS = (
    Setting(
        "net",
        str,
        None,
        "cnn (a small residual CNN for CPUs) or unet (the ResNet U-Net); left out: "
        "the U-Net with a pretrained encoder or a GPU, else the CNN.",
        choices=NETS,
        optional=True,
    ),
    Setting("width", int, CNN["width"], "The CNN's channels.", low=1),
    Setting("blocks", int, CNN["blocks"], "The CNN's residual blocks.", low=1),
    Setting(
        "pairs",
        str,
        "recipe",
        "recipe: fresh pairs from the dataset's crappify.json when it has one; fixed: the saved pairs only.",
        choices=("recipe", "fixed"),
    ),
    Setting("crops_per_epoch", int, CROPS_PER_EPOCH, "Training crops drawn per epoch.", low=0),
    Setting(
        "channels",
        bool,
        True,
        "Fresh pairs: the colour channels in a random order before the damage, so the network learns "
        "the damage rather than the training photos' colours.",
    ),
    Setting(
        "loss",
        str,
        None,
        "feature (VGG feature loss, when its weights are here), pixel L1 or ssim "
        "(L1 + SSIM); left out: feature for the U-Net when possible, else pixel.",
        choices=LOSSES,
        optional=True,
    ),
    Setting(
        "norm",
        str,
        None,
        "batch or group norm in the U-Net; left out: group from scratch, batch with a pretrained encoder.",
        choices=NORMS,
        optional=True,
    ),
    Setting("blur", bool, True, "Blur after each pixel-shuffle upsampling (fewer checkerboard artefacts)."),
    Setting("self_attention", bool, True, "A self-attention layer in the decoder."),
    Setting("flip", bool, None, "Random horizontal flips; left out: the dataset's hint.", optional=True),
    PROGRESSIVE,
)


@register
class Restore(Task):
    name = "restore"
    default_monitor = "psnr"
    dataset_kinds = ("restore",)
    settings_spec = RESTORE_SETTINGS
    try_view, try_button = "before_after", "Restore"
    try_about = "Upload a damaged or small picture: before and after."
    exports = True

    def smoke_config(self, data, train):
        return {**super().smoke_config(data, train), "extra": {"loss": "pixel", "crops_per_epoch": 16}}

    def model_from_checkpoint(self, config, info):
        return restore_network(config.get("arch", "resnet18"), info, config.get("extra") or {})

    # Trained from scratch on a CPU, restoration needs optimiser steps more than big pictures:
    # 64 px crops, batches of 8, 12 epochs of 200 steps; 2e-3 gained more than 1e-3 and 3e-3 in
    # the same steps (docs/BENCHMARKS.md).
    defaults = {"image_size": 64, "batch_size": 8, "epochs": 12, "lr": 2e-3}

    def validate(self, config):
        scale = read_scale(config.data)
        train, _ = scan_pairs(config.data, "crappy", "clean", config.valid_pct, config.seed)
        settings = self.read_settings(config)  # extra's types and choices, against settings_spec
        check_unet_config(config, "restore", max(len(train), settings["crops_per_epoch"]), scale)
        read_recipe(config.data)
        norm = settings["norm"]
        if norm == "group" and config.pretrained:
            raise ConfigError(
                "'extra.norm' \"group\" needs an encoder trained from scratch: a pretrained "
                "encoder learnt its weights with batch norm. Turn pretrained off, or leave norm out."
            )

    def build(self, config, device) -> TaskParts:
        scale = read_scale(config.data)
        train, valid = scan_pairs(config.data, "crappy", "clean", config.valid_pct, config.seed)
        mean, std = input_stats(config, [p for p, _ in train])
        size = config.image_size
        train_ds, valid_ds, pairs_note = restore_datasets(config, scale, mean, std, train, valid)
        kind = choose_net(config, device)
        if kind == "cnn":
            net = {"kind": "cnn", **cnn_settings(config)}
            model = RestoreCNN(scale, net["width"], net["blocks"], net["unshuffle"], mean, std)
            net_info = {"net": net}
        else:
            settings = unet_settings(config)
            model = open_correction(restore_unet(config.arch, scale, mean, std, settings, config.pretrained))
            net_info = {"net": {"kind": "unet"}, "unet": settings}
        loss, loss_note = choose_loss(config.extra.get("loss"), kind)
        loss = loss.to(device)
        metrics = [PSNR(), SSIM(), InputPSNR(), InputSSIM()]
        heldout = restore_heldout(valid_ds, config.sample_count, config.seed, device, size // scale, scale)
        return self.parts(
            config,
            model=model,
            train_ds=train_ds,
            valid_ds=valid_ds,
            loss_fn=loss,
            metrics=metrics,
            sample_fn=heldout_grid(heldout),
            heldout=heldout,
            info={
                "scale": scale,
                "loss": loss_note,
                **net_info,
                "mean": list(mean),
                "std": list(std),
                "image_size": size,
                "train_count": len(train),
                "valid_count": len(valid),
                "pairs": pairs_note,
            },
            infer=tile_infer(size // scale, scale),
            valid_batch_size=1,
        )


SAMPLE_SIDE = 192  # the centre of each held-out picture shown in the sample grid


def restore_heldout(valid_ds, count, seed, device, tile, scale) -> HeldoutSet:
    """The run's held-out pairs (chosen once from its seed): crappy input, clean picture; the
    whole pictures, restored in tiles of `tile` input pixels as validation and Try do."""
    indices = pick(count, len(valid_ds), seed)
    pairs = [valid_ds[i] for i in indices]
    names = [Path(valid_ds.items[i][1]).stem for i in indices]
    pictures = Pictures(names, [x for x, _ in pairs], [t[1] for _, t in pairs], [t[0] for _, t in pairs])
    return HeldoutSet(pictures, device, infer=tile_infer(tile, scale))


def heldout_grid(heldout: HeldoutSet):
    """The sample grid of the held-out pictures, one row each: input | output | clean, the centre
    SAMPLE_SIDE px of each whole picture, with the whole picture's PSNRs."""

    def sample(model):
        heldout.fresh()  # these weights' outputs; HeldoutRecord then scores the same pass
        outs = heldout.outputs(model)
        pictures = heldout.pictures
        rows = []
        for baseline, out, clean in zip(pictures.shown_inputs, outs, pictures.targets):
            before = psnr(baseline[None], clean[None]).item()
            after = psnr(out[None], clean[None]).item()
            h, w = clean.shape[-2:]
            side = min(SAMPLE_SIDE, h, w)
            top, left = (h - side) // 2, (w - side) // 2
            clean, baseline, out = (t[..., top : top + side, left : left + side] for t in (clean, baseline, out))
            rows.append(
                [
                    captioned(to_pil(baseline), f"input {before:.1f} dB"),
                    captioned(to_pil(out), f"output {after:.1f} dB"),
                    captioned(to_pil(clean), "clean"),
                ]
            )
        return side_by_side(rows)

    return sample
