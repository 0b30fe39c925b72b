"""Callbacks: small objects the Learner calls at each event of its loop (fastai's design).

Events, in order: before_fit, before_epoch, then for every training batch before_batch,
after_loss, before_step, after_step, after_batch; then before_validate, after_validate,
after_epoch; after_fit at the very end. A batch that raises fires on_batch_error first.
A callback reads and changes the learner through `self.learner`: the batch lives on it
(`xb`, `yb`, `pred`, `loss`), so a callback may replace the inputs in before_batch (mixup),
the loss in after_loss, or the gradients in before_step (clipping).
Control: `learner.stop = True` ends the run cleanly between batches; raising `CancelBatch`
skips the rest of a batch (no optimiser step); raising `CancelValidate` in before_validate
skips the epoch's validation and its after_epoch (the LR finder's sweep).
"""
import random
import time
from pathlib import Path

import numpy as np
import torch

from .atomic import save_image, save_torch

EVENTS = ("before_fit", "before_epoch", "before_batch", "after_loss", "before_step", "after_step",
          "after_batch", "on_batch_error", "before_validate", "after_validate", "after_epoch", "after_fit")


class CancelBatch(Exception):
    """Raised by a callback during a training batch: skip the rest of it, no optimiser step."""


class CancelValidate(Exception):
    """Raised by a callback in before_validate: no validation and no after_epoch this epoch."""


class Callback:
    order = 0  # lower runs first at every event
    learner = None


class CallbackHost:
    """What a training loop needs to call its callbacks: kept in order, each told its loop."""

    def add_callbacks(self, callbacks):
        for cb in callbacks:
            cb.learner = self
            self.callbacks.append(cb)
        self.callbacks.sort(key=lambda cb: cb.order)

    def remove_callbacks(self, callbacks):
        for cb in callbacks:
            self.callbacks.remove(cb)
            cb.learner = None

    def fire(self, event: str):
        assert event in EVENTS, event
        for cb in self.callbacks:
            handler = getattr(cb, event, None)
            if handler is not None:
                handler()


def read_checkpoint(path, what: str = "the checkpoint") -> dict:
    """A checkpoint file as a dict, read with weights_only=True: tensors, numbers, strings and
    containers only, so a file someone placed cannot run code when it is read (a pickle can).
    A file that is not a complete checkpoint is a ConfigError naming `what`, never the path."""
    from .errors import ConfigError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated zip, a pickle that asks for code, anything else
        raise ConfigError(f"Cannot read {what}: the file is truncated, damaged or not a plain "
                          f"Darkroom checkpoint.") from None
    if not isinstance(state, dict):
        raise ConfigError(f"Cannot read {what}: it holds no Darkroom checkpoint.")
    return state


def checkpoint_complete(path) -> bool:
    """Whether a checkpoint file is whole, read from its zip directory alone (torch.save writes a
    zip whose directory sits at the end, so a file cut short has none): cheap enough to ask
    before queueing a resume instead of letting its worker fail."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_last_checkpoint(out_dir) -> dict | None:
    """The checkpoint a resumed run continues from, or None when the run has none yet (it was
    stopped in its first epoch): resuming then means starting again with the same settings."""
    last = Path(out_dir) / "checkpoints" / "last.pt"
    if not last.is_file():
        return None
    return read_checkpoint(last, f"the last checkpoint of run {Path(out_dir).name}")


NO_CHECKPOINT_YET = "no checkpoint yet (stopped during the first epoch): starting again with the same settings"


# What only a resumed run reads. best.pt is for using the model (Try, Inspect, export, a gan's
# generator), so it leaves these out: for a U-Net, Adam's two moments are twice the weights.
RESUME_ONLY = ("optimizer", "critic_optimizer", "scheduler", "scaler", "rng", "switcher", "losses")


def write_checkpoint(state: dict, path) -> None:
    """Write atomically: a crash mid-write never leaves a broken checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_torch(state, path)


def inference_state(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in RESUME_ONLY}


def rng_state() -> dict:
    """Every generator's state in types torch.load(weights_only=True) accepts: numpy's key array
    becomes a tensor and its tuple a list, Python's tuple of ints a list."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python": [int(version), list(internal), gauss_next],
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((kind, keys.astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class GradientClip(Callback):
    """Clips the gradients' global norm to `max_norm` before every optimiser step
    (RunConfig.grad_clip). Under a grad scaler the gradients are unscaled first, so the
    limit is in the gradients' true units."""
    order = 10

    def __init__(self, max_norm: float):
        self.max_norm = max_norm

    def before_step(self):
        learn = self.learner
        learn.scaler.unscale_(learn.opt)
        torch.nn.utils.clip_grad_norm_(learn.model.parameters(), self.max_norm)


class SaveCheckpoints(Callback):
    """`last.pt` (everything a resume needs) after every epoch; `best.pt` (the weights and what
    describes them, without optimiser state) whenever the monitored metric improves."""
    # After the epoch's files (samples, held-out scores, kept weights) and before ReportEvents:
    # an epoch is reported done only once its checkpoint is on disk. A kill between the two
    # loses no record: a resume reports the checkpoint's epoch again (its metrics are in it).
    order = 28

    def __init__(self, folder, monitor: str, higher_is_better: bool, extra=None):
        self.folder = Path(folder)
        self.monitor, self.higher = monitor, higher_is_better
        self.best = None
        self.extra = extra or {}

    def improved(self, value) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.higher else value < self.best

    def after_epoch(self):
        learn = self.learner
        value = learn.epoch_metrics.get(self.monitor)
        better = value is not None and self.improved(value)
        if better:
            self.best = value
        extra = dict(self.extra, best_metric=self.best, monitor=self.monitor)
        state = learn.state(extra)
        write_checkpoint(state, self.folder / "last.pt")
        if better:
            write_checkpoint(inference_state(state), self.folder / "best.pt")


class TimedCheckpoints(Callback):
    """`last.pt` every `minutes` inside long epochs too, so a kill loses at most that much work.
    The loop must continue an epoch from it (the Learner's mid_epoch_state and skip); the
    epoch's own checkpoint (SaveCheckpoints) resets the clock."""
    order = 55  # after the batch is reported

    def __init__(self, folder, minutes: float, saver: SaveCheckpoints, log=None, clock=time.monotonic):
        self.path = Path(folder) / "last.pt"
        self.seconds, self.saver, self.log, self.clock = minutes * 60, saver, log, clock
        self.last = None

    def before_fit(self):
        self.last = self.clock()

    def after_epoch(self):
        self.last = self.clock()

    def after_batch(self):
        learn = self.learner
        if self.clock() - self.last < self.seconds or learn.batch_index + 1 >= learn.batches:
            return  # not yet, or the epoch's end is next and writes its own checkpoint
        write_checkpoint(learn.mid_epoch_state({"best_metric": self.saver.best, "monitor": self.saver.monitor}), self.path)
        self.last = self.clock()
        if self.log:
            self.log(f"time checkpoint: epoch {learn.epoch + 1}, batch {learn.batch_index + 1}/{learn.batches}")


class EpochSamples(Callback):
    """Writes a picture of what the model does on fixed validation items, once per epoch."""
    order = 20

    def __init__(self, sample_fn, folder, on_sample=None):
        self.sample_fn, self.folder, self.on_sample = sample_fn, Path(folder), on_sample

    def after_epoch(self):
        learn = self.learner
        epoch = learn.epoch + 1
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"epoch_{epoch:03d}.png"
        image = learn.sample_with(self.sample_fn) if hasattr(learn, "sample_with") else self.sample_fn(learn.model)
        save_image(image, path)
        if self.on_sample:
            self.on_sample(epoch, str(path))


class ReportEvents(Callback):
    """Forwards the loop's progress to a Reporter and asks it whether to stop."""
    order = 30

    def __init__(self, reporter):
        self.reporter = reporter

    def before_batch(self):
        if self.reporter.should_stop():
            self.learner.stop = True

    def after_batch(self):
        learn = self.learner
        self.reporter.batch(learn.epoch + 1, learn.batch_index + 1, learn.batches, learn.loss_value, learn.batch_lr)

    def after_epoch(self):
        self.reporter.epoch(dict(self.learner.epoch_metrics))
