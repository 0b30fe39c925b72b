"""Runs on a real Ray cluster on 127.0.0.1: a head without CPUs and two one-CPU nodes, and a
real `python app.py --runner ...` driven through its API with gradio_client. Runs complete,
stop and resume; a node killed under a run leaves it interrupted and it resumes on the other."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

# Every Ray process of this test (nodes, jobs, the studio's client) on the loopback address only:
# Ray otherwise swaps 127.0.0.1 for the machine's outward address. Read when ray is imported.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # Ray would report usage over the internet
ray = pytest.importorskip("ray", reason="Ray is optional (requirements-cluster.txt)")
from gradio_client import Client  # noqa: E402

from conftest import ROOT, tiny_json  # noqa: E402
from studio.run_disk import free_disk  # noqa: E402
from studio.store import Store  # noqa: E402
from test_ui_api import write_tiny_dataset  # noqa: E402

pytestmark = pytest.mark.slow
WAIT_S = 240          # generous: the machine's two cores are shared with the cluster's processes
ENDED = ("completed", "failed", "stopped", "interrupted")
NODE = dict(num_cpus=1, object_store_memory=80 * 2**20, node_ip_address="127.0.0.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    os.environ["OMP_NUM_THREADS"] = "1"  # the nodes' processes inherit it: one thread per run
    head = dict(NODE, num_cpus=0, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=free_port(),
                ray_client_server_port=free_port())  # for --runner ray://HOST:PORT, the Ray Client address
    c = Cluster(initialize_head=True, head_node_args=head)
    nodes = [c.add_node(**NODE) for _ in range(2)]
    c.wait_for_nodes()
    c.workers = nodes
    yield c
    c.shutdown()


class Studio:
    """`python app.py --runner CLUSTER` in its own process, as a person would start it."""

    def __init__(self, workspace, runner, log):
        self.workspace, self.log, self.port = workspace, log, free_port()
        env = dict(os.environ, OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "--workspace", str(workspace), "--port", str(self.port),
                 "--runner", runner], cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + WAIT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"the studio exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                self.client = Client(f"http://127.0.0.1:{self.port}/", verbose=False)
                break
            except Exception:
                if time.monotonic() > deadline:
                    pytest.fail(f"the studio did not answer:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        self.store = Store(workspace / "store")

    def call(self, endpoint, *args):
        return self.client.predict(*args, api_name=endpoint)

    def wait(self, run_id, condition, what, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.call("/run_status", run_id)
            if condition(status):
                return status
            time.sleep(0.5)
        record = self.store.get_run(run_id)
        raise AssertionError(f"timed out waiting for {what}: {record}\n{self.worker_log(run_id)}")

    def worker_log(self, run_id):
        path = self.workspace / "runs" / run_id / "log.txt"
        return path.read_text()[-2000:] if path.is_file() else "(no log.txt)"

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.store.close()


@pytest.fixture(scope="module")
def studio(cluster, module_tmp):
    workspace = module_tmp / "workspace"
    write_tiny_dataset(workspace, per_class=8)
    runner = f"ray://127.0.0.1:{cluster.head_node._ray_params.ray_client_server_port}"
    s = Studio(workspace, runner, module_tmp / "studio.log")
    yield s
    for record in s.store.list_runs():  # leave no job behind on the cluster
        if record["status"] == "running":
            s.call("/stop_run", record["id"])
    s.close()


@pytest.fixture(autouse=True)
def free_ended_runs(studio):
    """After each test, its ended runs' checkpoints go (as the Runs tab's Free disk does): a
    ResNet-18 run keeps about 180 MB, and the module's sweep alone trains four."""
    yield
    for record in studio.store.list_runs():
        if record["status"] in ENDED:
            free_disk(studio.workspace / "runs" / record["id"])


def tiny(**changes) -> str:
    return tiny_json(**{"image_size": 16, **changes})


def test_a_run_trains_on_the_cluster_with_metrics_and_samples(studio, cluster):
    run_id = studio.call("/start_run", tiny(), "on the cluster")
    done = studio.wait(run_id, lambda s: s["status"] in ENDED, "the run to end")
    assert done["status"] == "completed", (done, studio.worker_log(run_id))
    record = studio.store.get_run(run_id)
    assert record["job"].startswith(f"darkroom-{run_id}-")
    assert record["node"] in {n.node_id for n in cluster.workers}  # the head has no CPU for it
    assert [row["epoch"] for row in studio.store.epoch_metrics(run_id)] == [1, 2]
    assert done["metrics"]["epoch"] == 2 and done["device"] == "cpu"
    samples = studio.store.samples(run_id)
    assert [epoch for epoch, _ in samples] == [1, 2]
    assert all(os.path.isfile(path) for _, path in samples)
    assert len(studio.store.batch_losses(run_id)) == 2 * 3  # 24 pictures, batches of 8, two epochs
    assert studio.store.report_token(run_id) is None  # the finished attempt can write no more


def test_stop_then_resume_on_the_cluster(studio):
    run_id = studio.call("/start_run", tiny(epochs=12), "stop me")
    studio.wait(run_id, lambda s: s["status"] == "running" and s["epoch"] >= 2, "a checkpoint")
    studio.call("/stop_run", run_id)
    stopped = studio.wait(run_id, lambda s: s["status"] in ENDED, "the stop")
    assert stopped["status"] == "stopped", (stopped, studio.worker_log(run_id))
    done_before = len(studio.store.epoch_metrics(run_id))
    assert 1 <= done_before < 12
    first_job = studio.store.get_run(run_id)["job"]

    studio.call("/resume_run", run_id)
    done = studio.wait(run_id, lambda s: s["status"] in ENDED, "the resumed run to end")
    assert done["status"] == "completed", (done, studio.worker_log(run_id))
    assert studio.store.get_run(run_id)["job"] != first_job  # a new job, same run folder and id
    assert [row["epoch"] for row in studio.store.epoch_metrics(run_id)] == list(range(1, 13))
    assert "resum" in studio.worker_log(run_id).lower()


def test_a_lost_node_leaves_the_run_interrupted_and_it_resumes_on_another(studio, cluster):
    # Enough epochs that an idle machine cannot finish them before the node is lost (40 could).
    run_id = studio.call("/start_run", tiny(epochs=1000), "node lost")
    studio.wait(run_id, lambda s: s["status"] == "running" and s["epoch"] >= 2, "a checkpoint")
    node_id = studio.store.get_run(run_id)["node"]
    lost = next(n for n in cluster.workers if n.node_id == node_id)
    cluster.remove_node(lost, allow_graceful=False)  # SIGKILL to the node's raylet and workers
    cluster.workers.remove(lost)

    gone = studio.wait(run_id, lambda s: s["status"] in ENDED, "the run to be marked interrupted")
    assert gone["status"] == "interrupted", gone
    assert "resume" in gone["error"]
    kept = len(studio.store.epoch_metrics(run_id))

    cluster.workers.append(cluster.add_node(**NODE))  # the cluster heals; the run may land there
    studio.call("/resume_run", run_id)
    studio.wait(run_id, lambda s: s["status"] == "running" and s["epoch"] > kept, "the resumed run to train on")
    assert studio.store.get_run(run_id)["node"] != node_id
    studio.call("/stop_run", run_id)
    studio.wait(run_id, lambda s: s["status"] in ENDED, "the stop")


def test_a_four_trial_sweep_under_ray_tune_ends_with_its_best_trial_marked(studio):
    space = json.dumps({"lr": [3e-4, 3e-3], "batch_size": [4, 8]})
    sweep_id = studio.call("/start_sweep", tiny(epochs=3), space, 4, "grid", 0, True, "tuned")
    deadline = time.monotonic() + 2 * WAIT_S
    while not (status := studio.call("/sweep_status", sweep_id))["ended"]:
        assert time.monotonic() < deadline, status
        time.sleep(1)
    trials = status["trials"]
    assert [t["params"] for t in trials] == [{"lr": 3e-4, "batch_size": 4}, {"lr": 3e-4, "batch_size": 8},
                                             {"lr": 3e-3, "batch_size": 4}, {"lr": 3e-3, "batch_size": 8}]
    records = [studio.store.get_run(t["id"]) for t in trials]
    assert len({r["job"] for r in records}) == 1  # one Ray Tune job trained them all
    for trial in trials:
        assert trial["status"] in ("completed", "stopped"), (trial, studio.worker_log(trial["id"]))
        if trial["status"] == "stopped":
            assert "ASHA" in trial["error"]  # stopped early at a rung, not lost
    assert any(t["status"] == "completed" for t in trials)
    marked = [t for t in trials if t["best"]]
    assert len(marked) == 1 and marked[0]["id"] == status["best"]
    # accuracy: higher is better
    assert marked[0]["best_metric"] == max(t["best_metric"] for t in trials if t["best_metric"] is not None)


def test_a_two_process_ddp_run_is_placed_on_two_nodes_and_writes_one_metrics_file(studio):
    run_id = studio.call("/start_run", tiny(epochs=2, batch_size=4), "ddp", 2)
    done = studio.wait(run_id, lambda s: s["status"] in ENDED, "the DDP run to end")
    assert done["status"] == "completed", (done, studio.worker_log(run_id))
    rows = [json.loads(line) for line in (studio.workspace / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]  # rank 1 trained but wrote nothing
    ranks = [line for line in studio.store.log_tail(run_id, 200) if line.startswith("rank ")]
    assert len(ranks) == 2, ranks
    assert len({line.rsplit(" ", 1)[1] for line in ranks}) == 2  # on two different nodes
    # 24 pictures shared by two ranks in batches of 4: 3 steps per epoch on rank 0, which reports
    assert len(studio.store.batch_losses(run_id)) == 2 * 3
