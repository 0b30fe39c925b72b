"""One run in its own process: `python -m studio.worker --workspace DIR RUN_ID`.

The scheduler starts one worker per run, so a crash in training cannot take the studio
down and the GPU's memory is returned when the run ends. The worker reads the run's
record from the store, trains through `trainers`, and reports into the store.
"""
import argparse
import os
import signal
import socket
import sys
import threading
import time
import traceback

from .remote_store import RemoteStore, ReportRefused
from .run_disk import drop_resume_state
from .store import Store
from .workspace import Workspace

HEARTBEAT_S = 2.0       # a slow batch must not look like a dead worker (the scheduler waits ~15 s)
STOP_CHECK_S = 0.5      # should_stop() reads the disk at most this often
FLUSH_S = 0.3           # batch losses are written in small bursts, not one transaction each
SIGTERM_GRACE_S = 10.0  # after SIGTERM, give up on a clean stop after this long
MAX_ERROR_CHARS = 400   # a run's error is one line for a table; the traceback goes to log.txt


def _higher_is_better(monitor: str) -> bool:
    """Losses and error rates fall as a model improves; accuracy, dice, PSNR... rise."""
    name = (monitor or "").lower()
    return not ("loss" in name or "error" in name)


class StoreReporter:
    """A trainers Reporter (the protocol of trainers/reporting.py, every method of it) whose
    calls become small writes into the store. It does not subclass trainers' Reporter: importing
    trainers loads torch (seconds), and the worker's heartbeat must start before that."""

    def __init__(self, store: Store, run_id: str):
        self.store, self.run_id = store, run_id
        self.monitor, self.higher, self.best = None, True, None
        self.epochs = None
        self._rows, self._last_flush = [], 0.0
        self._last_check, self._stop = float("-inf"), False
        self._first = None  # (time, step) of the first batch this process saw: for the ETA

    def start(self, info):
        self.monitor = info.get("monitor")
        self.higher = info.get("higher_is_better", _higher_is_better(self.monitor))
        self.epochs = info.get("epochs")
        record = self.store.get_run(self.run_id) or {}
        self.best = record.get("best_metric")  # a resumed run keeps its best so far
        self.store.update_run(self.run_id, epochs=self.epochs, batches=info.get("batches_per_epoch"),
                              monitor=self.monitor, higher_is_better=self.higher,
                              device=_device_label(info.get("device")))

    def batch(self, epoch, batch, batches, loss, lr):
        now = time.monotonic()
        step = (epoch - 1) * batches + batch
        if self._first is None:
            self._first = (now, step)
        self._rows.append((epoch, batch, batches, loss, lr))
        if now - self._last_flush >= FLUSH_S or batch == batches:
            self.flush(self._eta(now, step, batches))

    def _eta(self, now, step, batches):
        t0, s0 = self._first
        if not self.epochs or step <= s0:
            return None
        return (now - t0) / (step - s0) * max(self.epochs * batches - step, 0)

    def flush(self, eta_s=None):
        if self._rows:
            rows, self._rows = self._rows, []
            self.store.add_batch_losses(self.run_id, rows, eta_s=eta_s)
            self.store.heartbeat(self.run_id)
        self._last_flush = time.monotonic()

    def epoch(self, metrics):
        self.flush()
        self.store.add_epoch_metrics(self.run_id, metrics)
        value = metrics.get(self.monitor)
        if isinstance(value, (int, float)):
            if self.best is None or (value > self.best if self.higher else value < self.best):
                self.best = value
                self.store.update_run(self.run_id, best_metric=value)

    def sample(self, epoch, path):
        self.store.add_sample(self.run_id, epoch, path)

    def log(self, line):
        self.store.append_log(self.run_id, line)

    def status(self, status, detail=""):
        """The worker itself moves the run through its statuses, checked by the store."""

    def should_stop(self):
        now = time.monotonic()
        if not self._stop and now - self._last_check >= STOP_CHECK_S:
            self._last_check = now
            self._stop = self.store.stop_requested(self.run_id)
        return self._stop


def _device_label(device) -> str | None:
    """'cuda:2' for the physical GPU the scheduler gave this worker, not the 'cuda' it sees."""
    if device is None:
        return None
    device = str(device)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if device.startswith("cuda") and visible.isdigit():
        return f"cuda:{visible}"
    return device


def human_error(exc: BaseException) -> str:
    from trainers.errors import ConfigError

    if isinstance(exc, ConfigError):
        return str(exc)
    message = " ".join(str(exc).split())
    if len(message) > MAX_ERROR_CHARS:  # the whole of it is in log.txt
        message = message[:MAX_ERROR_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class Heartbeat(threading.Thread):
    def __init__(self, store, run_id):
        super().__init__(daemon=True, name="heartbeat")
        self.store, self.run_id = store, run_id
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.store.heartbeat(self.run_id)
            except ReportRefused:
                # A cluster worker whose run was marked interrupted (and maybe resumed on
                # another node) must not train on beside the new attempt.
                print("darkroom worker: the studio ended this attempt of the run; exiting.", file=sys.stderr, flush=True)
                os._exit(3)
            except Exception:  # a busy disk now and then must not end the run
                pass
            self.done.wait(HEARTBEAT_S)


def _write_log(run_dir, text: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "log.txt").open("a", encoding="utf-8") as f:
        f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + text.rstrip("\n") + "\n")


def claim(store: Store, record: dict) -> bool:
    """Mark the run as running in this process. The scheduler has usually claimed it already
    (status running, pid of this process or not yet written); run by hand, it is still queued."""
    run_id, pid = record["id"], os.getpid()
    if record["status"] == "queued":
        return store.transition(run_id, "running", pid=pid)
    if record["status"] == "running" and record.get("pid") in (None, pid):
        return store.update_run(run_id, pid=pid)
    return False


def open_store(workspace_dir, run_id: str, remote=None):
    """(workspace, store). On a Ray cluster the worker reports through the studio's endpoint
    and never opens the store file (see studio/report_server.py); the workspace itself must be
    mounted on this node at the studio's path, which is checked before anything is written."""
    remote = remote or RemoteStore.from_env(run_id)
    if remote is None:
        ws = Workspace.open(workspace_dir)
        return ws, Store(ws.store_dir)
    ws = Workspace(workspace_dir)
    if not (ws.datasets_dir.is_dir() and ws.runs_dir.is_dir()):
        message = (f"This node ({socket.gethostname()}) cannot see the workspace {ws.root}: mount it at the "
                   "same path on every node of the cluster.")
        remote.append_log(run_id, "failed: " + message)
        remote.transition(run_id, "failed", error=message)
        raise SystemExit(2)
    return ws, remote


def run(workspace_dir, run_id: str, remote=None, extra_reporter=None) -> int:
    """Train one run. `remote`: a RemoteStore to report through (else the environment says, or
    the local store); `extra_reporter`: another Reporter told everything too (a Tune trial's)."""
    # The run's clock starts here, before torch loads: a time budget counts from Start, and the
    # worker's start is part of what the person waits for (docs/BENCHMARKS.md: 3.5-4.4 s).
    started = time.perf_counter()
    ws, store = open_store(workspace_dir, run_id, remote)
    record = store.get_run(run_id)
    if record is None:
        print(f"No run {run_id!r} in {ws.store_dir}", file=sys.stderr)
        return 2
    if not claim(store, record):
        print(f"Run {run_id} is {record['status']}, not queued; nothing to do.", file=sys.stderr)
        return 2
    run_dir = ws.run_dir(run_id)
    beat = Heartbeat(store, run_id)
    store.heartbeat(run_id)
    beat.start()
    if threading.current_thread() is threading.main_thread():  # a Tune trial runs in a thread
        _on_sigterm(store, run_id)
    try:
        import trainers  # torch loads here, a few seconds; the heartbeat covers it
        from trainers.device import pick_device, use_cpu_threads

        use_cpu_threads()  # a core left to the studio and the browser (trainers/device.py)

        store.update_run(run_id, device=_device_label(pick_device()))
        store_reporter = reporter = StoreReporter(store, run_id)
        if extra_reporter is not None:
            from trainers.reporting import MultiReporter
            reporter = MultiReporter(store_reporter, extra_reporter)
        config = trainers.RunConfig.from_dict(record["config"])
        if record["kind"] == "lr_find":
            result = trainers.find_lr(config, reporter)
            store_reporter.flush()
            status = "stopped" if store.stop_requested(run_id) else "completed"
        elif record["kind"] == "estimate":  # a few batches timed before Start (trainers/budget.py)
            from trainers.fit import estimate_run

            result = estimate_run(config, started=started)
            status = "completed"
        else:
            result = trainers.fit(config, run_dir, reporter, resume=bool(record.get("resume")), started=started).to_dict()
            store_reporter.flush()
            status = result["status"]
            # A completed run's optimiser state goes, unless its settings keep it (extra.keep_last).
            if status == "completed" and not config.extra.get("keep_last", False):
                drop_resume_state(run_dir)
        fields = {"result": result}
        if result.get("best_metric") is not None:
            fields["best_metric"] = result["best_metric"]
        store.transition(run_id, status, **fields)
        return 0
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a readable record
        error = human_error(exc)
        _write_log(run_dir, "run failed: " + error + "\n" + traceback.format_exc())
        store.append_log(run_id, "failed: " + error)
        store.transition(run_id, "failed", error=error)
        return 1
    finally:
        beat.done.set()
        store.close()


def follow(workspace_dir, run_id: str) -> int:
    """A DDP rank other than 0 (studio/ray_ddp.py): train beside rank 0, which reports, writes the
    run's files and decides when all ranks stop; this one only reads the run's record."""
    ws, store = open_store(workspace_dir, run_id)
    record = store.get_run(run_id)
    import trainers

    trainers.fit(trainers.RunConfig.from_dict(record["config"]), ws.run_dir(run_id), None,
                 resume=bool(record.get("resume")))
    return 0


def _on_sigterm(store, run_id):
    """SIGTERM asks for a clean stop: fit ends at the next batch and keeps its checkpoint.
    If that takes too long (a long validation pass), leave anyway, marked stopped."""

    def give_up():
        store.transition(run_id, "stopped", error="Stopped before the current epoch could finish.")
        os._exit(143)

    timers = []

    def handler(signum, frame):
        store.request_stop(run_id)
        if not timers:  # a second SIGTERM does not restart the countdown
            timers.append(threading.Timer(SIGTERM_GRACE_S, give_up))
            timers[0].daemon = True
            timers[0].start()

    signal.signal(signal.SIGTERM, handler)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.worker", description="Run one queued Darkroom run.")
    parser.add_argument("--workspace", required=True, help="the studio's workspace folder")
    parser.add_argument("run_id")
    args = parser.parse_args(argv)
    if int(os.environ.get("RANK", "0")) > 0:
        return follow(args.workspace, args.run_id)
    return run(args.workspace, args.run_id)


if __name__ == "__main__":
    sys.exit(main())
