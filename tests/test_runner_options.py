"""Choosing where runs train: the --runner options, and what a studio without Ray says."""
import sys

import pytest

import app
from conftest import tiny_config, write_colour_classes
from studio.jobs import Jobs, JobError
from studio.ray_runner import RAY_MISSING, ClusterError, RayRunner, is_local
from studio.store import Store
from studio.workspace import Workspace


def test_local_is_the_default_and_needs_no_ray():
    args = app.parse_args([])
    assert args.runner == "local" and is_local(args.runner) and app.make_runner(args) is None


def test_a_ray_address_makes_a_ray_runner_with_its_options():
    args = app.parse_args(["--runner", "ray://head:10001", "--run-gpus", "1", "--report-address", "10.0.0.5:7870"])
    runner = app.make_runner(args)
    assert isinstance(runner, RayRunner) and runner.address == "ray://head:10001"
    assert (runner.run_gpus, runner.report_host, runner.report_port) == (1, "10.0.0.5", 7870)


def test_a_bad_report_address_is_refused_by_the_command_line(capsys):
    with pytest.raises(SystemExit):
        app.parse_args(["--report-address", "http://x:y"])
    assert "--report-address takes HOST or HOST:PORT" in capsys.readouterr().err


def test_without_ray_installed_the_runner_says_so_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray.job_submission", None)  # import fails as if Ray were absent
    ws = Workspace.open(tmp_path / "ws")
    with Store(ws.store_dir) as store, pytest.raises(ClusterError) as e:
        RayRunner("ray://127.0.0.1:1").start(ws, store)
    assert str(e.value) == RAY_MISSING and "requirements-cluster.txt" in RAY_MISSING


def test_a_run_of_several_processes_needs_a_cluster(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    write_colour_classes(ws.dataset_dir("colours"), per_class=2, size=16)
    with Store(ws.store_dir) as store:
        jobs = Jobs(ws, store)
        with pytest.raises(JobError, match="Ray cluster"):
            jobs.submit(tiny_config("colours"), processes=2)
        assert store.list_runs() == []
