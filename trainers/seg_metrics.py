"""Segmentation metrics over a whole validation pass: pixel accuracy, mean Dice, mean IoU.

Counts (intersection, predicted, true pixels per class) are summed over every batch and the
ratios taken at the end, so a metric is that of the validation set, not a mean of batches.
Pixels labelled `void` are left out of all three; the void class is not averaged.
"""
import torch

from .metrics import Metric


class _ClassCounts(Metric):
    def __init__(self, n_classes: int, void: int | None = None):
        self.n_classes, self.void = n_classes, void
        self.reset()

    def reset(self):
        self.inter = torch.zeros(self.n_classes, dtype=torch.float64)
        self.pred_count = torch.zeros(self.n_classes, dtype=torch.float64)
        self.true_count = torch.zeros(self.n_classes, dtype=torch.float64)

    def accumulate(self, pred, target):
        labels = pred.argmax(1) if pred.dim() == target.dim() + 1 else pred
        labels, target = labels.reshape(-1), target.reshape(-1)
        if self.void is not None:
            keep = target != self.void
            labels, target = labels[keep], target[keep]
        n = self.n_classes
        hit = labels == target
        self.inter += torch.bincount(target[hit], minlength=n)[:n].double().cpu()
        self.pred_count += torch.bincount(labels, minlength=n)[:n].double().cpu()
        self.true_count += torch.bincount(target, minlength=n)[:n].double().cpu()

    def _classes(self):
        keep = torch.ones(self.n_classes, dtype=torch.bool)
        if self.void is not None:
            keep[self.void] = False
        return keep


class PixelAccuracy(_ClassCounts):
    name = "pixel_accuracy"

    @property
    def value(self):
        total = self.true_count.sum().item()
        return self.inter.sum().item() / total if total else 0.0


class Dice(_ClassCounts):
    """Mean over classes of 2|P∩T| / (|P| + |T|), classes absent from both left out."""
    name = "dice"

    @property
    def value(self):
        denom = self.pred_count + self.true_count
        keep = self._classes() & (denom > 0)
        return (2 * self.inter[keep] / denom[keep]).mean().item() if keep.any() else 0.0


class MeanIoU(_ClassCounts):
    """Mean over classes of |P∩T| / |P∪T|, classes absent from both left out."""
    name = "iou"

    @property
    def value(self):
        union = self.pred_count + self.true_count - self.inter
        keep = self._classes() & (union > 0)
        return (self.inter[keep] / union[keep]).mean().item() if keep.any() else 0.0
