"""One harness around every training loop: the run folder, resume, reporting, checkpoints and
the result, written once for the Learner (fit.py), the GAN loop (gan_loop.py) and the pixel
optimisation of Gatys style transfer (tasks/style.py).

A loop only has to look like the Learner to its callbacks (model, epoch, batch_index, batches,
loss_value, batch_lr, epoch_metrics, stop, state()); the harness does the rest:

    harness = RunHarness(config, out_dir, reporter, resume)   # reads last.pt when resuming
    report = harness.open()                                   # folder, config.json, run files
    loop.add_callbacks(harness.callbacks(sample_fn, monitor, higher_is_better))
    harness.start(device, batches, lr)                        # the reporter's start + "running"
    ... train ...
    return harness.finish(loop, device, lr)                   # a RunResult
"""

import dataclasses
from pathlib import Path

from .callbacks import (
    NO_CHECKPOINT_YET,
    EpochSamples,
    ReportEvents,
    SaveCheckpoints,
    TimedCheckpoints,
    load_last_checkpoint,
)
from . import epoch_weights
from .epoch_weights import EpochWeights
from .heldout import HeldoutRecord
from .reporting import MultiReporter, Reporter
from .run_files import RunFiles


@dataclasses.dataclass
class RunResult:
    """What a finished (or stopped) run says about itself; the store keeps it as JSON."""

    status: str  # "completed" or "stopped"
    epochs_done: int
    best_metric: float | None
    monitor: str
    device: str
    lr: float | None
    pretrained: bool | None = None  # the weights the run started from, where that applies
    weights: str = ""
    estimate_s: float | None = None  # seconds the rehearsal before the first step predicted (budget.py)
    seconds: float | None = None  # seconds the run really took, from fit() to its end

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __getitem__(self, key):  # reads like the JSON the store keeps: result["status"]
        return getattr(self, key)


class RunHarness:
    def __init__(self, config, out_dir, reporter: Reporter | None = None, resume: bool = False, is_main: bool = True):
        self.config, self.out, self.reporter, self.is_main = config, Path(out_dir), reporter, is_main
        self.resume = resume  # with no checkpoint yet (stopped in the first epoch): start again
        self.checkpoint = load_last_checkpoint(self.out) if resume else None
        self.done = self.checkpoint["epoch"] if self.checkpoint else 0  # epochs finished before
        self.files, self.report, self.saver = None, Reporter(), None
        self.monitor, self.higher_is_better = "", False

    @property
    def best_before(self):
        return self.checkpoint.get("best_metric") if self.checkpoint else None

    def open(self, unit: str = "epoch") -> Reporter:
        """The run folder, its config.json and record files (rank 0 only under DDP); on resume,
        metric lines of epochs that will run again are dropped. Returns the run's reporter."""
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.config.save(self.out / "config.json")
            self.files = RunFiles(self.out)
            self.report = MultiReporter(self.files, self.reporter)
            # The checkpoint's own epoch is reported again in start(): a kill may have come
            # between its checkpoint and its report.
            self.files.keep_epochs_up_to(self.done - 1 if self._report_again() else self.done)
        if self.checkpoint is not None:
            batch = self.checkpoint.get("batch")
            self.report.log(f"resuming after {unit} {self.done}" + (f", batch {batch}" if batch else ""))
        elif self.resume:
            self.report.log(NO_CHECKPOINT_YET)
        return self.report

    def _report_again(self) -> bool:
        return bool(self.checkpoint) and (self.checkpoint.get("metrics") or {}).get("epoch") == self.done > 0

    def callbacks(self, sample_fn, monitor: str, higher_is_better: bool, mid_epoch: bool = False, heldout=None) -> list:
        """The standard callbacks: checkpoints (best by `monitor`), a sample grid per epoch, and
        progress to the reporter. Ranks other than 0 get none. `mid_epoch`: the loop can continue
        an epoch from a checkpoint (the Learner), so long epochs get time checkpoints too
        (extra.checkpoint_minutes, default 10; 0 turns them off). Every run keeps its epochs'
        weights on a budget (epoch_weights.py); a run with `heldout` pictures records their
        outputs and scores every epoch (heldout.py)."""
        self.monitor, self.higher_is_better = monitor, higher_is_better
        self.saver = SaveCheckpoints(self.out / "checkpoints", monitor, higher_is_better)
        self.saver.best = self.best_before
        if not self.is_main:
            return []
        callbacks = [
            self.saver,
            EpochSamples(sample_fn, self.out / "samples", self.report.sample),
            ReportEvents(self.report),
        ]
        every, limit = epoch_weights.settings(self.config.extra)
        callbacks.append(EpochWeights(self.out, every, limit, self.saver, self.report.log))
        if heldout is not None:
            record = HeldoutRecord(heldout, self.out)
            if self.checkpoint is not None or self.resume:
                record.keep_epochs_up_to(self.done)
            callbacks.append(record)
        minutes = self.config.extra.get("checkpoint_minutes", 10)
        if mid_epoch and minutes:
            callbacks.append(TimedCheckpoints(self.out / "checkpoints", float(minutes), self.saver, self.report.log))
        return callbacks

    def start(self, device, batches_per_epoch: int, lr, world_size: int = 1, **more) -> None:
        self.report.start(
            {
                "device": str(device),
                "epochs": self.config.epochs,
                "batches_per_epoch": batches_per_epoch,
                "monitor": self.monitor,
                "higher_is_better": self.higher_is_better,
                "lr": lr,
                "task": self.config.task,
                "world_size": world_size,
                **more,
            }
        )
        self.report.status("running")
        if self._report_again():
            self.report.epoch(dict(self.checkpoint["metrics"]))

    def finish(self, loop, device, lr, **more) -> RunResult:
        """Say how the loop ended: stopped (asked to, between batches) or completed."""
        status = "stopped" if loop.stop else "completed"
        epochs_done = loop.epoch + (0 if loop.stop else 1) if loop.epoch_metrics else self.done
        return self.result(status, epochs_done, device, lr, **more)

    def result(self, status, epochs_done, device, lr, **more) -> RunResult:
        self.report.status(status)
        best = self.saver.best if self.saver else self.best_before
        return RunResult(status, epochs_done, best, self.monitor, str(device), lr, **more)
