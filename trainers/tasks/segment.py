"""Segmentation: a U-Net on a ResNet encoder, trained with cross-entropy on index masks.

Pixels labelled `void` (dataset.json) are ignored by the loss and by every metric.
"""

import random

import torch
from torch import nn
from PIL import Image

from ..augment import IMAGENET_MEAN, IMAGENET_STD, denormalize
from ..constants import ARCHS
from ..data import image_stats, read_manifest
from ..errors import ConfigError
from ..grid import captioned, side_by_side, to_pil
from ..models.unet import UNet
from ..paired_data import SegmentPairs, read_codes, scan_pairs
from ..seg_metrics import Dice, MeanIoU, PixelAccuracy
from .registry import register
from .base import Setting, Task, TaskParts

# Distinct colours for up to 20 classes (then they repeat); void is drawn black.
PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
]
VOID_COLOUR = (0, 0, 0)


PROGRESSIVE = Setting(
    "progressive",
    list,
    None,
    "Progressive resizing: [image_size, batch_size, epochs] stages "
    "whose epochs add up to 'epochs', e.g. [[64, 16, 2], [128, 8, 2]].",
    optional=True,
)


def check_unet_config(config, kind, n_train, scale=1) -> None:
    """Settings shared by the U-Net tasks: arch, dataset kind, batch size, progressive stages."""
    if config.arch not in ARCHS:
        raise ConfigError(f"Unknown encoder {config.arch!r} for the U-Net; choose one of {', '.join(ARCHS)}.")
    found = read_manifest(config.data).get("kind")
    if found not in (None, kind):
        raise ConfigError(f"The dataset at {config.data} is a {found!r} dataset, not one for {config.task}.")
    if config.image_size % scale:
        raise ConfigError(
            f"'image_size' ({config.image_size}) must be a multiple of the dataset's super-resolution scale ({scale})."
        )
    if config.batch_size > n_train:
        raise ConfigError(
            f"The batch size ({config.batch_size}) is larger than the training set ({n_train} pairs); "
            f"use a batch size of at most {n_train}."
        )
    for key in ("blur", "self_attention"):
        if key in config.extra and not isinstance(config.extra[key], bool):
            raise ConfigError(f"'extra.{key}' must be true or false.")
    stages = config.extra.get("progressive")
    if stages is None:
        return
    shape = "a list of [image_size, batch_size, epochs] stages, e.g. [[64, 16, 2], [128, 8, 2]]"
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"'extra.progressive' must be {shape}.")
    for stage in stages:
        if (
            not isinstance(stage, list)
            or len(stage) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in stage)
        ):
            raise ConfigError(f"'extra.progressive' must be {shape}; {stage!r} is not.")
        size, batch, _ = stage
        if not 16 <= size <= 2048 or size % scale:
            raise ConfigError(
                f"Progressive stage {stage}: the size must be 16 to 2048 pixels"
                + (f" and a multiple of the scale {scale}." if scale > 1 else ".")
            )
        if batch > n_train:
            raise ConfigError(
                f"Progressive stage {stage}: the batch size is larger than the training set ({n_train} pairs)."
            )
    total = sum(s[2] for s in stages)
    if total != config.epochs:
        raise ConfigError(
            f"The progressive stages add up to {total} epochs but 'epochs' is {config.epochs}; make them equal."
        )


def input_stats(config, paths):
    """ImageNet statistics for a pretrained encoder, else measured on the training inputs."""
    if config.pretrained:
        return IMAGENET_MEAN, IMAGENET_STD
    return image_stats(paths, config.image_size, seed=config.seed)


@register
class Segment(Task):
    name = "segment"
    default_monitor = "dice"
    # Batch norm statistics recomputed with the final weights before every validation
    # (precise_bn.py): from scratch, eval-mode statistics otherwise lag the weights.
    precise_bn = True
    dataset_kinds = ("segment",)
    settings_spec = (
        Setting("blur", bool, False, "Blur after each pixel-shuffle upsampling."),
        Setting("self_attention", bool, False, "A self-attention layer in the decoder."),
        Setting("flip", bool, None, "Random horizontal flips; left out: the dataset's hint.", optional=True),
        Setting("norm", str, "batch", "batch or group norm in the U-Net.", choices=("batch", "group")),
        PROGRESSIVE,
    )
    try_view, try_inputs, try_button = "overlay", ("picture", "opacity"), "Segment"
    try_about = "Upload a picture: each pixel tinted by its predicted class."
    exports = True
    inspections = ("summary", "activations", "features", "heatmap")

    def model_from_checkpoint(self, config, info):
        extra = config.get("extra") or {}
        return UNet(
            config.get("arch", "resnet18"),
            n_out=len(info["codes"]),
            pretrained=False,
            blur=extra.get("blur", False),
            self_attention=extra.get("self_attention", False),
        )

    # Sized for a from-scratch run on a CPU: RunConfig's 128 px and batches of 32 upsampled the
    # 64 px sample pictures (four times the work for no detail) and made 9 steps in all; these
    # make 192 on the bundled shapes (held-out Dice above 0.95 in under 3 minutes on 2 cores).
    defaults = {"image_size": 64, "batch_size": 8, "epochs": 16}

    def validate(self, config):
        read_codes(config.data)
        train, _ = scan_pairs(config.data, "images", "labels", config.valid_pct, config.seed)
        check_unet_config(config, "segment", len(train))
        if config.extra.get("norm", "batch") not in ("batch", "group"):
            raise ConfigError('\'extra.norm\' must be "batch" or "group".')

    def sizes_for_data(self, config) -> dict:
        """Image size from the pictures' own resolution (a multiple of 32, the U-Net's stride),
        batch from the training set's size."""
        from ..data_fit import fitted_batch, fitted_size, native_side

        train, _ = scan_pairs(config.data, "images", "labels", config.valid_pct, config.seed)
        native = native_side([p for p, _ in train])
        return {
            "image_size": fitted_size(native, config.image_size, multiple=32, smallest=32),
            "batch_size": fitted_batch(len(train), self.defaults["batch_size"]),
            "native_side": native,
            "train_count": len(train),
        }

    def build(self, config, device) -> TaskParts:
        codes, void = read_codes(config.data)
        train, valid = scan_pairs(config.data, "images", "labels", config.valid_pct, config.seed)
        flip = bool(config.extra.get("flip", read_manifest(config.data).get("flip", True)))
        mean, std = input_stats(config, [p for p, _ in train])
        size = config.image_size
        train_ds = SegmentPairs(train, codes, size, mean, std, train=True, augment=config.augment, flip=flip)
        valid_ds = SegmentPairs(valid, codes, size, mean, std)
        # Batch norm momentum 0.1 (torch's): a default run is 192 steps, and eval mode then uses
        # statistics averaged over many batches; the U-Net's 0.5 (for runs of a few dozen steps)
        # follows the last two or three, and the held-out Dice moved by +-0.005 from epoch to epoch.
        model = UNet(
            config.arch,
            n_out=len(codes),
            pretrained=config.pretrained,
            blur=config.extra.get("blur", False),
            self_attention=config.extra.get("self_attention", False),
            bn_momentum=0.1,
            norm=config.extra.get("norm", "batch"),
        )
        loss = nn.CrossEntropyLoss(ignore_index=void if void is not None else -100)
        metrics = [PixelAccuracy(len(codes), void), Dice(len(codes), void), MeanIoU(len(codes), void)]
        return self.parts(
            config,
            model=model,
            train_ds=train_ds,
            valid_ds=valid_ds,
            loss_fn=loss,
            metrics=metrics,
            sample_fn=_sampler(valid_ds, void, config.sample_count, config.seed, device),
            info={
                "codes": codes,
                "void": codes[void] if void is not None else None,
                "palette": palette(len(codes), void),
                "mean": list(mean),
                "std": list(std),
                "image_size": size,
                "train_count": len(train),
                "valid_count": len(valid),
            },
        )


def palette(n: int, void=None) -> list:
    colours = [PALETTE[i % len(PALETTE)] for i in range(n)]
    if void is not None:
        colours[void] = VOID_COLOUR
    return [list(c) for c in colours]


def overlay(image: Image.Image, labels: torch.Tensor, colours, opacity=0.5) -> Image.Image:
    """The image with each pixel tinted by its class colour."""
    table = torch.tensor(colours, dtype=torch.uint8)
    mask = Image.fromarray(table[labels.cpu().clamp(0, len(colours) - 1)].numpy(), "RGB")
    return Image.blend(image, mask, opacity)


def _sampler(valid_ds, void, count, seed, device):
    """Fixed validation items, one row each: image | predicted overlay | true overlay."""
    indices = random.Random(seed).sample(range(len(valid_ds)), min(count, len(valid_ds)))
    colours = palette(len(valid_ds.codes), void)

    @torch.inference_mode()
    def sample(model):
        was_training = model.training
        model.eval()
        pairs = [valid_ds[i] for i in indices]
        xs = torch.stack([x for x, _ in pairs])
        preds = model(xs.to(device)).float().argmax(1).cpu()
        model.train(was_training)
        rows = []
        for x, (_, truth), pred in zip(xs, pairs, preds):
            image = to_pil(denormalize(x, valid_ds.mean, valid_ds.std))
            keep = truth != void if void is not None else torch.ones_like(truth, dtype=torch.bool)
            acc = ((pred == truth) & keep).sum().item() / max(keep.sum().item(), 1)
            rows.append(
                [
                    captioned(image, "image"),
                    captioned(overlay(image, pred, colours), f"predicted {acc:.0%}"),
                    captioned(overlay(image, truth, colours), "true"),
                ]
            )
        return side_by_side(rows)

    return sample
