"""Per-epoch weights on a budget, and the epoch a person pinned.

`EpochWeights` keeps the weights of every k-th epoch (weights and what describes them, no
optimiser state: what best.pt holds) as RUN/checkpoints/epochs/epoch_003.pt, so any kept epoch
can be loaded later (Try, Export, Share, comparisons). When the files pass the size limit the
oldest go first; the newest, the best and the pinned epoch are never removed. Settings:
extra.keep_epochs_every (k, default 1; 0 keeps none) and extra.epoch_weights_mb (default 256).

RUN/pinned.json ({"epoch": 3}) names the epoch Try, Export and Share use instead of best.pt.
"""

import json
import re
from pathlib import Path

from .atomic import write_json
from .callbacks import Callback, inference_state, write_checkpoint

FOLDER = "epochs"
PIN_FILE = "pinned.json"
DEFAULT_EVERY = 1
# 256 MB a run: every epoch of the CPU restore network (0.3 MB each), the last five of a
# ResNet-18 classifier (45 MB each); a first one-minute run of 14 epochs kept 630 MB at 1024.
DEFAULT_LIMIT_MB = 256
_NAME = re.compile(r"^epoch_(\d{3,})\.pt$")


def epochs_dir(run_dir) -> Path:
    return Path(run_dir) / "checkpoints" / FOLDER


def epoch_file(run_dir, epoch: int) -> Path:
    return epochs_dir(run_dir) / f"epoch_{int(epoch):03d}.pt"


def kept_epochs(run_dir) -> list:
    """The epochs whose weights are on disk, in order."""
    folder = epochs_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NAME.match(p.name)))


def kept_bytes(run_dir) -> int:
    return sum(epoch_file(run_dir, e).stat().st_size for e in kept_epochs(run_dir))


def pinned_epoch(run_dir) -> int | None:
    path = Path(run_dir) / PIN_FILE
    try:
        epoch = json.loads(path.read_text(encoding="utf-8")).get("epoch")
    except (OSError, ValueError, AttributeError):
        return None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def pin_epoch(run_dir, epoch: int | None) -> None:
    """Make `epoch` the one Try, Export and Share use (None: back to the best epoch)."""
    path = Path(run_dir) / PIN_FILE
    if epoch is None:
        path.unlink(missing_ok=True)
        return
    write_json({"epoch": int(epoch)}, path)


def settings(extra: dict) -> tuple:
    """(every, limit in bytes) from a config's extra."""
    every = extra.get("keep_epochs_every", DEFAULT_EVERY)
    limit = extra.get("epoch_weights_mb", DEFAULT_LIMIT_MB)
    return int(every), int(float(limit) * 2**20)


class EpochWeights(Callback):
    order = 24  # before the checkpoint: a reported epoch has its weights kept

    def __init__(
        self, run_dir, every: int = DEFAULT_EVERY, limit_bytes: int = DEFAULT_LIMIT_MB * 2**20, saver=None, log=None
    ):
        self.run_dir, self.every, self.limit = Path(run_dir), every, limit_bytes
        self.saver, self.log = saver, log
        self.best_epoch = None

    def after_epoch(self):
        learn = self.learner
        epoch = learn.epoch + 1
        value = learn.epoch_metrics.get(self.saver.monitor) if self.saver is not None else None
        if value is not None and self.saver.improved(value):
            self.best_epoch = epoch  # the saver (order 28) has not yet seen this epoch
        if self.every <= 0 or epoch % self.every:
            return
        write_checkpoint(inference_state(learn.state()), epoch_file(self.run_dir, epoch))
        self.enforce_budget(epoch)

    def enforce_budget(self, newest: int) -> None:
        keep = {newest, self.best_epoch, pinned_epoch(self.run_dir)}
        epochs = kept_epochs(self.run_dir)
        sizes = {e: epoch_file(self.run_dir, e).stat().st_size for e in epochs}
        total = sum(sizes.values())
        for epoch in epochs:  # oldest first
            if total <= self.limit:
                break
            if epoch in keep:
                continue
            epoch_file(self.run_dir, epoch).unlink(missing_ok=True)
            total -= sizes[epoch]
            if self.log:
                self.log(f"epoch weights: removed epoch {epoch} to stay within {self.limit / 2**20:.0f} MB")
