"""Image classification: a ResNet body with a new head on a labelled image folder."""
import random

import torch
from torch import nn

from ..augment import IMAGENET_MEAN, IMAGENET_STD, denormalize, train_transform, valid_transform
from ..constants import ARCHS
from ..data import LabelledImages, image_stats, read_manifest, scan_labelled_folder
from ..errors import ConfigError
from ..grid import captioned, grid, to_pil
from ..metrics import Accuracy, ErrorRate
from ..models import ResNetClassifier
from .registry import register
from .base import Setting, Task, TaskParts

RIGHT, WRONG = (90, 220, 110), (240, 80, 80)


@register
class Classify(Task):
    name = "classify"
    default_monitor = "accuracy"
    # Torch's running batch-norm statistics at validation, not precise ones (precise_bn.py):
    # measured both ways (docs/BENCHMARKS.md), a classifier from scratch validated as well on the
    # digits (98.3-99.2% over 5 seeds either way) and better on 10 photo classes (0.9-2.4 points
    # on each of 3 seeds), where 256 recomputed images were noisier than the running average.
    # Segment keeps precise statistics: there the running ones sent the validation loss to 14,335.
    precise_bn = False
    form_budget_s = 60  # a first model in about a minute (issue 14; docs/BENCHMARKS.md)
    dataset_kinds = ("classify",)
    settings_spec = (
        Setting("flip", bool, None, "Random horizontal flips; left out: the dataset's hint (digits say no).",
                optional=True),
        Setting("precompute", bool, True, "While the pretrained body is frozen, compute its activations once "
                "and train the head on them (the course's precompute=True): frozen epochs take seconds. The "
                "frozen body's batch norm is frozen too. No effect from scratch or with freeze_epochs 0."),
        Setting("precompute_views", int, 2, "With precompute: how many augmented versions of each training "
                "picture are computed; frozen epochs take them in turn (augmentation is limited to these).",
                low=1),
    )
    try_view, try_inputs, try_button = "classes", ("picture", "k"), "Predict"
    try_about = "Upload a picture (or use the webcam): the most likely classes and where the model looked."
    exports = True
    inspections = ("summary", "activations", "features", "heatmap", "interpretation")

    def model_from_checkpoint(self, config, info):
        return ResNetClassifier(config.get("arch", "resnet18"), len(info["classes"]), pretrained=False)

    def validate(self, config):
        if config.arch not in ARCHS:
            raise ConfigError(f"Unknown architecture {config.arch!r} for classify; choose one of {', '.join(ARCHS)}.")
        manifest = read_manifest(config.data)
        if manifest.get("kind") not in (None, "classify"):
            raise ConfigError(f"The dataset at {config.data} is a {manifest['kind']!r} dataset, not one for classify.")
        classes, train, valid = scan_labelled_folder(config.data, config.valid_pct, config.seed)
        if config.batch_size > len(train):
            raise ConfigError(
                f"The batch size ({config.batch_size}) is larger than the training set ({len(train)} images); "
                f"use a batch size of at most {len(train)}.")

    def learner_callbacks(self, config, cache_dir=None) -> list:
        """Precompute (precompute.py) for a pretrained run with a frozen phase, unless turned off."""
        from ..precompute import ActivationCache, Precompute

        settings = self.read_settings(config)
        if not (settings["precompute"] and config.pretrained and config.freeze_epochs > 0):
            return []
        views = settings["precompute_views"] if config.augment else 1  # without augmentation views are alike
        return [Precompute(ActivationCache(cache_dir), views=views, seed=config.seed)]

    def sizes_for_data(self, config) -> dict:
        """Image size from the pictures' own resolution, batch from the training set's size."""
        from ..data_fit import fitted_batch, fitted_size, native_side

        classes, train, valid = scan_labelled_folder(config.data, config.valid_pct, config.seed)
        native = native_side([p for p, _ in train])
        return {"image_size": fitted_size(native, config.image_size), "batch_size": fitted_batch(len(train), 32),
                "native_side": native, "train_count": len(train)}

    def build(self, config, device) -> TaskParts:
        classes, train, valid = scan_labelled_folder(config.data, config.valid_pct, config.seed)
        manifest = read_manifest(config.data)
        # Digits and text must not be mirrored: the dataset (or the config) can say so.
        flip = bool(config.extra.get("flip", manifest.get("flip", True)))
        if config.pretrained:
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        else:
            mean, std = image_stats([p for p, _ in train], config.image_size, seed=config.seed)
        size = config.image_size
        train_ds = LabelledImages(train, train_transform(size, mean, std, flip=flip, augment=config.augment))
        valid_ds = LabelledImages(valid, valid_transform(size, mean, std))
        model = ResNetClassifier(config.arch, len(classes), pretrained=config.pretrained)
        monitor = config.monitor or self.default_monitor
        metrics = [Accuracy(), ErrorRate()]
        higher = next((m.higher_is_better for m in metrics if m.name == monitor), False)
        return TaskParts(
            model=model, train_ds=train_ds, valid_ds=valid_ds, loss_fn=nn.CrossEntropyLoss(),
            metrics=metrics, monitor=monitor, higher_is_better=higher,
            sample_fn=_sampler(valid_ds, classes, mean, std, config.sample_count, config.seed, device),
            info={"classes": classes, "mean": list(mean), "std": list(std), "image_size": size,
                  "train_count": len(train), "valid_count": len(valid)},
        )


def _sampler(valid_ds, classes, mean, std, count, seed, device):
    """The same validation images every epoch, captioned 'predicted (true)', wrong ones in red."""
    indices = random.Random(seed).sample(range(len(valid_ds)), min(count, len(valid_ds)))

    @torch.inference_mode()
    def sample(model):
        was_training = model.training
        model.eval()
        xs = torch.stack([valid_ds[i][0] for i in indices])
        preds = model(xs.to(device)).argmax(1).cpu()
        model.train(was_training)
        tiles = []
        for x, i, p in zip(xs, indices, preds):
            true = valid_ds.items[i][1]
            caption = f"{classes[p]} ({classes[true]})"
            tiles.append(captioned(to_pil(denormalize(x, mean, std)), caption, RIGHT if p == true else WRONG))
        return grid(tiles, columns=min(4, len(tiles)))

    return sample
