"""How the studio feels while it trains, on the same cores as the training run.

Starts a real studio (`app.py`) on a fresh workspace with the bundled samples, then through the
API: starts a run on the digits sample and measures the time from Start to the first loss point
in the store; times `run_status` calls while the run trains; and reads the UI process's resident
memory before and after many status polls (a proxy for an hour of timer updates at 1 s).

    python bench/ui_responsiveness.py [--polls 3600]
"""
import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    from gradio_client import Client
    from studio.store import Store

    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=3600)
    args = ap.parse_args()
    workspace = Path(tempfile.mkdtemp(prefix="darkroom-bench-"))
    port = free_port()
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--workspace", str(workspace), "--port", str(port)],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        store = Store(workspace / "store")
        config = {"task": "classify", "data": "digits", "arch": "resnet18", "epochs": 2, "image_size": 64}
        start = time.perf_counter()
        run_id = client.predict(json.dumps(config), "", api_name="/start_run")
        while not store.batch_losses(run_id):
            time.sleep(0.05)
        first_point = time.perf_counter() - start

        latencies = []
        while store.get_run(run_id)["status"] in ("queued", "running") and len(latencies) < 200:
            t = time.perf_counter()
            client.predict(run_id, api_name="/run_status")
            latencies.append(time.perf_counter() - t)
            time.sleep(0.2)
        client.predict(run_id, api_name="/stop_run")

        before = rss_mb(app.pid)
        for _ in range(args.polls):
            client.predict(run_id, api_name="/run_status")
        after = rss_mb(app.pid)
        for _ in range(args.polls):
            client.predict(run_id, api_name="/run_status")
        after2 = rss_mb(app.pid)
        latencies.sort()
        print(f"Start -> first loss point in the store: {first_point:.1f} s (includes the worker's torch import)")
        print(f"run_status while training ({len(latencies)} calls): median {statistics.median(latencies) * 1000:.0f} ms, "
              f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms")
        print(f"UI process memory: {before:.0f} MB before, {after:.0f} MB after {args.polls} polls, "
              f"{after2:.0f} MB after {2 * args.polls}")
    finally:
        app.terminate()
        app.wait(timeout=20)


if __name__ == "__main__":
    main()
