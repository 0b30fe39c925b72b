"""Precise batch norm: statistics that fit the weights being validated.

In eval mode batch norm divides by running statistics, an average over the last batches of
training. From scratch the weights move fast, and that average describes networks that no
longer exist: a segmentation run's validation loss jumped from 0.41 to 14,335 after its second
epoch with torch's default momentum (issue 14). Before every validation this callback
recomputes the statistics with the final weights: the last few training batches of the epoch
go through the model again in train mode, without gradients, averaged with equal weights
(momentum None). torch has no helper for this (fvcore's `update_bn_stats` does the same).
"""
import math

import torch
from torch import nn

from .callbacks import Callback

_BN = nn.modules.batchnorm._BatchNorm


class PreciseBatchNorm(Callback):
    order = 5  # before the other callbacks' before_validate: they may look at eval outputs

    # 256 images (at most 8 batches): with 64 the statistics of a digits run's last epoch were
    # noisy enough to cost it 1-2 points of accuracy that the epoch before had (docs/BENCHMARKS.md).
    def __init__(self, images: int = 256, max_batches: int = 8):
        self.images, self.max_batches = images, max_batches
        self.kept = []

    def forward_batches(self) -> int:
        """How many extra forward passes (training batches) this adds per epoch: for estimates."""
        learn = self.learner
        size = getattr(learn.train_dl, "batch_size", None) or 1
        return min(self.max_batches, math.ceil(self.images / size), len(learn.train_dl))

    def before_epoch(self):
        self.kept = []
        self.training_norms = None

    def after_batch(self):
        if self.training_norms is None:
            # The layers training updates: those in train mode during the batches. A body frozen
            # whole (precompute.py) is in eval mode and keeps its statistics.
            self.training_norms = {id(m) for m in self.learner.model.modules() if isinstance(m, _BN) and m.training}
        # The epoch's last inputs, already on the device (no second decode or augmentation).
        self.kept.append(self.learner.xb)
        if len(self.kept) > self.forward_batches():
            self.kept.pop(0)

    def mid_epoch_state(self) -> dict:
        """The inputs kept so far, for a time checkpoint: a resume inside the epoch then averages
        over the same batches as an uninterrupted run."""
        return {"kept": [x.detach().cpu() for x in self.kept]}

    def load_mid_epoch_state(self, state: dict):
        self.kept = [x.to(self.learner.device) for x in state.get("kept", [])]

    def before_validate(self):
        learn = self.learner
        training = getattr(self, "training_norms", None)
        norms = [m for m in learn.model.modules() if isinstance(m, _BN) and m.track_running_stats
                 and (training is None or id(m) in training)]
        if not norms or not self.kept:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
            m.train()
        try:
            with torch.no_grad(), learn._autocast():
                for xb in self.kept:
                    for part in xb.chunk(learn.chunks):  # the parts training fits in memory
                        learn.model(part)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
                m.eval()
            self.kept = []
