"""Sweeps: the settings a sweep tries, and a local sweep as ordinary queued runs."""
import os
import signal
import time

import pytest

from conftest import tiny_config, write_colour_classes
from studio import sweeps
from studio.jobs import Jobs, process_alive
from studio.store import Store
from studio.workspace import Workspace

WAIT_S = 200


def test_grid_tries_the_combinations_in_order_and_stops_at_n():
    space = {"lr": "1e-3, 1e-2", "image_size": "32,64", "batch_size": [8]}
    assert sweeps.settings(space, 3, "grid") == [
        {"lr": 1e-3, "image_size": 32, "batch_size": 8}, {"lr": 1e-3, "image_size": 64, "batch_size": 8},
        {"lr": 1e-2, "image_size": 32, "batch_size": 8}]
    assert len(sweeps.settings(space, 10, "grid")) == 4  # no more than there are combinations


def test_random_is_seeded_distinct_and_inside_the_ranges():
    space = {"lr": "1e-4, 1e-1", "batch_size": "4, 8, 16"}
    first = sweeps.settings(space, 6, "random", seed=3)
    assert first == sweeps.settings(space, 6, "random", seed=3)
    assert first != sweeps.settings(space, 6, "random", seed=4)
    assert len({tuple(sorted(p.items())) for p in first}) == 6
    assert all(1e-4 <= p["lr"] <= 1e-1 and p["batch_size"] in (4, 8, 16) for p in first)


@pytest.mark.parametrize("space, n, mode, words", [
    ({}, 4, "grid", "at least one value"),
    ({"lr": "fast"}, 4, "grid", "not a number"),
    ({"image_size": "32.5"}, 4, "grid", "whole numbers"),
    ({"lr": "1e-3"}, 0, "grid", "between 1 and"),
    ({"lr": "1e-3"}, 2, "spiral", "grid or random"),
])
def test_a_sweep_that_cannot_be_made_says_why(space, n, mode, words):
    with pytest.raises(sweeps.SweepError, match=words):
        sweeps.settings(space, n, mode)


def test_the_best_follows_the_monitor_direction():
    runs = [{"id": "a", "best_metric": 0.9, "monitor": "accuracy"}, {"id": "b", "best_metric": 0.95, "monitor": "accuracy"},
            {"id": "c", "best_metric": None, "monitor": "accuracy"}]
    assert sweeps.best_run(runs)["id"] == "b"
    losses = [{"id": "a", "best_metric": 0.3, "monitor": "valid_loss"}, {"id": "b", "best_metric": 0.5, "monitor": "valid_loss"}]
    assert sweeps.best_run(losses)["id"] == "a"
    assert sweeps.best_run([{"id": "x", "best_metric": None}]) is None


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ws = Workspace.open(tmp_path / "workspace")
    write_colour_classes(ws.dataset_dir("colours"), per_class=8, size=16)
    return ws


def test_a_local_sweep_queues_ordinary_runs_and_marks_the_best(ws):
    store = Store(ws.store_dir)
    jobs = Jobs(ws, store)
    try:
        base = tiny_config("colours", epochs=1, image_size=16)
        sweep_id = jobs.submit_sweep(base, {"lr": "1e-3, 1e-2"}, 2, "grid", name="two rates")
        runs = sweeps.sweep_runs(store.list_runs(), sweep_id)
        assert [r["config"]["lr"] for r in runs] == [1e-3, 1e-2]
        assert all(r["status"] == "queued" and not r["tune"] for r in runs)  # no cluster: the normal queue
        assert runs[0]["name"].startswith("two rates 1/2")

        deadline = time.monotonic() + WAIT_S
        while not (summary := sweeps.summary(store.list_runs(), sweep_id))["ended"]:
            assert time.monotonic() < deadline, summary
            jobs.poll()
            time.sleep(0.2)
        assert [t["status"] for t in summary["trials"]] == ["completed", "completed"]
        best = max(summary["trials"], key=lambda t: t["best_metric"])
        assert summary["best"] == best["id"] and [t["best"] for t in summary["trials"]].count(True) == 1

        from studio.ui.sweep_panel import BEST, sweep_view  # what the Runs tab shows of it
        heading, table, figure = sweep_view(store, sweep_id)
        assert "all trials have ended" in heading and "Best:" in heading
        assert list(table[table[""] == BEST]["id"]) == [best["id"]]
        assert len([t for t in figure.data if t.name.endswith("train")]) == 2  # both curves overlaid
    finally:
        for record in store.list_runs():
            if record["status"] == "running" and process_alive(record.get("pid"), record["id"]):
                os.killpg(record["pid"], signal.SIGKILL)
        store.close()


def test_the_train_tabs_sweep_panel_queues_the_forms_config_with_each_setting(tmp_path):
    """The panel's own handler, called with what the built page holds (the form's defaults)."""
    from studio.ui import build_app
    from studio.ui.context import StudioContext

    ctx = StudioContext.open(tmp_path / "workspace")
    write_colour_classes(ctx.workspace.dataset_dir("colours") / "train", per_class=8, size=16)
    write_colour_classes(ctx.workspace.dataset_dir("colours") / "valid", per_class=2, size=16, seed=1)
    try:
        demo = build_app(ctx)
        panel = next(f for f in demo.fns.values()
                     if getattr(f.fn, "__name__", "") == "start_sweep" and f.inputs[0].elem_id == "sweep-lrs")
        values = [c.value for c in panel.inputs]
        ids = [c.elem_id for c in panel.inputs]
        values[:8] = ["1e-3, 1e-2", "", "8, 16", 3, "grid", 0, False, "panel"]  # 2 x 2 settings, N = 3
        values[ids.index("train-dataset")] = "colours"
        message = panel.fn(*values)
        assert "3 runs in the queue" in message
        runs = sweeps.sweep_runs(ctx.store.list_runs(), sweeps.sweeps(ctx.store.list_runs())[0]["id"])
        assert [(r["config"]["lr"], r["config"]["batch_size"]) for r in runs] == [(1e-3, 8), (1e-3, 16), (1e-2, 8)]
        assert all(r["config"]["data"].endswith("colours") and r["status"] == "queued" for r in runs)
        values[:8] = ["fast", "", "", 3, "grid", 0, False, ""]
        with pytest.raises(Exception, match="not a number"):  # a gr.Error with the sentence
            panel.fn(*values)
    finally:
        ctx.store.close()
