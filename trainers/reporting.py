"""How a training run tells the outside world what it is doing.

The trainers never know who listens: the console, a file, or the studio's store.
A reporter subclasses `Reporter` and overrides what it cares about.
"""
import sys
import time


class Reporter:
    """The protocol. Every method is optional; the defaults do nothing."""

    def start(self, info: dict) -> None:
        """Once, before the first batch: device, epochs, batches per epoch, lr, monitor..."""

    def batch(self, epoch: int, batch: int, batches: int, loss: float, lr: float) -> None:
        """After every training batch (epoch counts from 1, batch from 1)."""

    def epoch(self, metrics: dict) -> None:
        """After every epoch: epoch, train_loss, valid_loss, each metric by name, seconds."""

    def sample(self, epoch: int, path: str) -> None:
        """A sample grid image for this epoch was written to `path`."""

    def log(self, line: str) -> None:
        """A human-readable line for the run's log."""

    def status(self, status: str, detail: str = "") -> None:
        """A change of state: running, completed, stopped, failed."""

    def should_stop(self) -> bool:
        """Checked between batches; True ends the run cleanly after saving."""
        return False


class MultiReporter(Reporter):
    """Fans every call out to several reporters; stops when any of them asks."""

    def __init__(self, *reporters):
        self.reporters = [r for r in reporters if r is not None]

    def _each(self, name, *args):
        for r in self.reporters:
            getattr(r, name)(*args)

    def start(self, info): self._each("start", info)
    def batch(self, *a): self._each("batch", *a)
    def epoch(self, metrics): self._each("epoch", metrics)
    def sample(self, epoch, path): self._each("sample", epoch, path)
    def log(self, line): self._each("log", line)
    def status(self, status, detail=""): self._each("status", status, detail)

    def should_stop(self):
        return any(r.should_stop() for r in self.reporters)


class ConsoleReporter(Reporter):
    """One rewritten progress line per batch, one kept line per epoch."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self._last = 0.0

    def batch(self, epoch, batch, batches, loss, lr):
        now = time.monotonic()
        if batch == batches or now - self._last > 0.5:
            self._last = now
            self.stream.write(f"\repoch {epoch} batch {batch}/{batches} loss {loss:.4f} lr {lr:.2e}   ")
            self.stream.flush()

    def epoch(self, metrics):
        parts = [f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()]
        self.stream.write("\r" + "  ".join(parts) + "\n")
        self.stream.flush()

    def log(self, line):
        self.stream.write(line + "\n")
        self.stream.flush()
