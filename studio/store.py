"""The run store: every run's record, status, progress and small series, in one diskcache.

Several processes use it at once (the studio and one worker per run), so every
read-modify-write happens inside `cache.transact()`. Big things (checkpoints, sample
images, the full log) stay in the run's folder; the store keeps paths and small numbers.
This is the only module that imports diskcache.
"""
import io
import json
import pickle
import secrets
import time

import diskcache
from diskcache.core import MODE_PICKLE, UNKNOWN

STATUSES = ("queued", "running", "completed", "failed", "stopped", "interrupted")
KINDS = ("train", "lr_find", "estimate")

# Which status may follow which. Anything else is refused, so two processes racing to
# change a run cannot, say, revive a completed one.
TRANSITIONS = {
    "queued": {"running", "stopped", "failed"},
    "running": {"completed", "failed", "stopped", "interrupted"},
    "interrupted": {"queued"},
    "stopped": {"queued"},
    "failed": {"queued"},
    "completed": set(),
}
ENDED = {"completed", "failed", "stopped", "interrupted"}

MAX_LOSS_POINTS = 2000   # beyond this the batch-loss series is thinned to every other point
CHUNK = 250              # batch-loss points per stored chunk: appends rewrite one small chunk
MAX_LOG_LINES = 1000     # the store keeps the log's tail; log.txt in the run folder keeps it all


def new_run_id(now: float | None = None) -> str:
    """Sortable by time and readable: 20261124-101530-ab12."""
    now = time.time() if now is None else now
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + secrets.token_hex(2)


def _dataset_name(data) -> str:
    text = str(data or "").rstrip("/\\")
    return text.replace("\\", "/").rsplit("/", 1)[-1]


class _PlainUnpickler(pickle.Unpickler):
    """For values an older studio pickled into its own store: plain dicts, lists, strings and
    numbers need no global, so any global (the way a pickle runs code) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"the run store holds a pickled {module}.{name}; refused")


class JSONValues(diskcache.Disk):
    """Values kept as JSON text (numbers raw, so `incr` works): nothing read back is unpickled.

    diskcache pickles values by default, and a pickle read back can run code
    (CVE-2025-69872; the project is no longer maintained). We keep diskcache for its
    multi-process transactions, which is acceptable because (1) every value here is JSON (run
    records, metrics, paths), written and read as JSON, (2) keys are plain strings, which
    diskcache stores raw, and (3) the store folder is the owner's alone and never served
    (studio/served.py blocks it), so no visitor can write into it."""

    def store(self, value, read, key=UNKNOWN):
        if not read and type(value) not in (int, float):
            value = json.dumps(value)
        return super().store(value, read, key=key)

    def fetch(self, mode, filename, value, read):
        if mode == MODE_PICKLE:  # written by an older studio: plain values only
            data = value if filename is None else open(self._directory + "/" + filename, "rb").read()
            return _PlainUnpickler(io.BytesIO(data)).load()
        data = super().fetch(mode, filename, value, read)
        return json.loads(data) if isinstance(data, str) else data


class Store:
    def __init__(self, directory):
        self.directory = str(directory)
        # eviction_policy='none': a full disk should fail loudly, never drop a run silently.
        self.cache = diskcache.Cache(self.directory, eviction_policy="none", disk=JSONValues)

    def close(self) -> None:
        self.cache.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def transaction(self):
        """Group several store calls atomically (the scheduler's claim of a free slot)."""
        return self.cache.transact(retry=True)

    # --- keys ----------------------------------------------------------------
    @staticmethod
    def _k(kind: str, run_id: str, *rest) -> str:
        return ":".join((kind, run_id) + tuple(str(r) for r in rest))

    def _touch(self, run_id: str) -> None:
        self.cache.incr(self._k("version", run_id), 1, default=0, retry=True)

    def _set(self, key, value) -> None:
        self.cache.set(key, value, retry=True)

    # --- records -------------------------------------------------------------
    def create_run(self, config: dict, name=None, kind="train", **fields) -> dict:
        """A new queued run; `fields` are extra record fields set from the start (a sweep's mark)."""
        if kind not in KINDS:
            raise ValueError(f"Unknown run kind {kind!r}; use one of {', '.join(KINDS)}.")
        now = time.time()
        record = {
            "id": None, "name": None, "kind": kind, "task": config.get("task", ""),
            "dataset": _dataset_name(config.get("data")), "config": dict(config),
            "status": "queued", "created": now, "started": None, "ended": None,
            "device": None, "pid": None, "error": None,
            "epoch": 0, "epochs": config.get("epochs") if kind == "train" else None,
            "batch": 0, "batches": None, "eta_s": None,
            "best_metric": None, "monitor": config.get("monitor") or None,
            "resume": False, "result": None,
        }
        record.update(fields)
        with self.transaction():
            run_id = new_run_id(now)
            while self.cache.get(self._k("run", run_id)) is not None:
                run_id = new_run_id(now)
            record["id"] = run_id
            record["name"] = (str(name).strip() if name else "") or self._default_name(record)
            self._set(self._k("run", run_id), record)
            ids = self.cache.get("runs", [])
            ids.append(run_id)
            self._set("runs", ids)
            self._touch(run_id)
        return record

    @staticmethod
    def _default_name(record) -> str:
        what = "LR finder" if record["kind"] == "lr_find" else record["task"]
        return f"{what} on {record['dataset']}" if record["dataset"] else what

    def get_run(self, run_id: str) -> dict | None:
        return self.cache.get(self._k("run", run_id))

    def list_runs(self) -> list:
        """Every run, newest first."""
        records = [r for r in (self.get_run(i) for i in self.cache.get("runs", [])) if r is not None]
        return sorted(records, key=lambda r: (r["created"], r["id"]), reverse=True)

    def update_run(self, run_id: str, **fields) -> bool:
        """Change fields of a record (not its status: use transition). False if the run is gone."""
        if "status" in fields:
            raise ValueError("Change a run's status with transition(), which checks that the change is allowed.")
        with self.transaction():
            record = self.get_run(run_id)
            if record is None:
                return False
            record.update(fields)
            self._set(self._k("run", run_id), record)
            self._touch(run_id)
        return True

    def transition(self, run_id: str, new_status: str, **fields) -> bool:
        """Move a run to `new_status` if that follows its current status; False (and no
        change) otherwise. Stamps started/ended; a run queued again starts afresh."""
        if new_status not in STATUSES:
            raise ValueError(f"Unknown status {new_status!r}.")
        with self.transaction():
            record = self.get_run(run_id)
            if record is None or new_status not in TRANSITIONS[record["status"]]:
                return False
            now = time.time()
            if new_status == "queued":
                record.update(started=None, ended=None, pid=None, error=None, eta_s=None)
                self.cache.delete(self._k("stop", run_id), retry=True)
            elif new_status == "running":
                record["started"] = now
            if new_status in ENDED:
                record["ended"] = now
                record["eta_s"] = None
            record.update(fields)
            record["status"] = new_status
            self._set(self._k("run", run_id), record)
            self._touch(run_id)
        return True

    def delete_run(self, run_id: str) -> None:
        """Forget a run's store data (its folder is the caller's business)."""
        with self.transaction():
            meta = self.cache.get(self._k("loss", run_id, "meta"))
            if meta:
                for i in range(meta["chunks"]):
                    self.cache.delete(self._k("loss", run_id, i), retry=True)
            for kind in ("run", "version", "epochs", "samples", "log", "beat", "stop", "token"):
                self.cache.delete(self._k(kind, run_id), retry=True)
            self.cache.delete(self._k("loss", run_id, "meta"), retry=True)
            self._set("runs", [i for i in self.cache.get("runs", []) if i != run_id])

    def version(self, run_id: str) -> int:
        """Grows with every change to the run (not with heartbeats): poll it, fetch on change."""
        return self.cache.get(self._k("version", run_id), 0)

    # --- batch losses ----------------------------------------------------------
    def add_batch_loss(self, run_id, epoch, batch, batches, loss, lr, eta_s=None) -> None:
        self.add_batch_losses(run_id, [(epoch, batch, batches, loss, lr)], eta_s=eta_s)

    def add_batch_losses(self, run_id, rows, eta_s=None) -> None:
        """Several (epoch, batch, batches, loss, lr) at once, so a fast run can write in bursts.
        Every point is kept until the series holds MAX_LOSS_POINTS, then every other one
        (and from then on only every 2nd, 4th... step); progress fields are always current."""
        rows = list(rows)
        if not rows:
            return
        with self.transaction():
            record = self.get_run(run_id)
            if record is None:
                return
            meta = self.cache.get(self._k("loss", run_id, "meta")) or {"count": 0, "stride": 1, "chunks": 0, "last_step": 0}
            for epoch, batch, batches, loss, lr in rows:
                step = (int(epoch) - 1) * int(batches) + int(batch)
                if step <= meta["last_step"]:
                    # A resumed run repeats the steps after its checkpoint: drop the old ones.
                    self._rewrite_losses(run_id, meta, [p for p in self._all_losses(run_id, meta) if p["step"] < step])
                meta["last_step"] = step
                if step % meta["stride"] == 0 or step == 1:
                    self._append_loss(run_id, meta, {"epoch": int(epoch), "batch": int(batch), "step": step,
                                                     "loss": float(loss), "lr": float(lr)})
                if meta["count"] >= MAX_LOSS_POINTS:
                    meta["stride"] *= 2
                    kept = [p for p in self._all_losses(run_id, meta) if p["step"] % meta["stride"] == 0 or p["step"] == 1]
                    self._rewrite_losses(run_id, meta, kept)
            self._set(self._k("loss", run_id, "meta"), meta)
            epoch, batch, batches = rows[-1][:3]
            record.update(epoch=int(epoch), batch=int(batch), batches=int(batches))
            if eta_s is not None:
                record["eta_s"] = float(eta_s)
            self._set(self._k("run", run_id), record)
            self._touch(run_id)

    def _append_loss(self, run_id, meta, point) -> None:
        index = meta["count"] // CHUNK
        chunk = self.cache.get(self._k("loss", run_id, index), []) if index < meta["chunks"] else []
        chunk.append(point)
        self._set(self._k("loss", run_id, index), chunk)
        meta["count"] += 1
        meta["chunks"] = max(meta["chunks"], index + 1)

    def _all_losses(self, run_id, meta) -> list:
        points = []
        for i in range(meta["chunks"]):
            points.extend(self.cache.get(self._k("loss", run_id, i), []))
        return points

    def _rewrite_losses(self, run_id, meta, points) -> None:
        for i in range(meta["chunks"]):
            self.cache.delete(self._k("loss", run_id, i), retry=True)
        meta.update(count=0, chunks=0)
        for start in range(0, len(points), CHUNK):
            self._set(self._k("loss", run_id, start // CHUNK), points[start:start + CHUNK])
        meta["count"] = len(points)
        meta["chunks"] = (len(points) + CHUNK - 1) // CHUNK

    def batch_losses(self, run_id) -> list:
        """[{epoch, batch, step, loss, lr}] in step order (thinned for long runs)."""
        with self.transaction():  # a consistent view while a worker rewrites chunks
            meta = self.cache.get(self._k("loss", run_id, "meta"))
            return self._all_losses(run_id, meta) if meta else []

    # --- epoch metrics, samples, log -------------------------------------------
    def add_epoch_metrics(self, run_id, metrics: dict) -> None:
        """One row per epoch; a row for an epoch already there (a resumed run) replaces it."""
        with self.transaction():
            if self.get_run(run_id) is None:
                return
            key = self._k("epochs", run_id)
            rows = self.cache.get(key, [])
            epoch = metrics.get("epoch")
            if epoch is not None:
                rows = [r for r in rows if r.get("epoch") != epoch]
            rows.append(dict(metrics))
            rows.sort(key=lambda r: r.get("epoch", float("inf")))
            self._set(key, rows)
            self._touch(run_id)

    def epoch_metrics(self, run_id) -> list:
        return self.cache.get(self._k("epochs", run_id), [])

    def add_sample(self, run_id, epoch: int, path) -> None:
        with self.transaction():
            if self.get_run(run_id) is None:
                return
            key = self._k("samples", run_id)
            rows = [r for r in self.cache.get(key, []) if r[0] != int(epoch)]
            rows.append([int(epoch), str(path)])  # JSON keeps lists
            rows.sort()
            self._set(key, rows)
            self._touch(run_id)

    def samples(self, run_id) -> list:
        """[(epoch, path)] in epoch order."""
        return [tuple(r) for r in self.cache.get(self._k("samples", run_id), [])]

    def append_log(self, run_id, line: str) -> None:
        with self.transaction():
            if self.get_run(run_id) is None:
                return
            key = self._k("log", run_id)
            lines = self.cache.get(key, [])
            lines.extend(str(line).splitlines() or [""])
            self._set(key, lines[-MAX_LOG_LINES:])
            self._touch(run_id)

    def log_tail(self, run_id, n: int = 50) -> list:
        lines = self.cache.get(self._k("log", run_id), [])
        return lines[-n:] if n > 0 else []

    # --- liveness and stop requests ----------------------------------------------
    def heartbeat(self, run_id) -> None:
        self._set(self._k("beat", run_id), time.time())

    def last_heartbeat(self, run_id) -> float | None:
        return self.cache.get(self._k("beat", run_id))

    def request_stop(self, run_id) -> None:
        self._set(self._k("stop", run_id), True)
        self._touch(run_id)

    def stop_requested(self, run_id) -> bool:
        return bool(self.cache.get(self._k("stop", run_id), False))

    def clear_stop(self, run_id) -> None:
        self.cache.delete(self._k("stop", run_id), retry=True)
        self._touch(run_id)

    # --- cluster workers (studio/report_server.py) ------------------------------------
    def set_report_token(self, run_id, token: str | None) -> None:
        """The secret of a run's current attempt on a cluster; None ends every attempt's right to report."""
        if token is None:
            self.cache.delete(self._k("token", run_id), retry=True)
        else:
            self._set(self._k("token", run_id), str(token))

    def report_token(self, run_id) -> str | None:
        return self.cache.get(self._k("token", run_id))
