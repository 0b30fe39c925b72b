"""Quality check: `segment` with its defaults on the bundled shapes (assets/shapes).

Copies the dataset to a temporary folder (a run never writes into the bundled assets), trains
with the defaults (the segment task's, then RunConfig's; plus any --set overrides) through the
same entry as `python -m trainers`, and prints the held-out (seeded valid_pct split) Dice, IoU
and pixel accuracy with the time.

    python bench/segment_quality.py [--seed 42] [--set KEY=JSON ...]
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

SHAPES = Path(__file__).resolve().parents[1] / "assets" / "shapes"


def main():
    from trainers import RunConfig, fit
    from trainers.reporting import ConsoleReporter

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a default, e.g. --set image_size=64 (for exploring; the benchmark uses none)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(tempfile.mkdtemp(prefix="shapes-")) / "shapes"
    shutil.copytree(SHAPES, data)
    run = Path(tempfile.mkdtemp(prefix="shapes-run-"))
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = RunConfig.from_dict({"task": "segment", "data": str(data), "seed": args.seed, **overrides})
    start = time.perf_counter()
    result = fit(config, run, ConsoleReporter())
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    changed = ", ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items()) or "defaults"
    print(f"\nshapes segment resnet18 from scratch ({changed}), seed {args.seed}, {len(rows)} epochs: "
          f"held-out dice {last['dice']:.4f}, iou {last['iou']:.4f}, pixel accuracy {last['pixel_accuracy']:.4f} "
          f"(best dice {result['best_metric']:.4f}); {seconds:.0f} s on {result['device']} ({args.threads} threads); "
          f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
