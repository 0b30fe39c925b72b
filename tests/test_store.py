"""The run store: records, enforced transitions, series, and several processes at once."""
import json
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from studio.store import MAX_LOSS_POINTS, Store

CONFIG = {"task": "classify", "data": "/ws/datasets/colours", "epochs": 3, "lr": 0.003}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store")
    yield s
    s.close()


def run_python(code: str, *args, wait=True):
    """Another process using the store, as a worker or a second studio would."""
    cmd = [sys.executable, "-c", code, *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_create_list_update_and_version(store):
    first = store.create_run(CONFIG)
    second = store.create_run(CONFIG, name="second try", kind="lr_find")
    assert first["status"] == "queued" and first["dataset"] == "colours" and first["task"] == "classify"
    assert first["name"] == "classify on colours" and second["name"] == "second try"
    assert first["epochs"] == 3 and first["resume"] is False and first["result"] is None
    assert first["id"][:8].isdigit() and first["id"] != second["id"]
    assert [r["id"] for r in store.list_runs()] == [second["id"], first["id"]]

    before = store.version(first["id"])
    assert store.update_run(first["id"], device="cpu", eta_s=12.5)
    assert store.version(first["id"]) > before
    assert store.get_run(first["id"])["device"] == "cpu"
    assert store.version(second["id"]) == 1  # untouched
    assert store.update_run("no-such-run", device="cpu") is False
    with pytest.raises(ValueError, match="transition"):
        store.update_run(first["id"], status="completed")
    with pytest.raises(ValueError, match="kind"):
        store.create_run(CONFIG, kind="dance")


def test_transitions_are_enforced_and_stamped(store):
    run_id = store.create_run(CONFIG)["id"]
    assert not store.transition(run_id, "completed")
    assert not store.transition(run_id, "queued")
    assert store.get_run(run_id)["status"] == "queued"

    assert store.transition(run_id, "running", pid=1234)
    record = store.get_run(run_id)
    assert record["status"] == "running" and record["pid"] == 1234 and record["started"] and not record["ended"]
    assert not store.transition(run_id, "running")
    assert not store.transition(run_id, "queued")

    assert store.transition(run_id, "interrupted", error="gone")
    assert store.get_run(run_id)["ended"] >= record["started"]
    store.request_stop(run_id)
    assert store.transition(run_id, "queued", resume=True)
    record = store.get_run(run_id)
    assert record["resume"] is True and record["error"] is None and record["ended"] is None
    assert not store.stop_requested(run_id)  # a resumed run must not stop at once

    assert store.transition(run_id, "running") and store.transition(run_id, "completed")
    for status in ("queued", "running", "failed", "stopped"):
        assert not store.transition(run_id, status)
    with pytest.raises(ValueError):
        store.transition(run_id, "paused")


TRANSITION_FROM_ELSEWHERE = """
import sys, json
from studio.store import Store
s = Store(sys.argv[1])
run_id = sys.argv[2]
print(json.dumps([s.transition(run_id, "completed"), s.transition(run_id, "running", pid=77),
                  s.transition(run_id, "running")]))
s.close()
"""


def test_transitions_hold_across_processes_and_reopening(tmp_path):
    store = Store(tmp_path / "store")
    run_id = store.create_run(CONFIG)["id"]
    store.close()

    answers = json.loads(run_python(TRANSITION_FROM_ELSEWHERE, tmp_path / "store", run_id))
    assert answers == [False, True, False]

    reopened = Store(tmp_path / "store")
    record = reopened.get_run(run_id)
    assert record["status"] == "running" and record["pid"] == 77
    assert not reopened.transition(run_id, "queued")
    reopened.close()


WRITER = """
import sys, time
from studio.store import Store
s = Store(sys.argv[1])
run_id, parity, start = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start - time.time()))  # both writers begin together
for epoch in range(1 + parity, 301, 2):
    s.add_epoch_metrics(run_id, {"epoch": epoch, "valid_loss": 1.0 / epoch})
    s.append_log(run_id, f"writer {parity} epoch {epoch}")
s.close()
"""


def test_two_processes_writing_at_once_lose_nothing(store, tmp_path):
    run_id = store.create_run(CONFIG)["id"]
    start = time.time() + 1.5
    writers = [run_python(WRITER, tmp_path / "store", run_id, parity, start, wait=False) for parity in (0, 1)]
    for w in writers:
        _, err = w.communicate(timeout=60)
        assert w.returncode == 0, err
    rows = store.epoch_metrics(run_id)
    assert [r["epoch"] for r in rows] == list(range(1, 301))
    assert len(store.log_tail(run_id, n=1000)) == 300
    assert store.version(run_id) >= 601


def test_batch_losses_keep_every_point_then_thin(store):
    run_id = store.create_run(CONFIG)["id"]
    batches = 100
    rows = [(1 + i // batches, 1 + i % batches, batches, 1.0 / (i + 1), 1e-3) for i in range(1500)]
    store.add_batch_losses(run_id, rows, eta_s=42.0)
    points = store.batch_losses(run_id)
    assert [p["step"] for p in points] == list(range(1, 1501))
    assert points[0] == {"epoch": 1, "batch": 1, "step": 1, "loss": 1.0, "lr": 1e-3}
    record = store.get_run(run_id)
    assert (record["epoch"], record["batch"], record["batches"], record["eta_s"]) == (15, 100, 100, 42.0)

    store.add_batch_losses(run_id, [(1 + i // batches, 1 + i % batches, batches, 0.5, 1e-4) for i in range(1500, 6000)])
    store.add_batch_loss(run_id, 61, 1, batches, 0.25, 1e-5)
    points = store.batch_losses(run_id)
    steps = [p["step"] for p in points]
    assert MAX_LOSS_POINTS // 2 <= len(points) < MAX_LOSS_POINTS
    assert steps == sorted(set(steps)) and steps[0] == 1 and steps[-1] >= 5990
    record = store.get_run(run_id)  # progress stays current however thin the series
    assert (record["epoch"], record["batch"]) == (61, 1)


def test_resumed_steps_replace_the_ones_after_the_checkpoint(store):
    run_id = store.create_run(CONFIG)["id"]
    store.add_batch_losses(run_id, [(e, b, 10, 1.0, 1e-3) for e in (1, 2, 3) for b in range(1, 11)][:25])
    store.add_batch_losses(run_id, [(3, 1, 10, 0.1, 1e-3)])  # resumed after epoch 2
    steps = [p["step"] for p in store.batch_losses(run_id)]
    assert steps == list(range(1, 22))
    assert store.batch_losses(run_id)[-1]["loss"] == 0.1


def test_epochs_samples_log_heartbeat_stop_and_delete(store):
    run_id = store.create_run(CONFIG)["id"]
    other = store.create_run(CONFIG)["id"]
    store.add_epoch_metrics(run_id, {"epoch": 2, "accuracy": 0.5})
    store.add_epoch_metrics(run_id, {"epoch": 1, "accuracy": 0.4})
    store.add_epoch_metrics(run_id, {"epoch": 2, "accuracy": 0.7})  # epoch 2 again after a resume
    assert store.epoch_metrics(run_id) == [{"epoch": 1, "accuracy": 0.4}, {"epoch": 2, "accuracy": 0.7}]

    store.add_sample(run_id, 2, "/runs/x/samples/epoch_002.png")
    store.add_sample(run_id, 1, "/runs/x/samples/epoch_001.png")
    assert store.samples(run_id) == [(1, "/runs/x/samples/epoch_001.png"), (2, "/runs/x/samples/epoch_002.png")]

    for i in range(60):
        store.append_log(run_id, f"line {i}")
    assert store.log_tail(run_id) == [f"line {i}" for i in range(10, 60)]
    assert store.log_tail(run_id, 2) == ["line 58", "line 59"]

    assert store.last_heartbeat(run_id) is None
    store.heartbeat(run_id)
    assert abs(store.last_heartbeat(run_id) - time.time()) < 5
    assert not store.stop_requested(run_id)
    store.request_stop(run_id)
    assert store.stop_requested(run_id) and not store.stop_requested(other)
    store.clear_stop(run_id)
    assert not store.stop_requested(run_id)

    store.add_batch_loss(run_id, 1, 1, 10, 1.0, 1e-3)
    store.delete_run(run_id)
    assert store.get_run(run_id) is None
    assert [r["id"] for r in store.list_runs()] == [other]
    assert store.epoch_metrics(run_id) == [] and store.batch_losses(run_id) == [] and store.samples(run_id) == []
    assert store.log_tail(run_id) == [] and store.last_heartbeat(run_id) is None
    # A worker still writing for a deleted run must not bring it back.
    store.add_epoch_metrics(run_id, {"epoch": 3})
    store.append_log(run_id, "late")
    assert store.get_run(run_id) is None and store.epoch_metrics(run_id) == []
