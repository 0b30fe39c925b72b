"""The Learner: one training loop, events for callbacks, one-cycle, LR finder, freezing.

Read it top to bottom: `fit_one_cycle` builds the optimiser and schedule, then `_fit`
runs epochs of `_train_batch` and `validate`, firing events that callbacks hook into.
"""
import copy
import math
import time
from contextlib import nullcontext

import torch
from torch import nn

from .callbacks import CallbackHost, rng_state, seed_everything, set_rng_state


class Learner(CallbackHost):
    def __init__(self, model: nn.Module, train_dl, valid_dl, loss_fn, metrics=(), callbacks=(),
                 device="cpu", mixed_precision=True, weight_decay=0.01, seed=42, groups=None):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_dl, self.valid_dl = train_dl, valid_dl
        self.loss_fn, self.metrics = loss_fn, list(metrics)
        self.weight_decay, self.seed = weight_decay, seed
        # Layer groups: the unit of freezing and of discriminative learning rates.
        self.groups = list(groups if groups is not None else self._default_groups())
        self.amp_dtype = _autocast_dtype(self.device) if mixed_precision else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.callbacks = []
        self.add_callbacks(callbacks)
        self.opt = self.sched = None
        self.epoch, self.first_epoch, self.phase_epochs = 0, 0, 0
        self.stop = False
        self.epoch_metrics = {}
        self.extra_state = {}  # anything a caller wants stored in checkpoints (e.g. phase)

    def _default_groups(self):
        model = self.unwrapped
        return model.layer_groups() if hasattr(model, "layer_groups") else [model]

    @property
    def unwrapped(self) -> nn.Module:
        """The model without a DistributedDataParallel wrapper."""
        return getattr(self.model, "module", self.model)

    # --- freezing and learning rates ----------------------------------------
    def freeze_to(self, n: int, train_bn: bool = True):
        """Train only groups n and later. Batch norm layers stay trainable (train_bn), as
        fastai does: their statistics must adapt to the new data even in a frozen body."""
        for i, group in enumerate(self.groups):
            for module in group.modules():
                keep_bn = train_bn and isinstance(module, nn.modules.batchnorm._BatchNorm)
                for p in module.parameters(recurse=False):
                    p.requires_grad_(i >= n or keep_bn)

    def freeze(self):
        self.freeze_to(len(self.groups) - 1)

    def unfreeze(self):
        self.freeze_to(0)

    def lr_per_group(self, lr) -> list:
        """A float gives every group the same lr (the head gets it when frozen); a
        slice(lo, hi) spreads lrs geometrically from the first group to the last."""
        n = len(self.groups)
        if isinstance(lr, slice):
            lo = lr.start if lr.start is not None else lr.stop / 10
            hi = lr.stop
            if n == 1:
                return [hi]
            return [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
        return [float(lr)] * n

    def make_optimizer(self, lr):
        groups = [{"params": list(g.parameters()), "lr": g_lr}
                  for g, g_lr in zip(self.groups, self.lr_per_group(lr))]
        self.opt = torch.optim.AdamW(groups, weight_decay=self.weight_decay, betas=(0.9, 0.99))
        return self.opt

    # --- training ------------------------------------------------------------
    def fit_one_cycle(self, epochs: int, lr, pct_start=0.25, div=25.0, final_div=1e5,
                      moms=(0.95, 0.85), first_epoch=0, resume_state=None):
        """Warm up from lr/div for pct_start of the steps, then cosine-anneal to lr/(div*final_div);
        momentum (Adam's beta1) moves the opposite way. `first_epoch` numbers epochs across phases;
        `resume_state` (a checkpoint of this phase) continues it exactly."""
        self.make_optimizer(lr)
        max_lrs = self.lr_per_group(lr)
        # torch's OneCycleLR needs a warm-up of more than one step and at least three steps:
        # very short runs (a few tiny batches) get the smallest schedule that works.
        total = max(epochs * len(self.train_dl), 3)
        pct_start = max(pct_start, 1.01 / total)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=max_lrs, total_steps=total, pct_start=pct_start,
            anneal_strategy="cos", div_factor=div, final_div_factor=final_div,
            cycle_momentum=True, base_momentum=moms[1], max_momentum=moms[0])
        start = 0
        if resume_state is not None:
            self.opt.load_state_dict(resume_state["optimizer"])
            self.sched.load_state_dict(resume_state["scheduler"])
            self.scaler.load_state_dict(resume_state["scaler"])
            set_rng_state(resume_state["rng"])
            start = resume_state["epoch"] - first_epoch
        self.first_epoch, self.phase_epochs = first_epoch, epochs
        self._fit(range(start, epochs))
        return self

    def _fit(self, epoch_range):
        self.stop = False
        self.fire("before_fit")
        try:
            for e in epoch_range:
                self.epoch = self.first_epoch + e
                self._train_epoch()
                if self.stop:
                    break
                self.epoch_metrics = {"epoch": self.epoch + 1, "train_loss": self._train_loss, **self.validate()}
                self.epoch_metrics["seconds"] = round(time.perf_counter() - self._epoch_start, 3)
                self.fire("after_epoch")
        finally:
            self.fire("after_fit")

    def _train_epoch(self):
        # Reseed per epoch: a resumed run then sees the same shuffles and augmentations.
        seed_everything(self.seed * 1000 + self.epoch)
        sampler = getattr(self.train_dl, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        self._epoch_start = time.perf_counter()
        self.model.train()
        self.fire("before_epoch")
        self.batches = len(self.train_dl)
        total, count = torch.zeros((), device=self.device), 0
        for self.batch_index, (xb, yb) in enumerate(self.train_dl):
            self.fire("before_batch")
            if self.stop:
                break
            loss = self._train_batch(xb, yb)
            total += loss.detach() * len(yb)
            count += len(yb)
            self.fire("after_batch")
        self._train_loss = (total / max(count, 1)).item()

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_device(self, xb, yb):
        xb = xb.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb.to(self.device, non_blocking=True)

    def _train_batch(self, xb, yb):
        xb, yb = self._to_device(xb, yb)
        self.batch_lr = self.opt.param_groups[-1]["lr"]
        with self._autocast():
            self.pred = self.model(xb)
            self.loss = self.loss_fn(self.pred, yb)
        self.scaler.scale(self.loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)
        if self.sched is not None:
            self.sched.step()
        return self.loss

    @property
    def loss_value(self) -> float:
        return self.loss.item()

    @torch.inference_mode()
    def validate(self) -> dict:
        """Mean validation loss and every metric, over the whole validation set."""
        self.model.eval()
        self.fire("before_validate")
        for m in self.metrics:
            m.reset()
        total, count = 0.0, 0
        for xb, yb in self.valid_dl:
            xb, yb = self._to_device(xb, yb)
            with self._autocast():
                pred = self.model(xb)
                loss = self.loss_fn(pred, yb)
            pred = pred.float()
            total += loss.item() * len(yb)
            count += len(yb)
            for m in self.metrics:
                m.accumulate(pred, yb)
        results = {"valid_loss": total / max(count, 1)}
        results.update({m.name: m.value for m in self.metrics})
        self.fire("after_validate")
        return results

    # --- LR finder -----------------------------------------------------------
    def lr_find(self, start_lr=1e-7, end_lr=10.0, num=100, beta=0.98, diverge=4.0):
        """Exponential LR sweep over training batches, loss smoothed by a debiased moving
        average, stopped once it passes `diverge` times its minimum. The weights and the
        optimiser are restored afterwards.
        Suggestion rule: the LR at the smoothed minimum divided by 10 (fastai's classic rule),
        which lies on the descending slope, where the loss still falls fast."""
        saved = copy.deepcopy(self.unwrapped.state_dict())
        self.make_optimizer(start_lr)
        self.sched = None
        self.model.train()
        seed_everything(self.seed)
        ratio = (end_lr / start_lr) ** (1 / (num - 1))
        lrs, losses = [], []
        avg, best = 0.0, math.inf
        step = 0
        try:
            while step < num:
                for xb, yb in self.train_dl:
                    lr = start_lr * ratio ** step
                    for g in self.opt.param_groups:
                        g["lr"] = lr
                    loss = self._train_batch(xb, yb).item()
                    if not math.isfinite(loss):
                        raise StopIteration
                    avg = beta * avg + (1 - beta) * loss
                    smooth = avg / (1 - beta ** (step + 1))
                    lrs.append(lr)
                    losses.append(smooth)
                    best = min(best, smooth)
                    step += 1
                    if step >= num or (step > 10 and smooth > diverge * best):
                        raise StopIteration
        except StopIteration:
            pass
        finally:
            self.unwrapped.load_state_dict(saved)
            self.opt = None
        return {"lrs": lrs, "losses": losses, "suggestion": suggest_lr(lrs, losses)}

    # --- checkpoints ---------------------------------------------------------
    def state(self, extra=None) -> dict:
        return {
            "model": self.unwrapped.state_dict(),
            "optimizer": self.opt.state_dict() if self.opt else None,
            "scheduler": self.sched.state_dict() if self.sched else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch + 1,  # epochs completed, counted across phases
            "rng": rng_state(),
            "metrics": dict(self.epoch_metrics),
            **self.extra_state,
            **(extra or {}),
        }


def suggest_lr(lrs, losses) -> float:
    if not lrs:
        return 1e-3
    i = min(range(len(losses)), key=losses.__getitem__)
    return max(lrs[i] / 10, lrs[0])


def _autocast_dtype(device: torch.device):
    """bf16 where the GPU supports it, else fp16 (with a grad scaler); none off CUDA,
    where autocast brings no speed on CPUs and changes results."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
