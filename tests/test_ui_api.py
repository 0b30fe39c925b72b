"""The studio's documented API, driven with gradio_client against a real `python app.py` process
on 127.0.0.1, with real worker processes training a tiny model."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gradio_client import Client

from conftest import ROOT, tiny_json, write_colour_classes
from studio.jobs import process_alive
from studio.store import Store

WAIT_S = 150  # generous: the machine's two cores are shared
ENDED = ("completed", "failed", "stopped", "interrupted")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_tiny_dataset(workspace: Path, name="colours", per_class=12) -> Path:
    """A classify dataset as the Data tab would write it: train/ and valid/ class folders."""
    folder = workspace / "datasets" / name
    write_colour_classes(folder / "train", per_class=per_class)
    write_colour_classes(folder / "valid", per_class=3, seed=1)
    classes = ["blue", "green", "red"]
    counts = {"train": {c: per_class for c in classes}, "valid": {c: 3 for c in classes}}
    (folder / "dataset.json").write_text(json.dumps({"kind": "classify", "classes": classes, "counts": counts}))
    return folder


def tiny(**changes) -> str:
    return tiny_json(**changes)


class Studio:
    """`python app.py` in its own process, as a person would start it."""

    def __init__(self, workspace: Path, log: Path):
        self.workspace, self.port = workspace, free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "--workspace", str(workspace), "--port", str(self.port)],
                cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.client = self._connect()

    def _connect(self, timeout=90) -> Client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the studio exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                return Client(self.url, verbose=False)
            except Exception:
                time.sleep(0.5)
        pytest.fail(f"the studio did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def call(self, endpoint, *args):
        return self.client.predict(*args, api_name=endpoint)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_status(studio, run_id, condition, what, timeout=WAIT_S) -> dict:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = studio.call("/run_status", run_id)
        if condition(status):
            return status
        if status["status"] in ENDED:
            break
        time.sleep(0.5)
    pytest.fail(f"run {run_id} never got {what}; last status: {status}")


@pytest.fixture(scope="module")
def workspace(module_tmp):
    root = module_tmp / "workspace"
    write_tiny_dataset(root)
    yield root
    # Workers outlive the studio by design: end the ones this module started.
    with Store(root / "store") as store:
        for record in store.list_runs():
            if record.get("pid") and process_alive(record["pid"], record["id"]):
                os.kill(record["pid"], signal.SIGKILL)


@pytest.fixture(scope="module")
def studio(workspace, module_tmp):
    studio = Studio(workspace, module_tmp / "studio.log")
    yield studio
    studio.close()


def test_list_datasets_shows_the_installed_samples_and_the_tiny_dataset(studio):
    datasets = {d["name"]: d for d in studio.call("/list_datasets")}
    assert {"digits", "photos", "shapes", "colours"} <= set(datasets)
    assert datasets["colours"]["kind"] == "classify"
    assert datasets["colours"]["classes"] == ["blue", "green", "red"]
    assert datasets["shapes"]["kind"] == "segment"


@pytest.mark.parametrize("config, message", [
    (tiny(epochs=0), "'epochs' must be at least 1"),
    (tiny(learning_rate=0.1), "Unknown setting(s): learning_rate"),
    (tiny(data="no such data"), "There is no dataset named 'no such data'"),
    ('{"task": "classify", ', "The config is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
])
def test_a_bad_config_comes_back_as_a_readable_error_and_nothing_is_created(studio, config, message):
    before = studio.call("/list_runs")
    with pytest.raises(Exception) as caught:
        studio.call("/start_run", config, "")
    assert message in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert studio.call("/list_runs") == before


def test_a_run_started_through_the_api_completes_with_its_metrics(studio):
    run_id = studio.call("/start_run", tiny(), "api smoke")
    assert isinstance(run_id, str) and run_id
    status = wait_status(studio, run_id, lambda s: s["status"] == "completed", "completed")
    assert status["epoch"] == status["epochs"] == 2
    assert status["error"] is None
    assert status["metrics"]["epoch"] == 2
    assert {"train_loss", "valid_loss", "accuracy"} <= set(status["metrics"])
    assert status["monitor"] and isinstance(status["best_metric"], float)
    runs = {r["id"]: r for r in studio.call("/list_runs")}
    assert runs[run_id]["name"] == "api smoke" and runs[run_id]["status"] == "completed"
    assert (studio.workspace / "runs" / run_id / "checkpoints" / "best.pt").is_file()


def test_unknown_run_and_resume_of_a_completed_run_are_refused_with_a_sentence(studio):
    with pytest.raises(Exception, match="There is no run 'nope'"):
        studio.call("/run_status", "nope")
    done = [r for r in studio.call("/list_runs") if r["status"] == "completed"]
    with pytest.raises(Exception, match="Only an interrupted, stopped or failed run can be resumed"):
        studio.call("/resume_run", done[0]["id"])


def test_stop_run_ends_a_longer_run_as_stopped(studio):
    run_id = studio.call("/start_run", tiny(epochs=60), "to stop")
    wait_status(studio, run_id, lambda s: s["status"] == "running" and s["batch"] > 0, "its first batches")
    studio.call("/stop_run", run_id)
    status = wait_status(studio, run_id, lambda s: s["status"] == "stopped", "stopped", timeout=60)
    assert status["epoch"] < 60


def test_a_run_survives_the_studio_being_killed_and_restarted(studio, workspace, tmp_path):
    run_id = studio.call("/start_run", tiny(epochs=6), "survivor")
    wait_status(studio, run_id, lambda s: s["status"] == "running" and s["batch"] > 0, "its first batches")
    studio.kill()
    again = Studio(workspace, tmp_path / "studio-again.log")
    try:
        status = again.call("/run_status", run_id)
        assert status["status"] in ("running", "completed"), status
        assert run_id in [r["id"] for r in again.call("/list_runs")]
        wait_status(again, run_id, lambda s: s["status"] == "completed", "completed")
    finally:
        again.close()
