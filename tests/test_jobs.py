"""The scheduler and its workers: real processes training a tiny real model."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import tiny_config, write_colour_classes
from studio import jobs as jobs_module
from studio.jobs import Jobs, JobError, process_alive
from studio.store import Store
from studio.worker import human_error
from studio.workspace import Workspace
from trainers import ConfigError, RunConfig

WAIT_S = 150  # generous: the test machine's two cores are shared


@pytest.fixture(autouse=True)
def one_thread_per_worker(monkeypatch):
    # Workers inherit this: on the shared 2-core test machine, torch's default threads
    # spin against each other and make every batch several times slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture
def ws(tmp_path):
    ws = Workspace.open(tmp_path / "workspace")
    write_colour_classes(ws.dataset_dir("colours"), per_class=12)
    return ws


@pytest.fixture
def store(ws):
    store = Store(ws.store_dir)
    yield store
    for record in store.list_runs():  # never leave a worker behind, whatever failed
        if record["status"] == "running" and process_alive(record.get("pid"), record["id"]):
            os.killpg(record["pid"], signal.SIGKILL)
    store.close()


def wait_for(jobs, condition, what, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs.poll()
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def worker_log(ws, run_id):
    path = ws.run_dir(run_id) / "worker.log"
    return path.read_text() if path.is_file() else "(no worker.log)"


def status(store, run_id):
    return store.get_run(run_id)["status"]


def test_runs_go_queued_running_completed_one_slot_at_a_time(ws, store):
    jobs = Jobs(ws, store)  # default slots: 1 on a CPU-only machine, one per GPU otherwise
    train = jobs.submit(tiny_config("colours"), name="first")
    finder = jobs.submit(tiny_config("colours"), kind="lr_find")
    assert status(store, train) == status(store, finder) == "queued"

    wait_for(jobs, lambda: status(store, train) == "running", "the run to start")
    if jobs.slots == 1:
        assert status(store, finder) == "queued"  # waits for the slot
    wait_for(jobs, lambda: status(store, train) != "running", "the run to end")
    record = store.get_run(train)
    assert record["status"] == "completed", (record["error"], worker_log(ws, train))
    assert record["config"]["data"] == str(ws.dataset_dir("colours"))
    assert record["device"] and record["pid"] and record["ended"] >= record["started"]
    assert record["monitor"] == "accuracy" and record["best_metric"] is not None
    assert record["result"]["status"] == "completed" and record["result"]["epochs_done"] == 2
    assert (record["epoch"], record["batch"]) == (2, record["batches"])

    run_dir = ws.run_dir(train)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert [m["epoch"] for m in store.epoch_metrics(train)] == [1, 2]
    assert [e for e, _ in store.samples(train)] == [1, 2]
    assert all(os.path.isfile(path) for _, path in store.samples(train))
    assert len(store.batch_losses(train)) == 2 * record["batches"]
    # completed: best.pt stays for using the model, last.pt (the optimiser, for resuming) is gone
    assert (run_dir / "checkpoints" / "best.pt").is_file() and (run_dir / "worker.log").is_file()
    assert not (run_dir / "checkpoints" / "last.pt").exists()
    assert any("phase" in line for line in store.log_tail(train))

    wait_for(jobs, lambda: status(store, finder) not in ("queued", "running"), "the LR finder")
    found = store.get_run(finder)
    assert found["status"] == "completed", found["error"]
    curve = found["result"]
    assert len(curve["lrs"]) == len(curve["losses"]) > 5 and curve["lrs"][0] <= curve["suggestion"] <= curve["lrs"][-1]

    # Clone with changes: validated like a new run; a queued run is simply stopped.
    clone = jobs.clone(train, {"epochs": 1})
    assert store.get_run(clone)["config"]["epochs"] == 1 and store.get_run(clone)["name"] == "first (copy)"
    with pytest.raises(ConfigError, match="batch size"):
        jobs.clone(train, {"batch_size": 500})
    jobs.stop(clone)
    assert status(store, clone) == "stopped"
    jobs.resume(clone)  # no checkpoint yet: it is queued to start again, same id and settings
    assert status(store, clone) == "queued" and store.get_run(clone)["config"]["epochs"] == 1
    jobs.stop(clone)
    with pytest.raises(JobError, match="completed"):
        jobs.resume(train)
    jobs.delete(train)
    assert store.get_run(train) is None and not run_dir.exists()


def test_bad_config_is_refused_before_anything_is_created(ws, store):
    jobs = Jobs(ws, store, slots=1)
    too_big = tiny_config("colours", batch_size=500)
    with pytest.raises(ConfigError) as refused:
        jobs.submit(too_big)
    with pytest.raises(ConfigError) as direct:
        RunConfig.from_dict(dict(too_big, data=str(ws.dataset_dir("colours")))).validate()
    assert str(refused.value) == str(direct.value)  # the trainers' message, unchanged
    with pytest.raises(ConfigError, match="no dataset named 'nothing'"):
        jobs.submit(tiny_config("nothing"))
    with pytest.raises(ConfigError, match="Unknown setting"):
        jobs.submit(dict(tiny_config("colours"), speed=11))
    with pytest.raises(ConfigError, match="outside the workspace"):
        jobs.submit(tiny_config(write_colour_classes(ws.root.parent / "elsewhere", per_class=4)))
    with pytest.raises(ConfigError, match="not allowed"):
        jobs.submit(tiny_config(".."))
    jobs.poll()
    assert store.list_runs() == [] and list(ws.runs_dir.iterdir()) == []


def test_settings_that_name_files_must_point_inside_the_workspace(ws, store, tmp_path):
    jobs = Jobs(ws, store, slots=1)
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"not for a visitor")
    hostile = {"style_image": str(outside), "content_image": "/etc/passwd", "generator_run": "../../etc"}
    for key, value in hostile.items():
        with pytest.raises(ConfigError, match=f"extra.{key}"):
            jobs.resolve_extra_paths({key: value})
        with pytest.raises(ConfigError, match=f"extra.{key}"):
            jobs.submit(dict(tiny_config("colours"), extra={key: value}))
    inside = ws.root / "style.png"
    inside.write_bytes(b"")
    with pytest.raises(ConfigError, match="extra.style_image"):  # the workspace, but not uploads or datasets
        jobs.resolve_extra_paths({"style_image": str(inside)})
    uploaded = ws.uploads_dir / "style.png"
    uploaded.write_bytes(b"")
    assert jobs.resolve_extra_paths({"style_image": str(uploaded)}) == {"style_image": str(uploaded.resolve())}
    # a gan's generator is a completed restore run, named by its id: not any folder, not a run in progress
    with pytest.raises(ConfigError, match="completed restore run"):
        jobs.resolve_extra_paths({"generator_run": "abc123"})
    run = store.create_run({"task": "restore", "data": "x"})["id"]
    with pytest.raises(ConfigError, match="completed restore run"):
        jobs.resolve_extra_paths({"generator_run": run})
    store.transition(run, "running")
    store.transition(run, "completed")
    assert jobs.resolve_extra_paths({"generator_run": run}) == {"generator_run": str(ws.run_dir(run).resolve())}
    # a clone's config holds the folder: that run's folder is accepted, no other
    assert jobs.resolve_extra_paths({"generator_run": str(ws.run_dir(run))})["generator_run"] == str(ws.run_dir(run).resolve())
    with pytest.raises(ConfigError, match="completed restore run"):
        jobs.resolve_extra_paths({"generator_run": str(ws.tmp_dir / run)})


def test_sigterm_and_stop_end_a_run_cleanly_and_it_resumes_between(ws, store):
    jobs = Jobs(ws, store, slots=1)
    run_id = jobs.submit(tiny_config("colours", epochs=50))
    last_pt = ws.run_dir(run_id) / "checkpoints" / "last.pt"

    # SIGTERM (the system shutting down, say) asks for a clean stop.
    wait_for(jobs, lambda: store.epoch_metrics(run_id), "the first epoch")
    pid = store.get_run(run_id)["pid"]
    os.kill(pid, signal.SIGTERM)
    wait_for(jobs, lambda: status(store, run_id) != "running", "the run to stop", timeout=60)
    record = store.get_run(run_id)
    assert record["status"] == "stopped" and record["error"] is None, (record["error"], worker_log(ws, run_id))
    assert record["result"]["status"] == "stopped" and last_pt.is_file()
    wait_for(jobs, lambda: not process_alive(pid, run_id), "the worker to exit", timeout=20)

    # Resumed, it goes on from its checkpoint; the studio's stop() ends it cleanly again.
    done = len(store.epoch_metrics(run_id))
    jobs.resume(run_id)
    wait_for(jobs, lambda: len(store.epoch_metrics(run_id)) > done, "an epoch after resuming")
    assert status(store, run_id) == "running"
    with pytest.raises(JobError, match="stop it first"):
        jobs.delete(run_id)
    jobs.stop(run_id, grace=60)
    wait_for(jobs, lambda: status(store, run_id) != "running", "the run to stop", timeout=60)
    record = store.get_run(run_id)
    assert record["status"] == "stopped" and record["error"] is None  # by the flag, not killed
    assert record["result"]["epochs_done"] < 50 and last_pt.is_file()
    epochs = [m["epoch"] for m in store.epoch_metrics(run_id)]
    assert epochs == list(range(1, len(epochs) + 1))
    wait_for(jobs, lambda: not process_alive(record["pid"], run_id), "the worker to exit", timeout=20)

    # "Keep the record, free the disk": checkpoints go, metrics, samples and the record stay.
    run_dir = ws.run_dir(run_id)
    assert jobs.free_disk(run_id) > 0
    assert not (run_dir / "checkpoints").exists() and (run_dir / "metrics.jsonl").is_file()
    assert store.get_run(run_id)["status"] == "stopped" and store.epoch_metrics(run_id) and store.samples(run_id)
    with pytest.raises(JobError, match="disk was freed"):
        jobs.resume(run_id)
    jobs.delete(run_id)
    assert store.get_run(run_id) is None and not ws.run_dir(run_id).exists()


def test_a_run_whose_data_vanished_fails_with_a_readable_error(ws, store):
    jobs = Jobs(ws, store, slots=1)
    run_id = jobs.submit(tiny_config("colours"))
    shutil.rmtree(ws.dataset_dir("colours"))
    wait_for(jobs, lambda: status(store, run_id) not in ("queued", "running"), "the run to end")
    record = store.get_run(run_id)
    assert record["status"] == "failed"
    assert record["error"] == f"Dataset folder not found: {ws.dataset_dir('colours')}"  # the ConfigError, as is
    log = (ws.run_dir(run_id) / "log.txt").read_text()
    assert "Traceback" in log and "ConfigError" in log
    with pytest.raises(ConfigError, match="dataset folder"):
        jobs.resume(run_id)  # checked again: the dataset has gone


def test_human_error_is_one_line():
    assert human_error(ConfigError("The batch size is too large.")) == "The batch size is too large."
    assert human_error(RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")) == \
        "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"
    assert human_error(KeyError()) == "KeyError"
    assert len(human_error(ValueError("x" * 5000))) < 450


def test_store_reporter_writes_progress_best_metric_and_reads_the_stop_flag(store):
    from studio.worker import StoreReporter
    from trainers.reporting import Reporter

    run_id = store.create_run(tiny_config("/nowhere/colours", epochs=3))["id"]
    reporter = StoreReporter(store, run_id)
    protocol = [name for name in vars(Reporter) if not name.startswith("_")]
    assert len(protocol) == 7 and all(callable(getattr(reporter, name)) for name in protocol)
    reporter.start({"device": "cpu", "epochs": 3, "batches_per_epoch": 4, "monitor": "error_rate"})
    for batch in range(1, 5):
        reporter.batch(1, batch, 4, 1.0 / batch, 1e-3)
    for epoch, error in ((1, 0.5), (2, 0.2), (3, 0.3)):
        reporter.epoch({"epoch": epoch, "valid_loss": error * 2, "error_rate": error})
    reporter.sample(1, "/runs/x/samples/epoch_001.png")
    reporter.log("hello")
    record = store.get_run(run_id)
    assert (record["epochs"], record["batches"], record["monitor"], record["device"]) == (3, 4, "error_rate", "cpu")
    assert record["best_metric"] == 0.2  # an error rate is best when lowest
    assert (record["epoch"], record["batch"]) == (1, 4) and record["eta_s"] is not None
    assert [p["batch"] for p in store.batch_losses(run_id)] == [1, 2, 3, 4]
    assert store.samples(run_id) == [(1, "/runs/x/samples/epoch_001.png")] and store.log_tail(run_id) == ["hello"]

    assert reporter.should_stop() is False
    store.request_stop(run_id)
    assert reporter.should_stop() is False  # read at most every half second
    time.sleep(0.6)
    assert reporter.should_stop() is True


def test_a_silent_worker_is_ended_and_a_stranger_with_its_pid_is_left_alone(ws, store, monkeypatch):
    monkeypatch.setattr(jobs_module, "SUSPEND_GAP_S", 0.5)
    jobs = Jobs(ws, store, slots=2)
    silent_id = jobs.submit(tiny_config("colours"))
    reused_id = jobs.submit(tiny_config("colours"))
    sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
    silent = subprocess.Popen(sleep + ["studio.worker", silent_id], start_new_session=True)  # looks like its worker
    stranger = subprocess.Popen(sleep, start_new_session=True)  # the system gave the pid to another program
    try:
        # Popen returns once exec() has begun, before the kernel has set the new command line;
        # a pid reused long ago shows its program's, so wait for both to show theirs.
        for proc in (silent, stranger):
            deadline = time.monotonic() + 10
            while not any(open(f"/proc/{proc.pid}/cmdline", "rb").read().split(b"\0")):
                assert time.monotonic() < deadline, "the sleeper never finished exec()"
                time.sleep(0.01)
        assert store.transition(silent_id, "running", pid=silent.pid, slot=0, started=time.time() - 60)
        assert store.transition(reused_id, "running", pid=stranger.pid, slot=1)
        store.heartbeat(reused_id)

        jobs.poll()  # the first look after a (re)start judges pids, not heartbeats
        record = store.get_run(reused_id)
        assert record["status"] == "interrupted" and "gone" in record["error"]
        assert stranger.poll() is None  # not ours: never signalled
        assert status(store, silent_id) == "running"

        wait_for(jobs, lambda: status(store, silent_id) != "running", "the silent run to be ended", timeout=20)
        record = store.get_run(silent_id)
        assert record["status"] == "interrupted" and "no heartbeat" in record["error"]
        assert silent.wait(timeout=10) == -signal.SIGKILL
    finally:
        for proc in (silent, stranger):
            proc.kill()
            proc.wait()


def worker_processes(run_id):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if b"studio.worker" in argv and run_id.encode() in argv and process_alive(int(entry), run_id):
                found.append(int(entry))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts worker processes through /proc")
def test_restart_keeps_a_live_run_and_a_killed_worker_is_interrupted_then_resumed(ws, store):
    write_colour_classes(ws.dataset_dir("more"), per_class=40)  # 12 batches an epoch: time to kill mid-epoch
    epochs = 5
    first = Jobs(ws, store, slots=1)
    first.start_background(interval=0.2)
    run_id = first.submit(tiny_config("more", epochs=epochs))
    queued_next = first.submit(tiny_config("colours", epochs=1))
    deadline = time.monotonic() + WAIT_S
    while not store.epoch_metrics(run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    first.shutdown()  # the studio closes; the run goes on

    # A new studio on the same workspace: it adopts the run and starts nothing twice.
    second_store = Store(ws.store_dir)
    second = Jobs(ws, second_store, slots=1)
    for _ in range(3):
        second.poll()
        time.sleep(0.2)
    record = second_store.get_run(run_id)
    assert record["status"] == "running", record["error"]
    assert worker_processes(run_id) == [record["pid"]]
    assert status(second_store, queued_next) == "queued"  # the one slot is taken

    def mid_epoch():
        # Kill well inside an epoch, so the kill cannot land while an epoch is being saved.
        r = second_store.get_run(run_id)
        return r["epoch"] >= 2 and len(second_store.epoch_metrics(run_id)) == r["epoch"] - 1 \
            and r["batch"] <= r["batches"] - 4

    wait_for(second, mid_epoch, "the run to be inside an epoch")
    os.killpg(record["pid"], signal.SIGKILL)
    killed = time.monotonic()
    wait_for(second, lambda: status(second_store, run_id) != "running", "the dead run to be noticed", timeout=20)
    assert time.monotonic() - killed < 10
    record = second_store.get_run(run_id)
    assert record["status"] == "interrupted" and "gone" in record["error"]
    assert len(second_store.epoch_metrics(run_id)) < epochs

    second.resume(run_id)
    assert second_store.get_run(run_id)["resume"] is True
    # The run queued earlier is first in line now; the resumed one follows.
    wait_for(second, lambda: status(second_store, run_id) in ("completed", "failed"), "the resumed run")
    record = second_store.get_run(run_id)
    assert record["status"] == "completed", (record["error"], worker_log(ws, run_id))
    assert status(second_store, queued_next) == "completed"
    assert [m["epoch"] for m in second_store.epoch_metrics(run_id)] == list(range(1, epochs + 1))
    lines = (ws.run_dir(run_id) / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, epochs + 1))
    assert [e for e, _ in second_store.samples(run_id)] == list(range(1, epochs + 1))
    assert any("resuming after epoch" in line for line in second_store.log_tail(run_id, 200))
    steps = [p["step"] for p in second_store.batch_losses(run_id)]
    assert steps == list(range(1, epochs * record["batches"] + 1))  # the repeated steps replaced, none twice
    second_store.close()


def test_a_run_killed_in_its_first_epoch_resumes_by_starting_again_and_completes(ws, store):
    jobs = Jobs(ws, store, slots=1)
    # Batches of two: the first epoch lasts long enough to be killed in; no time checkpoints.
    run_id = jobs.submit(tiny_config("colours", epochs=1, batch_size=2, extra={"checkpoint_minutes": 0}))
    wait_for(jobs, lambda: store.batch_losses(run_id), "the first batches")
    os.killpg(store.get_run(run_id)["pid"], signal.SIGKILL)
    assert not (ws.run_dir(run_id) / "checkpoints" / "last.pt").exists()
    wait_for(jobs, lambda: status(store, run_id) == "interrupted", "the run to be marked interrupted")

    jobs.resume(run_id)
    wait_for(jobs, lambda: status(store, run_id) not in ("queued", "running"), "the resumed run to end")
    record = store.get_run(run_id)
    assert record["status"] == "completed", (record["error"], worker_log(ws, run_id))
    assert any("starting again with the same settings" in line for line in store.log_tail(run_id, 200))
    assert [m["epoch"] for m in store.epoch_metrics(run_id)] == [1]


def test_run_status_never_shows_an_epoch_whose_checkpoint_is_missing(ws, store):
    """Killed the moment /run_status shows a new epoch, every epoch: its checkpoint is there."""
    import torch
    from studio.ui.api import status_of

    jobs = Jobs(ws, store, slots=1)
    epochs = 3
    run_id = jobs.submit(tiny_config("colours", epochs=epochs, extra={"checkpoint_minutes": 0}))
    last_pt = ws.run_dir(run_id) / "checkpoints" / "last.pt"
    shown, kills = 0, 0
    deadline = time.monotonic() + WAIT_S * epochs
    while status(store, run_id) != "completed" and time.monotonic() < deadline:
        jobs.poll()
        record = store.get_run(run_id)
        epoch = status_of(store, record)["metrics"].get("epoch", 0)
        if epoch > shown and record["status"] == "running" and epoch < epochs:
            os.killpg(record["pid"], signal.SIGKILL)  # right after the status changed
            kills += 1
            saved = torch.load(last_pt, weights_only=False)
            assert saved["epoch"] >= epoch, (saved["epoch"], epoch)
            shown = epoch
            wait_for(jobs, lambda: status(store, run_id) == "interrupted", "the kill to be noticed")
            jobs.resume(run_id)
        elif record["status"] in ("failed", "stopped"):
            raise AssertionError((record["error"], worker_log(ws, run_id)))
        time.sleep(0.01)
    assert status(store, run_id) == "completed" and kills == epochs - 1
    assert [m["epoch"] for m in store.epoch_metrics(run_id)] == [1, 2, 3]


def test_a_completed_run_keeps_last_pt_only_when_its_settings_say_so(ws, store):
    """extra.keep_last (a setting of every task, so a checkbox in each task's form): its
    last.pt stays for resuming; without it the completed run's last.pt goes (the test above)."""
    from studio.ui.task_options import form_settings, task_extra
    from trainers.tasks import TASKS

    for task in TASKS.values():
        assert "keep_last" in [s.name for s in form_settings(task)]
    assert task_extra(TASKS["classify"], {"keep_last": True}) == {"keep_last": True}
    assert task_extra(TASKS["classify"], {"keep_last": False}) == {}

    jobs = Jobs(ws, store)
    kept = jobs.submit(tiny_config("colours", epochs=1, extra={"keep_epochs_every": 0, "keep_last": True}))
    wait_for(jobs, lambda: status(store, kept) not in ("queued", "running"), "the run to end")
    assert status(store, kept) == "completed", (store.get_run(kept)["error"], worker_log(ws, kept))
    folder = ws.run_dir(kept) / "checkpoints"
    assert (folder / "last.pt").is_file() and (folder / "best.pt").is_file()
