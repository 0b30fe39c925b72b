"""A model's internals over time, for tasks with class scores (classify, segment): after every epoch
`EpochInternals` saves Layer-CAM heatmaps (trainers/cam.py) of fixed validation pictures and a
summary of that epoch's activation statistics (hooks.ActivationStats), so the Runs tab scrubs
them with the same epoch slider as the sample grids:

    RUN/internals/epoch_003.png    one heatmap per picture, for the class the model predicts
    RUN/internals/epoch_003.json   {"layer": "...", "classes": [...], "stats": {layer: {mean, std, near_zero}}}
"""

import json
from pathlib import Path

import torch

from .atomic import save_image, write_json
from .augment import denormalize
from .callbacks import Callback
from .cam import default_layer, layer_cam, overlay
from .grid import captioned, grid, to_pil
from .heldout import pick

FOLDER = "internals"
PICTURES = 4


def internals_path(run_dir, epoch: int, suffix: str = ".png") -> Path:
    return Path(run_dir) / FOLDER / f"epoch_{int(epoch):03d}{suffix}"


def fixed_pictures(valid_ds, count: int, seed: int) -> tuple:
    """(model inputs (B, 3, H, W), indices): validation items chosen once from the seed."""
    indices = sorted(pick(count, len(valid_ds), seed))
    return torch.stack([valid_ds[i][0] for i in indices]), indices


class EpochInternals(Callback):
    order = 23  # after the sample grid, before the checkpoint

    def __init__(self, run_dir, inputs, mean, std, labels=(), device="cpu"):
        self.run_dir = None if run_dir is None else Path(run_dir)  # None: drawn only, for an estimate
        self.inputs, self.mean, self.std = inputs, mean, std
        self.labels, self.device = list(labels), device
        self.stats = None  # the run's ActivationStats, which fit() makes after the rehearsal
        self.shown = [to_pil(denormalize(x, mean, std)) for x in inputs]

    def after_epoch(self):
        epoch = self.learner.epoch + 1
        picture, predicted, layer = self.draw(self.learner.unwrapped)
        (self.run_dir / FOLDER).mkdir(parents=True, exist_ok=True)
        save_image(picture, internals_path(self.run_dir, epoch))
        summary = {"epoch": epoch, "layer": layer, "predicted": predicted, "stats": self._stats_summary()}
        write_json(summary, internals_path(self.run_dir, epoch, ".json"), indent=1)

    def draw(self, model) -> tuple:
        """(the heatmaps' picture, the predicted class names, the layer they explain): an epoch's
        work, which the rehearsal also times (trainers/fit.py)."""
        layer = default_layer(model)
        x = self.inputs.to(self.device)
        maps = layer_cam(model, x, None, layer).cpu()
        with torch.no_grad():
            was = model.training
            model.eval()
            logits = model(x).float()
            model.train(was)
        predicted = logits.argmax(1)
        if predicted.dim() > 1:  # a segmenter: the class on most pixels, which its heatmap explains
            predicted = torch.stack([p.flatten().mode().values for p in predicted])
        names = [self.labels[c] if c < len(self.labels) else c for c in predicted.tolist()]
        tiles = [
            captioned(overlay(picture, heat.numpy()), f"{name}") for picture, heat, name in zip(self.shown, maps, names)
        ]
        return grid(tiles, columns=len(tiles)), names, layer

    def _stats_summary(self) -> dict:
        """This epoch's mean of each layer's per-batch mean, std and near-zero fraction."""
        stats = self.stats
        if stats is None or not getattr(stats, "rows", None):
            return {}
        rows = [r for r in stats.rows if r["epoch"] == self.learner.epoch]
        if not rows:
            return {}
        out = {}
        for i, (name, _) in enumerate(stats.layers):
            out[name] = {
                k: round(float(torch.stack([r[k][i] for r in rows]).mean()), 5) for k in ("mean", "std", "near_zero")
            }
        return out


def read_summary(run_dir, epoch: int) -> dict:
    path = internals_path(run_dir, epoch, ".json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
