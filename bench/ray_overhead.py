"""What a Ray cluster costs and what early stopping saves, measured on a real local cluster.

Starts a Ray cluster on 127.0.0.1 (a head without CPUs and two one-CPU nodes), then:
1. the same tiny classify run, alternately as a local process and as a Ray job (--rounds each):
   seconds from submit to the first loss point, and seconds per epoch after the first;
2. a 4-trial sweep (2 learning rates x 2 batch sizes) on the cluster, as four ordinary jobs
   and as one Ray Tune job with ASHA: trials completed, epochs trained, total seconds.

    flock /tmp/bench.lock python bench/ray_overhead.py [--rounds 2] [--epochs 4] [--sweep-epochs 4]
"""
import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # loopback only (see tests/test_ray_cluster.py)
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # Ray would report usage over the internet
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DARKROOM_OFFLINE", "1")

from conftest import tiny_config, write_colour_classes  # noqa: E402
from studio import sweeps  # noqa: E402
from studio.jobs import Jobs  # noqa: E402
from studio.ray_runner import RayRunner  # noqa: E402
from studio.store import Store  # noqa: E402
from studio.workspace import Workspace  # noqa: E402

ENDED = ("completed", "failed", "stopped", "interrupted")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_run(jobs, store, config):
    """(seconds to the first loss point, seconds per epoch after the first) of one run."""
    t0 = time.monotonic()
    run_id = jobs.submit(config)
    first_loss, epoch_times = None, {}
    while True:
        jobs.poll()
        now = time.monotonic()
        if first_loss is None and store.batch_losses(run_id):
            first_loss = now - t0
        for row in store.epoch_metrics(run_id):
            epoch_times.setdefault(row["epoch"], now)
        record = store.get_run(run_id)
        if record["status"] in ENDED:
            break
        time.sleep(0.1)
    assert record["status"] == "completed", record
    epochs = sorted(epoch_times)
    per_epoch = (epoch_times[epochs[-1]] - epoch_times[epochs[0]]) / (len(epochs) - 1)
    return first_loss, per_epoch


def timed_sweep(jobs, store, config, early_stop):
    t0 = time.monotonic()
    sweep_id = jobs.submit_sweep(config, {"lr": [3e-4, 3e-3], "batch_size": [4, 8]}, 4, "grid",
                                 early_stop=early_stop)
    while not (summary := sweeps.summary(store.list_runs(), sweep_id))["ended"]:
        jobs.poll()
        time.sleep(0.2)
    total = time.monotonic() - t0
    trials = summary["trials"]
    return {"completed": sum(t["status"] == "completed" for t in trials),
            "stopped early": sum(t["status"] == "stopped" for t in trials),
            "epochs trained": sum(len(store.epoch_metrics(t["id"])) for t in trials),
            "seconds": total, "best": summary["best"]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sweep-epochs", type=int, default=4)
    args = parser.parse_args()

    from ray.cluster_utils import Cluster

    node = dict(num_cpus=1, object_store_memory=80 * 2**20, node_ip_address="127.0.0.1")
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        node, num_cpus=0, include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=free_port()))
    for _ in range(2):
        cluster.add_node(**node)
    cluster.wait_for_nodes()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ws = Workspace.open(Path(tmp) / "workspace")
            write_colour_classes(ws.dataset_dir("colours"), per_class=32, size=32)
            store = Store(ws.store_dir)
            local = Jobs(ws, store)
            runner = RayRunner("http://" + cluster.webui_url).start(ws, store)
            on_ray = Jobs(ws, store, runner=runner)
            config = tiny_config("colours", epochs=args.epochs, image_size=32)
            results = {"local": [], "ray": []}
            for _ in range(args.rounds):  # alternate, so that load on the machine hits both alike
                results["local"].append(timed_run(local, store, config))
                results["ray"].append(timed_run(on_ray, store, config))
            print(f"one run: classify, resnet18, 96 pictures of 32 px, batch 8, {args.epochs} epochs, "
                  f"{args.rounds} rounds alternating; medians")
            med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in results.items()}
            for k, (first, epoch) in med.items():
                print(f"  {k:5s}: first loss point {first:6.1f} s, {epoch:5.2f} s per epoch")
            print(f"  ray / local: first loss point x{med['ray'][0] / med['local'][0]:.2f}, "
                  f"per epoch x{med['ray'][1] / med['local'][1]:.2f}")

            sweep_config = tiny_config("colours", epochs=args.sweep_epochs, image_size=32)
            print(f"sweep: 4 trials (lr 3e-4, 3e-3 x batch 4, 8), {args.sweep_epochs} epochs each, 2 one-CPU nodes")
            plain = timed_sweep(on_ray, store, sweep_config, early_stop=False)
            tuned = timed_sweep(on_ray, store, sweep_config, early_stop=True)
            for name, r in (("4 jobs, no early stopping", plain), ("Ray Tune + ASHA", tuned)):
                print(f"  {name:26s}: {r['completed']} completed, {r['stopped early']} stopped early, "
                      f"{r['epochs trained']} epochs trained, {r['seconds']:6.1f} s")
            print(f"  ASHA / plain: time x{tuned['seconds'] / plain['seconds']:.2f}, "
                  f"epochs x{tuned['epochs trained'] / plain['epochs trained']:.2f}")
            runner.close()
            store.close()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
