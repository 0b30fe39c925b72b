"""Timing: Gatys style transfer, 100 pixel-optimisation steps at 256 px, with the style task's
defaults, on the bundled photos (content: astronaut, style: hubble_deep_field).

Pretrained VGG16-BN weights cannot be downloaded on an offline machine. Without a real file in
$TORCH_HOME this script writes seeded random VGG16-BN weights into a temporary TORCH_HOME: the
time of a step does not depend on the weights' values, but the picture it makes does (it is
meaningless with random weights). With the real file present it uses it.

    python bench/gatys_speed.py [--steps 100] [--size 256] [--threads 2] [--fp32 | --both]

With mixed_precision true (the default) the style task runs the VGG in bf16 on a CUDA GPU that
has it, and in float32 on a CPU (trainers/tasks/style.py gatys_autocast_dtype: bf16 measured
slower on this machine's AVX512-BF16 CPU); --fp32 forces float32, --both times the default and
float32 one after the other and prints their ratio.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torchvision  # noqa: E402

PHOTOS = ROOT / "assets" / "photos"


def ensure_vgg_weights() -> tuple:
    """(what the weights are, the temporary TORCH_HOME to remove afterwards or None)."""
    from trainers.models import weights_file

    if weights_file("vgg16_bn").is_file():
        return "real VGG16-BN weights", None
    home = os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="torch-home-")
    torch.manual_seed(123)
    path = weights_file("vgg16_bn")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.vgg16_bn(weights=None).state_dict(), path)
    return "RANDOM VGG16-BN weights (no real file here: the timing holds, the picture does not)", home


def timed_run(args, fp32: bool) -> dict:
    """One Gatys run with the style task's defaults (VGG in float32 everywhere when fp32)."""
    from trainers import RunConfig, fit

    run = Path(tempfile.mkdtemp(prefix="gatys-run-"))
    config = RunConfig.from_dict({
        "task": "style", "data": str(PHOTOS), "image_size": args.size, "epochs": 5, "pretrained": False,
        "mixed_precision": not fp32,
        "extra": {"mode": "gatys", "steps": args.steps, "content_image": str(PHOTOS / "astronaut.jpg"),
                  "style_image": str(PHOTOS / "hubble_deep_field.jpg")}})
    start = time.perf_counter()
    result = fit(config, run)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    precision = next((line.rsplit("VGG in ", 1)[-1] for line in (run / "log.txt").read_text().splitlines()
                      if "VGG in " in line), "?")
    shutil.rmtree(run, ignore_errors=True)
    return {"seconds": seconds, "rows": rows, "result": result, "precision": precision}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp32", action="store_true", help="mixed_precision false: the VGG in float32 everywhere")
    ap.add_argument("--both", action="store_true", help="the default run, then the float32 one: prints their ratio")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    weights, fake_home = ensure_vgg_weights()
    try:
        runs = [timed_run(args, False), timed_run(args, True)] if args.both else [timed_run(args, args.fp32)]
    finally:
        if fake_home:  # the fake weights file is half a gigabyte
            shutil.rmtree(fake_home, ignore_errors=True)
    for r in runs:
        rows = r["rows"]
        print(f"gatys {args.steps} steps at {args.size} px on {r['result']['device']} ({args.threads} threads), "
              f"VGG in {r['precision']}, {weights}")
        print(f"  loss after frame 1 {rows[0].get('train_loss', float('nan')):.4g}, after the last "
              f"{rows[-1].get('train_loss', float('nan')):.4g}; {len(rows)} frames")
        print(f"  {r['seconds']:.1f} s in all (model set-up included); status {r['result']['status']}")
        print("  seconds per frame: " + ", ".join(f"{row['seconds']:.1f}" for row in rows))
    if args.both:
        print(f"default / float32 time: {runs[0]['seconds'] / runs[1]['seconds']:.2f}")
    print(f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
