"""The scheduler: a queue of runs, N slots, one worker process per run.

Everything it knows lives in the store, not in this object: a studio that restarts (or a
second studio on the same workspace) sees the runs an earlier one started, by their pid
and heartbeat, and neither starts them twice nor loses them. Closing the studio leaves
runs going; a run whose process is gone is marked `interrupted` and can resume from its
last checkpoint.

Where runs go is the runner's business: local processes (the default), or jobs on a Ray
cluster (studio/ray_runner.py, when the studio is started with --runner). A run's record says
which (`job` for a cluster run), and the store, statuses and actions are the same for both.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .run_disk import free_disk
from .store import Store
from .workspace import Workspace, WorkspaceError


PROJECT_ROOT = Path(__file__).resolve().parents[1]
STALE_S = 15.0  # a running run without a heartbeat for this long is dead or hung
SUSPEND_GAP_S = 5.0  # polls this far apart: the studio (or the machine) was asleep
TERM_AFTER_S = 3.0  # stop(): the flag first; SIGTERM if the run is still going after this
RESUMABLE = ("interrupted", "stopped", "failed")
MAX_NAME = 120  # characters in a run's name (every list of runs carries it)


def path_settings() -> dict:
    """{name: Setting} of every task's settings that name a run or a picture."""
    from trainers.tasks import TASKS

    return {s.name: s for task in TASKS.values() for s in task.all_settings() if s.widget in ("run", "picture")}


class JobError(ValueError):
    """An action the scheduler refuses (delete a running run, resume without a checkpoint...)."""


def _config_error(message: str):
    from trainers.errors import ConfigError

    return ConfigError(message)


def gpu_count() -> int:
    try:
        import torch  # late: a few seconds, and only needed to count slots

        return torch.cuda.device_count()
    except Exception:
        return 0


def process_alive(pid, run_id: str) -> bool:
    """Is `pid` a live worker for this run? A zombie or a pid the system gave to another
    program since counts as gone (checked through /proc where there is one)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            return False
        if state == "Z":
            return False
        if any(argv) and (b"studio.worker" not in argv or run_id.encode() not in argv):
            return False  # the pid now belongs to another program
        # An empty command line: the process is exiting, or still inside exec() right after
        # Popen returned; either way it counts as alive until it is gone.
    return True


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Jobs:
    def __init__(self, workspace, store: Store, slots: int | None = None, runner=None):
        self.ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
        self.store = store
        self._slots = slots
        self.runner = runner  # None: local processes; a started RayRunner: jobs on its cluster
        self._gpus = None
        self._procs = {}  # run_id -> Popen, for the workers this object started
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._thread = None
        self._last_poll = None
        self._trust_stale_at = 0.0

    @property
    def gpus(self) -> int:
        if self._gpus is None:
            self._gpus = 0 if self.runner is not None else gpu_count()  # a cluster places GPUs itself
        return self._gpus

    @property
    def slots(self) -> int:
        """One run per GPU; one at a time on the CPU (two would only slow each other)."""
        if self._slots is None:
            self._slots = self.runner.default_slots if self.runner is not None else max(self.gpus, 1)
        return self._slots

    # --- new runs ----------------------------------------------------------------
    def resolve_data(self, data) -> str:
        """A dataset name means WORKSPACE/datasets/NAME; a path must be one of those folders. Only
        datasets: whoever can start a run, a visitor of a shared studio included, must not make the
        studio look into its scratch, the store or any other folder (a task's checks name the
        subfolders they find). Messages name no host path."""
        if not isinstance(data, str) or not data.strip():
            raise _config_error("'data' is empty: choose a dataset.")
        data = data.strip()
        path = Path(data).expanduser()
        if not path.is_absolute():
            if "/" in data or "\\" in data:
                raise _config_error(f"'data' must be a dataset name, not {data[:80]!r}.")
            try:
                path = self.ws.dataset_dir(data)
            except WorkspaceError as e:
                raise _config_error(str(e)) from None
            if not path.is_dir():
                raise _config_error(
                    f"There is no dataset named {data[:80]!r}; the Data tab lists the datasets there are."
                )
        datasets = self.ws.datasets_dir.resolve()
        resolved = path.resolve()
        if resolved.parent != datasets or not resolved.is_dir():
            # a folder elsewhere, or a dataset name that is a link to one
            raise _config_error(
                "That dataset folder is outside the workspace's datasets; import it in the Data tab first."
            )
        return str(resolved)

    def resolve_run(self, key, tasks, value) -> str:
        """A setting naming a run (a gan's generator) names a completed run of `tasks` of this
        studio, by its id (or by its folder, as a clone's config holds it): never a folder
        someone else chose."""
        text = value.strip()
        path = Path(text)
        run_id = path.name if path.is_absolute() else text
        which = f"the id of a completed {' or '.join(tasks)} run"
        if path.is_absolute() and path.resolve() != (self.ws.runs_dir / run_id).resolve():
            raise _config_error(f"'extra.{key}' must be {which}.")
        try:
            folder = self.ws.run_dir(run_id)
        except WorkspaceError as e:
            raise _config_error(f"'extra.{key}': {e}") from None
        record = self.store.get_run(run_id)
        if (
            record is None
            or record.get("kind") != "train"
            or record.get("task") not in tasks
            or record.get("status") != "completed"
        ):
            raise _config_error(f"'extra.{key}' must be {which}; {run_id[:80]!r} is not one.")
        return str(folder.resolve())

    def resolve_picture(self, key, value) -> str:
        """A style or content picture is one uploaded for runs or one of a dataset's pictures."""
        path = Path(value.strip()).expanduser().resolve()
        inside = any(path.is_relative_to(folder.resolve()) for folder in (self.ws.uploads_dir, self.ws.datasets_dir))
        if not inside or not path.is_file():
            raise _config_error(
                f"'extra.{key}' must be a picture uploaded for runs or a dataset's picture "
                f"inside the workspace, not {Path(value).name[:80]!r}."
            )
        return str(path)

    def resolve_extra_paths(self, extra):
        """The settings that name files or runs (those of any task whose Setting has a widget
        "run" or "picture"), checked as 'data' is, so that no visitor can make a worker read
        other files of the machine (or unpickle them)."""
        if not isinstance(extra, dict):
            return extra  # RunConfig says what is wrong with it
        extra = dict(extra)
        for key, setting in path_settings().items():
            value = extra.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise _config_error(f"'extra.{key}' must be a non-empty name.")
            extra[key] = (
                self.resolve_run(key, setting.runs_of, value)
                if setting.widget == "run"
                else self.resolve_picture(key, value)
            )
        return extra

    def _checked(self, config: dict) -> dict:
        from trainers import RunConfig

        if not isinstance(config, dict):
            raise _config_error("The config must be a dictionary of settings.")
        config = dict(config)
        config["data"] = self.resolve_data(config.get("data"))
        if "extra" in config:
            config["extra"] = self.resolve_extra_paths(config["extra"])
        return RunConfig.from_dict(config).validate().to_dict()

    def submit(self, config: dict, name=None, kind: str = "train", processes: int = 1) -> str:
        """Validate and queue a run; raises ConfigError (its message meant for the user)
        before anything is created. `processes` > 1: one run trained by that many processes with
        DistributedDataParallel, placed by the Ray cluster (studio/ray_ddp.py)."""
        if kind not in ("train", "lr_find", "estimate"):
            raise JobError(f"Unknown run kind {kind!r}: use 'train', 'lr_find' or 'estimate'.")
        if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
            raise JobError("'processes' must be a whole number, 1 or more.")
        if processes > 1 and (self.runner is None or kind != "train"):
            raise JobError(
                "A run of several processes needs the studio on a Ray cluster (--runner); on one "
                "machine use torchrun from the command line (README)."
            )
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
            raise JobError(f"A run's name is text of at most {MAX_NAME} characters.")
        config = self._checked(config)
        fields = {"processes": processes} if processes > 1 else {}
        return self.store.create_run(config, name=name, kind=kind, **fields)["id"]

    def submit_sweep(
        self, config: dict, space: dict, n: int, mode: str = "grid", seed: int = 0, early_stop: bool = False, name=None
    ) -> str:
        """Queue "try N settings" of `config` (studio/sweeps.py); returns the sweep's id. Every
        trial is checked before any is queued. With early stopping on a Ray cluster the trials
        are trained by one Ray Tune job (ASHA); otherwise each waits in the queue as a run."""
        from . import sweeps

        points = sweeps.settings(space, n, mode, seed)
        checked = [self._checked(dict(config, **point)) for point in points]
        sweep_id, name = sweeps.new_sweep_id(), (str(name).strip() if name else "") or "sweep"
        tune = bool(early_stop) and self.runner is not None
        for i, (point, trial) in enumerate(zip(points, checked)):
            mark = {
                "id": sweep_id,
                "name": name,
                "trial": i + 1,
                "of": len(points),
                "params": point,
                "mode": mode,
                "seed": int(seed),
                "early_stop": bool(early_stop),
            }
            self.store.create_run(
                trial, name=f"{name} {i + 1}/{len(points)}: {sweeps.label(point)}", sweep=mark, tune=tune
            )
        return sweep_id

    def clone(self, run_id: str, changes: dict | None = None) -> str:
        record = self._record(run_id)
        config = dict(record["config"])
        config.update(changes or {})
        return self.submit(config, name=f"{record['name']} (copy)", kind=record["kind"])

    def _record(self, run_id) -> dict:
        record = self.store.get_run(run_id)
        if record is None:
            raise JobError(f"There is no run {run_id!r}.")
        return record

    # --- the loop ------------------------------------------------------------------
    def poll(self) -> None:
        """Reap finished workers, mark dead runs interrupted, start queued runs in free slots."""
        with self._lock:
            now = time.monotonic()
            if self._last_poll is None or now - self._last_poll > SUSPEND_GAP_S:
                # After a sleep every heartbeat looks old: give the workers time to beat again
                # before judging anyone by staleness (a vanished pid is still judged at once).
                self._trust_stale_at = now + SUSPEND_GAP_S
            self._last_poll = now
            self._reap()
            self._mark_dead(trust_staleness=now >= self._trust_stale_at)
            self._start_queued()

    def _reap(self) -> None:
        for run_id, proc in list(self._procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._procs[run_id]
            record = self.store.get_run(run_id)
            if record and record["status"] == "running" and record.get("pid") in (None, proc.pid):
                self._mark_gone(run_id, f"The worker process ended unexpectedly ({_exit_reason(code)})")

    def _mark_dead(self, trust_staleness: bool = True) -> None:
        now = time.time()
        for record in self.store.list_runs():
            if record["status"] != "running":
                continue
            if record.get("job"):
                self._judge_job(record, trust_staleness)
                continue
            run_id, pid = record["id"], record.get("pid")
            # A run queued again keeps its old heartbeat: count from its new start as well.
            last = max(self.store.last_heartbeat(run_id) or 0, record.get("started") or 0)
            stale = trust_staleness and now - last > STALE_S
            if pid is None:
                dead = stale  # claimed, its worker not started yet (or never started)
                reason = "Its worker never started"
            elif not process_alive(pid, run_id):
                dead, reason = True, f"Its worker process (pid {pid}) is gone"
            elif stale:
                dead, reason = True, f"Its worker (pid {pid}) sent no heartbeat for {now - last:.0f} s and was ended"
                self._kill(run_id, pid, signal.SIGKILL)
            else:
                dead = False
            if dead:
                self._mark_gone(run_id, reason)

    def _judge_job(self, record: dict, trust_staleness: bool) -> None:
        """A run on the cluster is dead when its job has ended without the worker ending the
        run (a lost node ends the job), or when it has stopped beating while its job runs."""
        if self.runner is None:
            return  # a studio started without the cluster cannot ask about it: leave the run as it is
        run_id, job = record["id"], record["job"]
        state = self.runner.job_state(job)
        if state is None:
            return  # the cluster does not answer now: judge on a later poll
        shared = bool(record.get("tune"))  # one Tune job trains the whole sweep: never stop it for one trial
        if state["node"] and record.get("node") != state["node"] and not shared:
            self.store.update_run(run_id, node=state["node"])
        if state["status"] == "PENDING":
            # Waiting for a node with the devices it asked for: it has not started to beat yet.
            # (`started` moves with the wait, every few seconds rather than every poll.)
            if time.time() - (record.get("started") or 0) > STALE_S / 3:
                self.store.update_run(run_id, started=time.time())
            return
        if state["status"] != "RUNNING":
            detail = f": {state['message']}" if state["message"] else ""
            self._mark_gone(run_id, f"Its Ray job {job} ended ({state['status'].lower()}{detail})")
            return
        if shared:
            return  # Tune starts its trials when the cluster has room, and ends them itself
        last = max(self.store.last_heartbeat(run_id) or 0, record.get("started") or 0)
        if trust_staleness and time.time() - last > STALE_S:
            self.runner.stop(job)
            self._mark_gone(
                run_id, f"Its Ray job {job} sent no heartbeat for {time.time() - last:.0f} s and was stopped"
            )

    def _mark_gone(self, run_id: str, reason: str) -> None:
        # A run that was asked to stop and then died counts as stopped, not interrupted.
        status = "stopped" if self.store.stop_requested(run_id) else "interrupted"
        if self.store.transition(run_id, status, error=reason + "; resume to continue from the last checkpoint."):
            self.store.set_report_token(run_id, None)  # a cluster worker of this attempt may no longer write

    def _start_queued(self) -> None:
        claimed, slots = [], self.slots  # counting GPUs imports torch: not inside the lock
        with self.store.transaction():  # two studios on one workspace must not fill one slot twice
            records = self.store.list_runs()
            running = [r for r in records if r["status"] == "running"]
            used = {r.get("slot") for r in running}
            free = [s for s in range(slots) if s not in used][: max(slots - len(running), 0)]
            queued = sorted((r for r in records if r["status"] == "queued"), key=lambda r: (r["created"], r["id"]))
            for record, slot in zip(queued, free):
                if self.store.transition(record["id"], "running", slot=slot, pid=None):
                    claimed.append((record["id"], slot))
        sweeps = {}  # runs that one Ray Tune job trains together, by sweep
        for run_id, slot in claimed:
            record = self.store.get_run(run_id)
            if self.runner is not None and record.get("tune"):
                sweeps.setdefault(record["sweep"]["id"], []).append(record)
            else:
                self._launch(run_id, slot)
        for sweep_id, records in sweeps.items():
            self._launch_sweep(sweep_id, records)

    def _launch(self, run_id: str, slot: int) -> None:
        if self.runner is not None:
            return self._launch_job(run_id)
        run_dir = self.ws.run_dir(run_id)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.gpus > 0:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % self.gpus)  # one GPU per slot
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / "worker.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "studio.worker", "--workspace", str(self.ws.root), run_id],
                    cwd=str(PROJECT_ROOT),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as e:
            self.store.transition(run_id, "failed", error=f"Could not start the worker: {e}")
            return
        self._procs[run_id] = proc
        self.store.update_run(run_id, pid=proc.pid)

    def _launch_job(self, run_id: str) -> None:
        token = secrets.token_urlsafe(32)  # this attempt's right to report (studio/report_server.py)
        self.store.set_report_token(run_id, token)
        try:
            job = self.runner.launch(run_id, self.store.get_run(run_id), token)
        except Exception as e:
            self.store.set_report_token(run_id, None)
            self.store.transition(run_id, "failed", error=f"Could not submit the run to the Ray cluster: {e}")
            return
        self.store.update_run(run_id, job=job, node=None)

    def _launch_sweep(self, sweep_id: str, records: list) -> None:
        tokens = {r["id"]: secrets.token_urlsafe(32) for r in records}
        for run_id, token in tokens.items():
            self.store.set_report_token(run_id, token)
        try:
            job = self.runner.launch_sweep(sweep_id, records, tokens, early_stop=True)
        except Exception as e:
            for run_id in tokens:
                self.store.set_report_token(run_id, None)
                self.store.transition(run_id, "failed", error=f"Could not submit the sweep to the Ray cluster: {e}")
            return
        for run_id in tokens:
            self.store.update_run(run_id, job=job, node=None)

    # --- actions on one run ------------------------------------------------------------
    def stop(self, run_id: str, grace: float = 10) -> None:
        """A queued run is simply stopped. A running one is asked to stop (it finishes the
        batch and keeps its last checkpoint), sent SIGTERM after a few seconds, and killed
        after `grace` seconds. Returns at once; the escalation runs in a thread."""
        record = self._record(run_id)
        if record["status"] == "queued" and self.store.transition(run_id, "stopped"):
            return
        if self._record(run_id)["status"] != "running":
            return
        self.store.request_stop(run_id)
        threading.Thread(target=self._escalate, args=(run_id, grace), daemon=True, name=f"stop-{run_id}").start()

    def _escalate(self, run_id: str, grace: float) -> None:
        began = time.monotonic()
        sent_term = False
        while True:
            record = self.store.get_run(run_id)
            if record is None or record["status"] != "running":
                return
            pid, job = record.get("pid"), record.get("job")
            waited = time.monotonic() - began
            if waited >= grace:
                break
            if job and not sent_term and waited >= min(TERM_AFTER_S, grace / 2):
                if self.runner is not None and not record.get("tune"):
                    self.runner.stop(job)  # Ray: SIGTERM to the job's processes, SIGKILL later
                sent_term = True
            elif pid and not sent_term and waited >= min(TERM_AFTER_S, grace / 2):
                self._kill(run_id, pid, signal.SIGTERM)
                sent_term = True
            time.sleep(0.2)
        if job:
            if self.runner is not None and not record.get("tune"):
                self.runner.stop(job)
        elif pid:
            self._kill(run_id, pid, signal.SIGKILL)
            for _ in range(50):
                if not process_alive(pid, run_id):
                    break
                time.sleep(0.1)
        if self.store.transition(
            run_id,
            "stopped",
            error=(f"It did not stop within {grace:g} s and was killed; its last checkpoint is kept."),
        ):
            self.store.set_report_token(run_id, None)

    def _kill(self, run_id: str, pid: int, sig) -> None:
        """SIGTERM to the worker alone (it then stops cleanly); SIGKILL to its whole session,
        data-loading processes included. Only a pid that is still this run's worker."""
        proc = self._procs.get(run_id)
        if proc is not None and proc.pid == pid:
            if proc.poll() is not None:
                return
        elif not process_alive(pid, run_id):
            return
        try:
            if sig == signal.SIGKILL and os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def resume(self, run_id: str) -> None:
        """Queue an interrupted, stopped or failed run again; it continues from
        checkpoints/last.pt in the same folder under the same id, or, when it ended before
        its first checkpoint, starts again with the same settings and id (its log says so)."""
        record = self._record(run_id)
        if record["status"] not in RESUMABLE:
            raise JobError(
                f"Only an interrupted, stopped or failed run can be resumed; this one is {record['status']}."
            )
        if record["kind"] != "train":
            raise JobError("A learning-rate finder has nothing to resume; run it again.")
        last = self.ws.run_dir(run_id) / "checkpoints" / "last.pt"
        # 'Free the disk' removes the checkpoints folder and keeps the record; starting such a run
        # again would overwrite the epochs that record keeps.
        if not last.parent.is_dir() and self.store.epoch_metrics(run_id):
            raise JobError(
                f"Run {run_id} has no checkpoint left to resume from (its disk was freed); clone it to train again."
            )
        from trainers.callbacks import checkpoint_complete

        if last.is_file() and not checkpoint_complete(last):
            raise JobError(
                f"Run {run_id}'s last checkpoint is truncated or damaged, so it cannot resume; clone it to start again."
            )
        self._checked(record["config"])  # the dataset may have gone since
        # A sweep's trial resumes as a run of its own (its Tune job is over or busy with the others).
        if not self.store.transition(run_id, "queued", resume=True, job=None, node=None, tune=False):
            raise JobError("The run changed meanwhile; look again.")

    def free_disk(self, run_id: str) -> int:
        """Remove a finished run's checkpoints, keep its record (run_disk.free_disk); bytes freed."""
        record = self._record(run_id)
        if record["status"] in ("queued", "running"):
            raise JobError("This run is still queued or running: stop it first, then free its disk.")
        return free_disk(self.ws.run_dir(run_id))

    def delete(self, run_id: str) -> None:
        """Forget a run and remove its folder; a running run must be stopped first."""
        with self.store.transaction():
            record = self.store.get_run(run_id)
            if record is not None and record["status"] == "running":
                raise JobError("This run is still running: stop it first, then delete it.")
            self.store.delete_run(run_id)
        self._procs.pop(run_id, None)
        run_dir = self.ws.run_dir(run_id)
        if run_dir.exists():
            shutil.rmtree(run_dir)

    # --- background ----------------------------------------------------------------------
    def start_background(self, interval: float = 1.0) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._halt.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval,), daemon=True, name="jobs")
        self._thread.start()

    def _loop(self, interval: float) -> None:
        while True:
            try:
                self.poll()
            except Exception as e:  # a busy store now and then must not end the scheduler
                print(f"darkroom jobs: poll failed: {type(e).__name__}: {e}", file=sys.stderr)
            if self._halt.wait(interval):
                return

    def shutdown(self) -> None:
        """Stop polling. Runs keep going: a later studio finds them in the store."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
