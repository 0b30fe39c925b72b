"""The LR finder (the course's lesson 1): a callback that sweeps the learning rate on the
Learner's own loop, then gives the weights back as they were.

`Learner.lr_find()` adds it for one short fit; nothing else in the loop knows it is there.
"""

import copy
import math

from .callbacks import Callback, CancelValidate


class LRFinder(Callback):
    """Exponential LR sweep over training batches, loss smoothed by a debiased moving average,
    stopped after `num` batches or once the loss passes `diverge` times its minimum (or is
    not finite). The weights are restored in after_fit. The suggestion: suggest() below."""

    order = -10  # sets the batch's lr before anyone reads it

    def __init__(self, start_lr=1e-7, end_lr=10.0, num=100, beta=0.98, diverge=4.0):
        self.start_lr, self.end_lr, self.num = start_lr, end_lr, num
        self.beta, self.diverge = beta, diverge
        self.ratio = (end_lr / start_lr) ** (1 / (num - 1))
        self.lrs, self.losses = [], []

    def before_fit(self):
        self.saved = copy.deepcopy(self.learner.unwrapped.state_dict())
        self.lrs, self.losses = [], []
        self.step, self.avg, self.best = 0, 0.0, math.inf

    def before_batch(self):
        lr = self.start_lr * self.ratio**self.step
        for group in self.learner.opt.param_groups:
            group["lr"] = lr

    def after_batch(self):
        learn = self.learner
        loss = learn.loss.item()
        if not math.isfinite(loss):
            learn.stop = True
            return
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        smooth = self.avg / (1 - self.beta ** (self.step + 1))
        self.lrs.append(learn.batch_lr)
        self.losses.append(smooth)
        self.best = min(self.best, smooth)
        self.step += 1
        if self.step >= self.num or (self.step > 10 and smooth > self.diverge * self.best):
            learn.stop = True

    def before_validate(self):
        raise CancelValidate  # a sweep is judged on training batches alone

    def after_fit(self):
        self.learner.unwrapped.load_state_dict(self.saved)

    def result(self) -> dict:
        return {"lrs": self.lrs, "losses": self.losses, **suggest(self.lrs, self.losses)}


# A curve "falls" when its minimum lies this far below where it started; it "rises" once it
# passes its minimum by RISE. Restore's curve (bench/lr_finder_restore.py) wanders by about
# 10% from batch to batch while no rate under 1e-2 moves it, then blows up past it.
FALL, RISE = 0.10, 1.25
RULES = {
    "minimum": "the LR at the loss's minimum divided by 10",
    "rise": "the loss stayed level, then rose: a tenth of the LR where it rose",
    "level": "the loss stayed level to the end of the sweep: a tenth of its highest LR",
    "empty": "no batch was swept: a default",
}


def suggest(lrs, losses) -> dict:
    """{"suggestion": rate, "rule": how it was found, "rise_lr": where the loss rose or None}.

    The first tenth of the sweep is skipped (its moving average is still a few batches; fastai's
    lr_find skips it too). Where the loss clearly falls ("minimum"): the LR at its minimum divided
    by 10 (fastai's classic rule: on the descending slope, where the loss still falls fast).
    Where it stays level until it blows up, as a network that starts at the identity does with
    a sweep far shorter than its training ("rise"): a tenth of the rate where it first passes its
    minimum by RISE (Smith: the largest rate before the loss climbs, with a margin); "level":
    it never rose either, the highest rate tried over 10. Never below the sweep's first rate."""
    if not lrs:
        return {"suggestion": 1e-3, "rule": "empty", "rise_lr": None}
    skip = len(lrs) // 10
    tail = losses[skip:]
    lowest = skip + min(range(len(tail)), key=tail.__getitem__)
    start = sorted(tail[:10])[len(tail[:10]) // 2]  # the median of where it began
    rise = next((i for i in range(lowest, len(losses)) if losses[i] > RISE * losses[lowest]), None)
    if losses[lowest] < (1 - FALL) * start:
        rule, lr = "minimum", lrs[lowest] / 10
    elif rise is not None:
        rule, lr = "rise", lrs[rise] / 10
    else:
        rule, lr = "level", lrs[-1] / 10
    return {"suggestion": max(lr, lrs[0]), "rule": rule, "rise_lr": lrs[rise] if rise is not None else None}


class ReportSweep(Callback):
    """The sweep's progress for a Reporter: batch i of the finder's `num` (so a page can show a
    bar and an ETA), and a stop asked for between batches ends the sweep."""

    order = 30

    def __init__(self, reporter, finder: LRFinder):
        self.reporter, self.finder = reporter, finder

    def before_fit(self):
        self.reporter.start({"epochs": 1, "batches_per_epoch": self.finder.num, "monitor": None})

    def before_batch(self):
        if self.reporter.should_stop():
            self.learner.stop = True

    def after_batch(self):
        if self.finder.losses:
            self.reporter.batch(1, self.finder.step, self.finder.num, self.finder.losses[-1], self.finder.lrs[-1])
