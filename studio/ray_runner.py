"""Runs on a Ray cluster: each queued run becomes a Ray job (Ray's job submission API).

`--runner` takes what Ray's JobSubmissionClient takes:
  ray://HOST:10001      the cluster's Ray Client address (Ray asks the cluster for its dashboard)
  http://HOST:8265      the head node's dashboard, where the job API lives
  HOST:6379             the cluster's own address, as `ray start --address` takes it
The studio itself never joins the cluster: it submits, watches and stops jobs over the job
API, and the jobs report back to the studio's endpoint (studio/report_server.py).

A job runs the same `python -m studio.worker --workspace WS RUN_ID` as a local run, with the
project uploaded as the job's working_dir and the run's devices (entrypoint_num_cpus,
entrypoint_num_gpus) asked of the cluster; Ray starts it on a node that has them, or keeps it
PENDING until one does. What must be the same on every node: the workspace at the same path
(a shared filesystem; checked at start-up) and a Python environment with the studio's
requirements at the path the studio runs from (or DARKROOM_CLUSTER_PYTHON).

Ray is imported only here and only when this runner is chosen.
"""
import json
import os
import secrets
import shlex
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RAY_MISSING = ("The ray runner needs Ray, which is not installed here: "
               "pip install -r requirements-cluster.txt (or use --runner local).")
# Not uploaded with each job: the workers need only the code.
UPLOAD_EXCLUDES = [".git", ".venv", "__pycache__", ".pytest_cache", "tests", "bench", "docs", "assets",
                   "*.pt", "*.pth", "*.onnx"]
FORWARDED_ENV = ("DARKROOM_OFFLINE", "TORCH_HOME", "OMP_NUM_THREADS")
STOP_WAIT_S = 10        # Ray's SIGTERM-to-SIGKILL wait for a job; the worker's own grace is as long
CHECK_TIMEOUT_S = 180   # the start-up check of the workspace on every node
DEFAULT_SLOTS = 8       # runs submitted at once; beyond what the cluster holds, Ray keeps them PENDING
ENDED = ("STOPPED", "SUCCEEDED", "FAILED")
CONNECT_TRIES = 3


class ClusterError(ValueError):
    """The cluster cannot be used as asked; the message says why and what to do."""


def is_local(runner: str | None) -> bool:
    return runner in (None, "", "local")


def _job_client(address: str):
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise ClusterError(RAY_MISSING) from None
    for attempt in range(CONNECT_TRIES):
        try:
            return JobSubmissionClient(address)
        except Exception as e:  # ConnectionError, ValueError, RuntimeError: all mean "not reachable"
            # A ray:// address goes through the head's Ray Client server, which starts a
            # process per client; on a busy head that start now and then times out.
            if attempt + 1 < CONNECT_TRIES:
                time.sleep(2.0)
                continue
            raise ClusterError(f"Could not reach the Ray cluster at {address} ({type(e).__name__}: "
                               f"{' '.join(str(e).split())[:200]}). Is it running, and is the dashboard on?") from None


def _route_to(host: str) -> str:
    """This machine's address as seen from `host`: the source address of a route to it."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))  # no packet is sent: UDP connect only picks the route
        return s.getsockname()[0]


class RayRunner:
    name = "ray"

    def __init__(self, address: str, run_cpus: float = 1, run_gpus: float = 0, report_host: str | None = None,
                 report_port: int = 0, python: str | None = None, slots: int = DEFAULT_SLOTS):
        self.address = address
        self.run_cpus, self.run_gpus = run_cpus, run_gpus
        self.report_host, self.report_port = report_host, report_port
        self.python = python or os.environ.get("DARKROOM_CLUSTER_PYTHON") or sys.executable
        self.default_slots = slots
        self.client = None
        self.reports = None
        self.ws = None

    # --- start-up ------------------------------------------------------------------
    def start(self, workspace, store, check: bool = True) -> "RayRunner":
        """Connect, open the reporting endpoint, and check that every node sees the workspace."""
        self.ws = workspace
        self.client = _job_client(self.address)
        from .report_server import ReportServer

        dashboard = urlsplit(self.client.get_address()).hostname or "127.0.0.1"
        host = self.report_host or _route_to(dashboard)
        self.reports = ReportServer(store, workspace, host=host, port=self.report_port)
        if check:
            self.check_workspace()
        return self

    def close(self) -> None:
        if self.reports is not None:
            self.reports.close()
            self.reports = None

    def check_workspace(self, timeout: float = CHECK_TIMEOUT_S) -> list:
        """Every live node must read a file the studio has just written into the workspace.
        Returns the nodes' addresses; raises ClusterError naming those that cannot see it."""
        token = secrets.token_hex(8)
        marker = self.ws.tmp_dir / f"cluster-check-{token}"
        marker.write_text(token)
        try:
            job = self._submit(f"-m studio.cluster_check {shlex.quote(str(marker))} {token}",
                               f"darkroom-check-{token}", env={}, cpus=0)
            status, message = self._wait(job, timeout)
            logs = self.client.get_job_logs(job)
        finally:
            marker.unlink(missing_ok=True)
        report = next((json.loads(line.split(" ", 1)[1]) for line in logs.splitlines()
                       if line.startswith("DARKROOM-CHECK ")), None)
        if status != "SUCCEEDED" or report is None:
            tail = " ".join(logs.strip().splitlines()[-3:])[-300:]
            raise ClusterError(f"The cluster could not run the studio's check job ({status}: {message}). "
                               f"Are the studio's requirements installed at {self.python} on every node? {tail}")
        blind = [node for node, ok in report.items() if not ok]
        if blind:
            raise ClusterError(
                f"{len(blind)} node(s) of the cluster cannot see the workspace {self.ws.root}: "
                f"{', '.join(sorted(blind))}. Mount it at the same path on every node (a shared "
                "filesystem such as NFS), or start the studio with a workspace that is mounted there.")
        return sorted(report)

    def _wait(self, job: str, timeout: float) -> tuple:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.client.get_job_info(job)
            if _status(info.status) in ENDED:
                return _status(info.status), info.message
            time.sleep(0.5)
        self.client.stop_job(job)
        return "TIMEOUT", f"no answer within {timeout:.0f} s"

    # --- jobs ---------------------------------------------------------------------------
    def _submit(self, args: str, job_id: str, env: dict, cpus: float, gpus: float = 0) -> str:
        env = dict(env, PYTHONUNBUFFERED="1", RAY_JOB_STOP_WAIT_TIME_S=str(STOP_WAIT_S))
        env.update({k: os.environ[k] for k in FORWARDED_ENV if k in os.environ})
        runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": UPLOAD_EXCLUDES, "env_vars": env}
        return self.client.submit_job(
            entrypoint=f"{shlex.quote(self.python)} {args}", submission_id=job_id, runtime_env=runtime_env,
            entrypoint_num_cpus=cpus, entrypoint_num_gpus=gpus or None,
            metadata={"darkroom": "1"})

    def launch(self, run_id: str, record: dict, token: str) -> str:
        """Submit one attempt of a run; returns the job's submission id."""
        config = record.get("config") or {}
        cpus = max(self.run_cpus, 1 + int(config.get("num_workers") or 0))  # the loader's processes too
        job_id = f"darkroom-{run_id}-{secrets.token_hex(3)}"
        env = {"DARKROOM_REPORT_URL": self.reports.url, "DARKROOM_REPORT_TOKEN": token}
        args = f"-m studio.worker --workspace {shlex.quote(str(self.ws.root))} {shlex.quote(run_id)}"
        processes = int(record.get("processes") or 1)
        if processes > 1:  # the job's driver places the ranks; they ask for the devices themselves
            args = (f"-m studio.ray_ddp --workspace {shlex.quote(str(self.ws.root))} --processes {processes} "
                    f"--cpus {cpus:g} --gpus {self.run_gpus:g} {shlex.quote(run_id)}")
            return self._submit(args, job_id, env, cpus=0)
        return self._submit(args, job_id, env, cpus=cpus, gpus=self.run_gpus)

    def launch_sweep(self, sweep_id: str, records: list, tokens: dict, early_stop: bool) -> str:
        """Submit one Ray Tune job for these runs of a sweep (studio/tune_sweep.py)."""
        config = records[0].get("config") or {}
        cpus = max(self.run_cpus, 1 + int(config.get("num_workers") or 0))
        epochs = max(int(r.get("config", {}).get("epochs") or 1) for r in records)
        job_id = f"darkroom-{sweep_id}-{secrets.token_hex(3)}"
        env = {"DARKROOM_REPORT_URL": self.reports.url, "DARKROOM_REPORT_TOKENS": json.dumps(tokens),
               "DARKROOM_WORKSPACE": str(self.ws.root)}
        args = (f"-m studio.tune_sweep --workspace {shlex.quote(str(self.ws.root))} --name {shlex.quote(sweep_id)} "
                f"--epochs {epochs} --cpus {cpus:g} --gpus {self.run_gpus:g}{' --early-stop' if early_stop else ''} "
                + " ".join(shlex.quote(r["id"]) for r in records))
        return self._submit(args, job_id, env, cpus=0)  # the driver only schedules; trials ask for devices

    def job_state(self, job_id: str) -> dict | None:
        """{status, message, node} of a job, or None when the cluster cannot be asked now."""
        try:
            info = self.client.get_job_info(job_id)
        except Exception:
            return None
        return {"status": _status(info.status), "message": info.message or "", "node": info.driver_node_id}

    def stop(self, job_id: str) -> None:
        """Ray sends the job's processes SIGTERM, then SIGKILL after STOP_WAIT_S."""
        try:
            self.client.stop_job(job_id)
        except Exception:
            pass  # already ended, or the cluster is unreachable: the next poll judges it


def _status(status) -> str:
    return getattr(status, "value", str(status))  # JobStatus is a str enum
