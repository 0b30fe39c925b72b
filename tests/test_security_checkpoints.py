"""Nothing a visitor could place is unpickled: every checkpoint reader refuses a file whose pickle
would run code (here: create a marker file), and a cut-short last.pt is refused before a resume
is queued, with a sentence that names the run and no host path."""
import json

import pytest
import torch

from studio.checkpoints import CheckpointError, load_checkpoint
from studio.jobs import JobError, Jobs
from studio.store import Store
from studio.workspace import Workspace
from trainers.callbacks import checkpoint_complete, load_last_checkpoint, read_checkpoint, write_checkpoint
from trainers.errors import ConfigError
from trainers.tasks.gan import generator_checkpoint


class Payload:
    """Unpickling this calls open(marker, "w"): the file appears if the pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_run(folder, marker, task="restore"):
    """A run folder as a zip upload could lay it out: a config and checkpoints that are pickles."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"task": task, "data": str(folder)}))
    for name in ("best.pt", "last.pt"):
        torch.save({"task": task, "model": Payload(marker), "info": {}}, folder / "checkpoints" / name)
    return folder


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """The control: without weights_only the marker appears, so the tests below can fail."""
    run = hostile_run(tmp_path / "run", tmp_path / "marker")
    torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    assert (tmp_path / "marker").exists()


def test_no_checkpoint_reader_runs_a_pickle(tmp_path):
    marker = tmp_path / "marker"
    run = hostile_run(tmp_path / "run", marker)
    with pytest.raises(ConfigError, match="not a plain Darkroom checkpoint"):
        read_checkpoint(run / "checkpoints" / "best.pt")
    with pytest.raises(ConfigError, match="last checkpoint of run run"):
        load_last_checkpoint(run)  # a resume
    with pytest.raises(ConfigError, match="generator checkpoint of run run"):
        generator_checkpoint(str(run))  # a gan's generator
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(run)  # Try, Inspect, export, the demo
    assert str(tmp_path) not in str(refused.value)
    assert not marker.exists()


def test_checkpoints_hold_only_what_weights_only_reads(tmp_path):
    """The resume state (RNG states included) round-trips through weights_only=True."""
    from trainers.callbacks import rng_state, set_rng_state
    import random
    import numpy as np

    state = {"model": {"w": torch.ones(2)}, "rng": rng_state(), "epoch": 1}
    expected = (torch.rand(3), np.random.rand(3), random.random())
    write_checkpoint(state, tmp_path / "last.pt")
    set_rng_state(read_checkpoint(tmp_path / "last.pt")["rng"])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_a_truncated_last_checkpoint_is_refused_before_a_resume_is_queued(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    store = Store(ws.store_dir)
    try:
        jobs = Jobs(ws, store, slots=1)
        run_id = store.create_run({"task": "classify", "data": "x"})["id"]
        store.transition(run_id, "running")
        store.transition(run_id, "interrupted")
        last = ws.run_dir(run_id) / "checkpoints" / "last.pt"
        write_checkpoint({"model": {"w": torch.zeros(1000)}, "epoch": 1}, last)
        assert checkpoint_complete(last)
        last.write_bytes(last.read_bytes()[:-200])  # cut short, as a full disk or a kill mid-copy leaves it
        assert not checkpoint_complete(last)
        with pytest.raises(JobError, match=f"Run {run_id}'s last checkpoint is truncated") as refused:
            jobs.resume(run_id)
        assert str(ws.root) not in str(refused.value)
        assert store.get_run(run_id)["status"] == "interrupted"  # nothing queued
        with pytest.raises(ConfigError, match=f"last checkpoint of run {run_id}"):
            load_last_checkpoint(ws.run_dir(run_id))  # the worker says the same, should one get there
    finally:
        store.close()


def test_the_run_store_keeps_json_and_never_runs_a_pickle(tmp_path):
    import pickle
    import sqlite3

    import diskcache
    from diskcache.core import MODE_PICKLE

    with Store(tmp_path / "store") as store:
        run_id = store.create_run({"task": "classify", "data": "x"}, name="n")["id"]
        store.request_stop(run_id)
        store.heartbeat(run_id)
        assert store.get_run(run_id)["name"] == "n" and store.stop_requested(run_id)
    with sqlite3.connect(tmp_path / "store" / "cache.db") as db:
        assert MODE_PICKLE not in {mode for (mode,) in db.execute("SELECT mode FROM Cache")}
    # A store an older studio wrote (pickled plain values) still reads; a pickle that asks for
    # code does not run.
    marker = tmp_path / "marker"
    with diskcache.Cache(str(tmp_path / "old")) as old:
        old.set("runs", ["a"])
        old.set("run:a", {"id": "a", "name": "old run", "status": "completed", "created": 1.0})
        old.set("run:b", Payload(marker))
    with Store(tmp_path / "old") as store:
        assert [r["name"] for r in store.list_runs()] == ["old run"]
        with pytest.raises(pickle.UnpicklingError):
            store.cache.get("run:b")
    assert not marker.exists()
