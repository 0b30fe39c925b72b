"""The Learner: one training loop, events for callbacks, one-cycle, LR finder, freezing.

Read it top to bottom: `fit_one_cycle` builds the optimiser and schedule, then `_fit`
runs epochs of `_train_batch` and `validate`, firing events that callbacks hook into
(callbacks.py lists them). The batch in hand is on the learner: `xb`, `yb`, `pred`, `loss`.
"""
import copy
import itertools
import math
import time
from contextlib import nullcontext

import torch
from torch import nn

from .callbacks import CallbackHost, CancelBatch, CancelValidate, rng_state, seed_everything, set_rng_state
from .lr_finder import LRFinder, ReportSweep


def _per_item(timed: list) -> float:
    """Seconds per item from (seconds, items) of validation batches, read on the fullest ones: a
    validation set's last batch is often short (20 items in batches of 16: one of 4), and its
    time, counted for every batch and for precise batch norm's passes, left 1.5-2 s of a 12 s
    segment epoch out of its estimate. The fastest of them: one slow batch on a busy machine
    should not swell every epoch."""
    most = max(items for _, items in timed)
    return min(seconds for seconds, items in timed if items == most) / most


def _items(loader) -> int:
    """How many items one pass over `loader` gives (a DDP rank's share with a DistributedSampler)."""
    try:
        return len(loader.sampler)
    except (AttributeError, TypeError):
        return len(loader) * (getattr(loader, "batch_size", None) or 1)


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
        self.xb = self.yb = self.pred = self.loss = self.error = None  # the batch in hand
        self.epoch_metrics = {}
        self.extra_state = {}  # anything a caller wants stored in checkpoints (e.g. phase)
        # Memory guardrails (memory.py): a batch goes through the model in `chunks` parts
        # (gradients summed, so steps and schedule stay the same), validation in `valid_chunks`.
        self.chunks, self.valid_chunks = 1, 1
        self.stage = "training"  # what the loop does now, for a callback handling an error
        self.log = lambda line: None  # fit() points this at the run's log
        self.infer = None  # (model, x) -> prediction in validation (TaskParts.infer), else model(x)
        self._resume_batch = None  # a mid-epoch checkpoint to continue from (fit_one_cycle)
        self._train_total, self._train_count = None, 0

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
        # torch's fused AdamW: one kernel over all parameters instead of a loop of small ones. On a
        # CPU with small pictures the optimiser step of resnet18's 11M weights cost as much as the
        # forward and backward; fused, a step took 0.13 s instead of 0.21 (32 px, batch 32).
        fused = self.device.type in ("cpu", "cuda")
        self.opt = torch.optim.AdamW(groups, weight_decay=self.weight_decay, betas=(0.9, 0.99), fused=fused or None)
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
            if resume_state.get("batch"):  # a time checkpoint inside an epoch: continue that epoch
                self._resume_batch = resume_state
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
                try:
                    valid = self.validate()
                except CancelValidate:
                    continue
                self.epoch_metrics = {"epoch": self.epoch + 1, "train_loss": self._train_loss, **valid}
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
        self._train_total, self._train_count = torch.zeros((), device=self.device), 0
        batches, skip = iter(self.train_dl), self._skip_to_checkpoint()
        for _ in range(skip):
            next(batches)
        if skip:
            # The same shuffle, and the loader (its workers' RNG too) moved on as it did; then
            # the main process's RNG as the checkpoint left it: the rest of the epoch is the same.
            set_rng_state(self._resume_batch["rng"])
            self._train_total += self._resume_batch["train_total"]
            self._train_count = self._resume_batch["train_count"]
            # Callbacks that keep something of the epoch's batches (precise batch norm's last
            # inputs) get it back as the checkpoint kept it.
            saved = self._resume_batch.get("callbacks") or {}
            for cb in self.callbacks:
                if hasattr(cb, "load_mid_epoch_state") and type(cb).__name__ in saved:
                    cb.load_mid_epoch_state(saved[type(cb).__name__])
            self._resume_batch = None
        for self.batch_index, (xb, yb) in enumerate(batches, start=skip):
            # The batch lives on the learner, so callbacks can read and replace it.
            self.xb, self.yb = self._to_device(xb, yb)
            self.fire("before_batch")
            if self.stop:
                break
            try:
                self._train_batch()
            except CancelBatch:
                continue
            self._train_total += self.loss.detach() * len(self.yb)
            self._train_count += len(self.yb)
            self.fire("after_batch")
        self._train_loss = (self._train_total / max(self._train_count, 1)).item()

    def _skip_to_checkpoint(self) -> int:
        """Batches of this epoch a mid-epoch checkpoint already trained on (0 for a fresh epoch).
        They are drawn from the loader again, not trained on: a resume costs their data loading."""
        state = self._resume_batch
        if state is None or state["epoch"] != self.epoch:
            return 0
        return min(int(state["batch"]), len(self.train_dl))

    def mid_epoch_state(self, extra=None) -> dict:
        """state() after the batch in hand, inside an epoch: what a time checkpoint writes.
        `epoch` stays the count of finished epochs; `batch` says how far this one got."""
        kept = {type(cb).__name__: cb.mid_epoch_state() for cb in self.callbacks if hasattr(cb, "mid_epoch_state")}
        return self.state({**(extra or {}), "epoch": self.epoch, "batch": self.batch_index + 1,
                           "train_total": float(self._train_total), "train_count": self._train_count,
                           "callbacks": kept})

    def _train_batch(self):
        try:
            self._one_step()
        except CancelBatch:
            self.opt.zero_grad(set_to_none=True)
            raise
        except Exception as error:
            # A callback may handle a failed batch (out of memory, say) by setting
            # learner.error = None; the batch is then skipped like a cancelled one.
            self.error = error
            self.fire("on_batch_error")
            if self.error is error:
                raise
            self.opt.zero_grad(set_to_none=True)
            if self.error is not None:  # a callback's own, clearer error
                raise self.error from error
            raise CancelBatch from error

    def _one_step(self):
        """Forward, loss, backward, step: each stage ends in an event a callback can act on."""
        self.batch_lr = self.opt.param_groups[-1]["lr"]
        if self.chunks == 1:
            with self._autocast():
                self.pred = self.model(self.xb)
                self.loss = self.loss_fn(self.pred, self.yb)
            self.fire("after_loss")
            self.scaler.scale(self.loss).backward()
        else:  # after an out-of-memory error: the same batch in parts, gradients summed
            total, n = 0.0, len(self.yb)
            for xc, yc in zip(self.xb.chunk(self.chunks), self.yb.chunk(self.chunks)):
                with self._autocast():
                    self.pred = self.model(xc)
                    self.loss = self.loss_fn(self.pred, yc) * (len(yc) / n)
                self.fire("after_loss")
                self.scaler.scale(self.loss).backward()
                total = total + self.loss.detach()
            self.loss = total
        self.fire("before_step")
        self.scaler.step(self.opt)
        self.scaler.update()
        self.fire("after_step")
        self.opt.zero_grad(set_to_none=True)
        if self.sched is not None:
            self.sched.step()

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_device(self, xb, yb):
        xb = xb.to(self.device, non_blocking=True)
        if self.device.type == "cuda" and xb.dim() == 4:  # pictures (not precomputed activations)
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb.to(self.device, non_blocking=True)

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
            pred, loss = self._valid_batch(xb, yb)
            total += loss * len(yb)
            count += len(yb)
            for m in self.metrics:
                m.accumulate(pred, yb)
        results = {"valid_loss": total / max(count, 1)}
        results.update({m.name: m.value for m in self.metrics})
        self.fire("after_validate")
        return results

    def _valid_batch(self, xb, yb):
        """(float predictions, mean loss) of one validation batch, in `valid_chunks` parts."""
        def forward():
            preds, loss = [], 0.0
            for xc, yc in zip(xb.chunk(self.valid_chunks), yb.chunk(self.valid_chunks)):
                with self._autocast():
                    pred = self.infer(self.model, xc) if self.infer else self.model(xc)
                    loss += self.loss_fn(pred, yc).item() * len(yc) / len(yb)
                preds.append(pred.float())
            return torch.cat(preds), loss

        return self._retrying(forward, "validating", len(yb))

    def sample_with(self, sample_fn):
        """sample_fn(model) (a task's sample grid), with the model taking its input in
        `valid_chunks` parts once memory ran out."""
        size = getattr(self.valid_dl, "batch_size", None) or 2
        return self._retrying(lambda: sample_fn(InParts(self.model, self.valid_chunks) if self.valid_chunks > 1
                                                else self.model), "drawing the sample grid", size)

    def _retrying(self, work, stage, batch):
        """work(), again after a callback handled its error (on_batch_error: memory.py halves
        the parts); any other error, or one no callback handled, is raised."""
        while True:
            self.stage, self.batch_size_now = stage, batch
            try:
                return work()
            except Exception as error:
                self.error = error
                self.fire("on_batch_error")
                if self.error is error:
                    raise
                if self.error is not None:
                    raise self.error from error
            finally:
                self.stage = "training"

    # --- before the first step ------------------------------------------------
    def rehearse(self, timed_batches: int = 3, epoch_end=None) -> dict:
        """Before the first step: one training batch forward and backward and one validation
        batch forward at the run's sizes on its device (an out-of-memory error halves the batch
        here, before anything is learnt), then `timed_batches` more training steps and a
        validation batch, timed, for the run's estimate. Loading and augmenting count. The
        model, its batch-norm statistics and the random state are as they were afterwards.
        `epoch_end(learner)`, called once while the optimiser holds its state, is timed as the work
        each epoch ends with (writing checkpoints, drawing the sample grid).
        Returns seconds per training batch and per validation batch, and per epoch's end."""
        saved = copy.deepcopy(self.unwrapped.state_dict())
        rng = rng_state()
        self.make_optimizer(0.0)  # a real AdamW step that changes nothing (lr 0)
        sched, self.sched = self.sched, None
        self.model.train()
        batches = itertools.cycle(self.train_dl)
        try:
            timings = []
            for _ in range(1 + timed_batches):
                start = time.perf_counter()
                xb, yb = next(batches)
                self.xb, self.yb = self._to_device(xb, yb)
                while True:
                    try:
                        self._train_batch()
                        break
                    except CancelBatch:  # memory ran out and the batch was halved: again
                        continue
                self._sync()
                timings.append(time.perf_counter() - start)
            self.model.eval()
            valid = []  # (seconds, items)
            with torch.inference_mode():
                for xb, yb in itertools.islice(itertools.cycle(self.valid_dl), 3):
                    start = time.perf_counter()
                    self._valid_batch(*self._to_device(xb, yb))
                    self._sync()
                    valid.append((time.perf_counter() - start, len(xb)))
            start = time.perf_counter()
            if epoch_end is not None:
                epoch_end(self)
            end_s = time.perf_counter() - start
        finally:
            self.unwrapped.load_state_dict(saved)
            set_rng_state(rng)
            self.opt, self.sched = None, sched
            self.model.train()
        # The first batch pays for warming up (allocations, kernel choice); the timed ones, like
        # a first epoch, still decode their images. The median: a busy machine's one slow batch
        # should not double the estimate.
        train_s = sorted(timings[1:])[timed_batches // 2] if timed_batches else timings[0]  # the median
        return {"train_batch_s": train_s, "valid_item_s": _per_item(valid[1:]), "first_batch_s": timings[0],
                "epoch_end_s": end_s}

    def estimate_epoch_s(self, timing: dict) -> float:
        """An epoch's seconds from a rehearsal: its training batches, its validation items, what
        callbacks add before validating (precise batch norm's forward passes of training batches,
        at validation's speed per item) and the epoch's end."""
        extra = sum(getattr(cb, "forward_batches", lambda: 0)() for cb in self.callbacks)
        forward_items = _items(self.valid_dl) + extra * (getattr(self.train_dl, "batch_size", None) or 1)
        return (len(self.train_dl) * timing["train_batch_s"] + forward_items * timing["valid_item_s"]
                + timing.get("epoch_end_s", 0.0))

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    # --- LR finder -----------------------------------------------------------
    def lr_find(self, reporter=None, **settings) -> dict:
        """Sweep the learning rate on this loop with an `LRFinder` callback (lr_finder.py;
        `settings` go to it). Weights are restored afterwards and the optimiser dropped. A
        `reporter` hears each batch of the sweep (of at most `num`) and may stop it."""
        finder = LRFinder(**settings)
        self.make_optimizer(finder.start_lr)
        self.sched = None
        self.first_epoch = 0
        added = [finder] + ([ReportSweep(reporter, finder)] if reporter is not None else [])
        self.add_callbacks(added)
        try:
            # Enough passes over the data for the sweep's batches; the finder stops it sooner
            # once the loss diverges.
            self._fit(range(math.ceil(finder.num / max(len(self.train_dl), 1))))
        finally:
            self.remove_callbacks(added)
            self.opt = None
        return finder.result()

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


class InParts(nn.Module):
    """A model that takes its input batch in `parts` pieces: for callers that cannot be told to
    split a batch (a task's sample grid) after memory ran out."""

    def __init__(self, model: nn.Module, parts: int):
        super().__init__()
        self.model, self.parts = model, parts

    def forward(self, x):
        return torch.cat([self.model(part) for part in x.chunk(self.parts)])


def _autocast_dtype(device: torch.device):
    """bf16 where the GPU supports it, else fp16 (with a grad scaler); none off CUDA,
    where autocast brings no speed on CPUs and changes results."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
