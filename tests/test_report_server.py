"""The studio's reporting endpoint for cluster workers, without a cluster: a real server on
127.0.0.1, real worker processes, and what it refuses."""
import subprocess
import sys

import pytest

from conftest import ROOT, tiny_config, write_colour_classes
from studio.remote_store import RemoteStore, ReportRefused
from studio.report_server import ReportServer
from studio.store import Store
from studio.workspace import Workspace


@pytest.fixture
def setup(tmp_path):
    ws = Workspace.open(tmp_path / "workspace")
    write_colour_classes(ws.dataset_dir("colours"), per_class=4, size=16)
    store = Store(ws.store_dir)
    server = ReportServer(store, ws)
    run_id = store.create_run(tiny_config(str(ws.dataset_dir("colours"))))["id"]
    store.transition(run_id, "running", pid=None)
    store.set_report_token(run_id, "secret-a")
    yield ws, store, server, run_id
    server.close()
    store.close()


def test_a_worker_with_its_token_writes_its_own_run(setup):
    ws, store, server, run_id = setup
    remote = RemoteStore(server.url, "secret-a", run_id, patience=2)
    remote.heartbeat(run_id)
    remote.add_batch_losses(run_id, [(1, 1, 2, 0.9, 1e-3), (1, 2, 2, 0.8, 1e-3)], eta_s=3.0)
    remote.add_epoch_metrics(run_id, {"epoch": 1, "accuracy": 0.5})
    remote.add_sample(run_id, 1, str(ws.run_dir(run_id) / "samples" / "epoch_001.png"))
    assert remote.stop_requested(run_id) is False
    assert store.last_heartbeat(run_id) is not None
    assert [p["loss"] for p in store.batch_losses(run_id)] == [0.9, 0.8]
    assert store.get_run(run_id)["eta_s"] == 3.0
    assert remote.transition(run_id, "completed", best_metric=0.5) is True
    assert store.get_run(run_id)["status"] == "completed"
    with pytest.raises(ReportRefused):  # the attempt is over: its token went with it
        remote.heartbeat(run_id)


@pytest.mark.parametrize("call, words", [
    (lambda r, run: RemoteStore(r.url, "wrong", run, patience=1).heartbeat(run), "token"),
    (lambda r, run: RemoteStore(r.url, "secret-a", run, patience=1).update_run(run, config={"data": "/etc"}), "config"),
    (lambda r, run: RemoteStore(r.url, "secret-a", run, patience=1).transition(run, "queued"), "queued"),
    (lambda r, run: RemoteStore(r.url, "secret-a", run, patience=1).add_sample(run, 1, "/etc/passwd"), "folder"),
    (lambda r, run: RemoteStore(r.url, "secret-a", run, patience=1).delete_run(run), "unknown call"),
])
def test_the_endpoint_refuses_what_a_worker_may_not_do(setup, call, words):
    ws, store, server, run_id = setup
    with pytest.raises(ReportRefused, match=words):
        call(server, run_id)
    record = store.get_run(run_id)
    assert record["status"] == "running" and record["config"]["data"] != "/etc"
    assert store.samples(run_id) == []


def test_a_token_is_good_for_its_own_run_only(setup):
    ws, store, server, run_id = setup
    other = store.create_run(tiny_config(str(ws.dataset_dir("colours"))))["id"]
    with pytest.raises(ReportRefused):
        RemoteStore(server.url, "secret-a", run_id)._call("heartbeat", other)  # the client refuses...
    import json
    import urllib.error
    import urllib.request

    body = json.dumps({"run": other, "token": "secret-a", "method": "heartbeat"}).encode()
    with pytest.raises(urllib.error.HTTPError) as e:  # ...and so does the server
        urllib.request.urlopen(urllib.request.Request(server.url, data=body), timeout=5)
    assert e.value.code == 403 and store.last_heartbeat(other) is None


def test_a_node_that_cannot_see_the_workspace_fails_the_run_with_a_sentence(setup, tmp_path):
    ws, store, server, run_id = setup
    env = {"DARKROOM_REPORT_URL": server.url, "DARKROOM_REPORT_TOKEN": "secret-a", "PATH": "/usr/bin:/bin"}
    missing = tmp_path / "not-mounted-here"
    done = subprocess.run([sys.executable, "-m", "studio.worker", "--workspace", str(missing), run_id],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    record = store.get_run(run_id)
    assert record["status"] == "failed"
    assert record["error"].startswith("This node (") and "cannot see the workspace" in record["error"]
    assert not missing.exists()  # nothing was created in its place
