"""Defaults on pictures nobody tuned them for: two datasets made from the photographs that
scikit-learn ships (`sklearn.datasets.load_sample_images`: china.jpg and flower.jpg, 427x640).

- `upright` (classify, 4 classes): 48 px crops turned by 0, 90, 180 or 270 degrees; which way
  is up? Training crops come from the left three quarters of each photo, validation crops from
  the right quarter, so no validation pixel was seen in training.
- `patches` (segment, 2 classes): 64 px grayscale crops of one photo with a random blob pasted
  from the other; the mask is the blob. Same left/right split; 100 training and 20 validation
  pictures (the shape of issue 14's held-out segmentation set).

Each dataset is written into a new workspace, the Train tab's defaults are taken for it
(`studio.ui.train_tab.form_defaults`: sizes from the pictures, the task's time budget, pretrained
"auto"), and each seed trains with them through `trainers.fit`. Prints the metric and the
seconds per seed, then min / median / max.

    python bench/package_photos.py [--which upright patches shapes] [--seeds 42 1 2 3 4]
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def photos():
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(a) for a in load_sample_images().images]


def _crop(rng, photo, side, valid):
    """A crop from the left three quarters (training) or the right quarter (validation)."""
    w, h = photo.size
    split = int(w * 0.75)
    x = int(rng.integers(split, w - side)) if valid else int(rng.integers(0, split - side))
    y = int(rng.integers(0, h - side))
    return photo.crop((x, y, x + side, y + side))


def write_upright(root: Path, per_class=(150, 40), side=48, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    pics = photos()
    names = {0: "up", 90: "left", 180: "down", 270: "right"}
    for split, n in zip(("train", "valid"), per_class):
        for angle, name in names.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                crop = _crop(rng, pics[i % len(pics)], side, split == "valid")
                crop.rotate(angle).save(folder / f"{i:04d}.png")
    (root / "dataset.json").write_text(json.dumps({"kind": "classify", "classes": list(names.values()), "flip": False,
                                                   "source": "sklearn load_sample_images, rotated crops"}))
    return root


def write_scenes(root: Path, photos_dir: Path, classes=10, per_class=(600, 100), side=32, long_side=384,
                 seed=0) -> Path:
    """`scenes` (classify, `classes` classes): which photo is a `side` px crop from? The photos of a
    folder (sorted by name, the first `classes`), each shrunk to `long_side` px; training crops from
    the left three quarters, held-out crops from the right quarter. With Debian's mate-backgrounds
    nature photos (bench/restore_quality.py says how to get them) and the defaults: 6,000
    training and 1,000 held-out pictures of 32 px, the shape of issue 14's 10-class set."""
    rng = np.random.default_rng(seed)
    paths = sorted(p for p in Path(photos_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:classes]
    if len(paths) < classes:
        raise SystemExit(f"{photos_dir} holds {len(paths)} photos; scenes needs {classes}")
    names = []
    for path in paths:
        photo = Image.open(path).convert("RGB")
        photo.thumbnail((long_side, long_side), Image.LANCZOS)
        names.append(path.stem)
        for split, n in zip(("train", "valid"), per_class):
            folder = root / split / path.stem
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _crop(rng, photo, side, split == "valid").save(folder / f"{i:04d}.png")
    (root / "dataset.json").write_text(json.dumps({"kind": "classify", "classes": names,
                                                   "source": f"crops of {len(paths)} photos in {Path(photos_dir).name}"}))
    return root


def _blob(rng, side):
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = rng.integers(side // 4, 3 * side // 4, 2)
    points = []
    for k in range(9):
        angle = 2 * np.pi * k / 9
        r = rng.uniform(side * 0.15, side * 0.35)
        points.append((cx + r * np.cos(angle), cy + r * np.sin(angle)))
    draw.polygon(points, fill=255)
    return mask.filter(ImageFilter.GaussianBlur(1)).point(lambda v: 255 if v > 127 else 0)


def write_patches(root: Path, counts=(100, 20), side=64, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    pics = [p.convert("L") for p in photos()]
    index = 0
    for split, n in zip(("train", "valid"), counts):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        for _ in range(n):
            a = int(rng.integers(0, 2))
            base = _crop(rng, pics[a], side, split == "valid")
            other = _crop(rng, pics[1 - a], side, split == "valid")
            mask = _blob(rng, side)
            image = Image.composite(other, base, mask)
            name = f"{index:04d}.png"
            image.convert("RGB").save(root / split / "images" / name)
            Image.fromarray((np.asarray(mask) > 127).astype(np.uint8), "L").save(root / split / "labels" / name)
            index += 1
    (root / "codes.txt").write_text("background\nblob\n")
    (root / "dataset.json").write_text(json.dumps({
        "kind": "segment", "codes": ["background", "blob"], "void": None,
        "source": "sklearn load_sample_images, pasted blobs"}))
    return root


def run(which, seeds, overrides):
    from studio.ui.train_tab import form_defaults
    from studio.workspace import Workspace
    from trainers import fit

    ws = Workspace.open(Path(tempfile.mkdtemp(prefix=f"{which}-ws-")))
    target = ws.datasets_dir / which
    if which == "upright":
        write_upright(target)
    elif which == "patches":
        write_patches(target)
    else:
        shutil.copytree(ASSETS / which, target)
    defaults = dict(form_defaults(ws, which), data=str(target), **overrides)
    print(f"{which}: Train tab defaults {json.dumps({k: v for k, v in defaults.items() if k != 'data'})}", flush=True)
    rows = []
    for seed in seeds:
        out = Path(tempfile.mkdtemp(prefix=f"{which}-run-"))
        start = time.perf_counter()
        result = fit(dict(defaults, seed=seed), out)
        seconds = time.perf_counter() - start
        metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        monitor = result["monitor"]
        worst = max(r["valid_loss"] / max(r["train_loss"], 1e-6) for r in metrics)
        rows.append((seconds, metrics[-1][monitor]))
        print(f"  seed {seed}: {monitor} {metrics[-1][monitor]:.4f} after {len(metrics)} epochs, {seconds:.0f} s "
              f"(estimate {result['estimate_s']:.0f} s); worst valid/train loss {worst:.2f}; load {load()}", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    times, values = sorted(r[0] for r in rows), sorted(r[1] for r in rows)
    print(f"{which}, {len(rows)} seeds: {monitor} min {values[0]:.4f} median {statistics.median(values):.4f} "
          f"max {values[-1]:.4f}; seconds min {times[0]:.0f} median {statistics.median(times):.0f} max {times[-1]:.0f}",
          flush=True)


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--which", nargs="+", default=["upright", "patches", "shapes"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
    args = ap.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    # No download attempt (this machine has no internet; "auto" finds no weights and says so).
    os.environ.setdefault("DARKROOM_OFFLINE", "1")
    from trainers.device import use_cpu_threads

    print(f"{use_cpu_threads()} torch threads, as a run's worker uses (trainers/device.py)")
    for which in args.which:
        run(which, args.seeds, overrides)


if __name__ == "__main__":
    main()
