"""A newcomer's first model: a fresh workspace, the bundled digits, the Train tab's defaults.

Starts the studio (`python app.py`) on a new workspace, asks its API for the config the Train
tab fills in for a dataset (`/train_defaults`: task, sizes from the pictures, time budget,
pretrained "auto"), starts it with each seed (`/start_run`) and waits until it ends
(`/run_status`). Prints, per seed, the seconds from Start to completed, the final validation
accuracy (or the task's metric), the epochs the budget chose, and the run's own estimate and
time; then min / median / max. Goal (issue 14) on 2 CPU cores without weights: every seed at
least 97%, median at most 60 s.

    python bench/first_model.py [--dataset digits] [--seeds 42 1 2 3 4] [--set KEY=JSON ...]
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    ap.add_argument("--workspace", default=None, help="default: a new temporary folder (a fresh workspace)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="change a setting of the tab's defaults (for exploring; the benchmark uses none)")
    args = ap.parse_args()
    from gradio_client import Client

    workspace = args.workspace or tempfile.mkdtemp(prefix="first-model-")
    port = free_port()
    env = dict(os.environ, DARKROOM_OFFLINE=os.environ.get("DARKROOM_OFFLINE", "1"))
    app = subprocess.Popen([sys.executable, "app.py", "--workspace", workspace, "--port", str(port)], cwd=ROOT,
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = None
        for _ in range(240):
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                time.sleep(1)
        if client is None:
            raise SystemExit("the studio did not start")
        defaults = client.predict(args.dataset, api_name="/train_defaults")
        changes = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
        print(f"Train tab defaults for {args.dataset}: {json.dumps(defaults)}" + (f"; changed {changes}" if changes else ""))
        rows = []
        for seed in args.seeds:
            config = dict(defaults, seed=seed, **changes)
            start = time.perf_counter()
            run_id = client.predict(json.dumps(config), f"first model seed {seed}", api_name="/start_run")
            while (status := client.predict(run_id, api_name="/run_status"))["status"] in ("queued", "running"):
                time.sleep(0.5)
            seconds = time.perf_counter() - start
            monitor = status.get("monitor") or "accuracy"
            metric = (status.get("metrics") or {}).get(monitor)
            result = status.get("result") or {}
            rows.append((seconds, metric))
            print(f"seed {seed}: {status['status']} in {seconds:.1f} s from Start; {monitor} {metric}; "
                  f"{status.get('epochs')} epochs; the run's estimate {result.get('estimate_s')} s, its own time "
                  f"{result.get('seconds')} s; weights: {result.get('weights')}; load {load()}", flush=True)
        times = sorted(r[0] for r in rows)
        metrics = sorted(r[1] for r in rows if isinstance(r[1], (int, float)))
        print(f"\n{args.dataset}, {len(rows)} seeds: seconds min {times[0]:.1f} median {statistics.median(times):.1f} "
              f"max {times[-1]:.1f}; {monitor} min {metrics[0]:.4f} median {statistics.median(metrics):.4f} "
              f"max {metrics[-1]:.4f}; {os.cpu_count()} CPUs, load {load()}")
    finally:
        app.terminate()
        app.wait(30)
        if not args.workspace:  # a temporary workspace holds each seed's run (about 270 MB each)
            shutil.rmtree(workspace, ignore_errors=True)


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    main()
