"""Quality check: resnet18 from scratch on sklearn's handwritten digits, default settings.

Writes the 1,797 8x8 digits as 32x32 PNGs (bilinear) into an ImageFolder with a seeded
80/20 split, trains 3 epochs with RunConfig's defaults and prints validation accuracy.

    python bench/digits_quality.py [--seed 42] [--epochs 3] [--out /tmp/digits-run]
"""
import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def write_digits(root: Path, seed: int = 0) -> Path:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = list(range(len(digits.images)))
    random.Random(seed).shuffle(order)
    n_valid = round(len(order) * 0.2)
    for rank, i in enumerate(order):
        split = "valid" if rank < n_valid else "train"
        folder = root / split / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] / 16.0 * 255).astype(np.uint8)
        Image.fromarray(pixels, "L").resize((32, 32), Image.BILINEAR).convert("RGB").save(folder / f"{i:04d}.png")
    # Digits must not be mirrored: a flipped 2 is not a 2.
    (root / "dataset.json").write_text(json.dumps({"kind": "classify", "flip": False,
                                                   "source": "sklearn.datasets.load_digits"}))
    return root


def main():
    from trainers import RunConfig, fit
    from trainers.reporting import ConsoleReporter

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a default, e.g. --set lr=0.006 (for exploring; the benchmark uses none)")
    args = ap.parse_args()
    data = write_digits(Path(tempfile.mkdtemp(prefix="digits-")))
    out = args.out or tempfile.mkdtemp(prefix="digits-run-")
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = RunConfig.from_dict({"task": "classify", "data": str(data), "arch": "resnet18",
                                  "epochs": args.epochs, "seed": args.seed, **overrides})
    start = time.perf_counter()
    result = fit(config, out, ConsoleReporter())
    rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    print(f"digits resnet18 scratch, {args.epochs} epochs, seed {args.seed}: "
          f"valid accuracy {rows[-1]['accuracy']:.4f} (best {result['best_metric']:.4f}), "
          f"{time.perf_counter() - start:.0f} s on {result['device']}")


if __name__ == "__main__":
    main()
