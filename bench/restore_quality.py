"""Quality check: restoration and 2x super-resolution of held-out real photos in a time budget.

Takes a folder of photos (default: the bundled ones; the figures in docs/BENCHMARKS.md use
photos the project does not ship and never tuned on), shrinks each to --side px on its long side,
holds out --held-out of them (a fixed draw, not the run's seed) and damages every photo once
with the chosen recipe, writing train/ and valid/ pairs and the recipe (crappify.json), as the
studio's crappify builder does. The run re-applies the recipe to the training photos on the fly
and validates on the whole held-out photos, tiled as the Try tab shows them.

    python bench/restore_quality.py --photos DIR [--mode jpeg30|crappify|sr2] [--minutes 10] [--seed 42]
                                    [--set KEY=JSON ...]

Modes: jpeg30: 2x bilinear downscale, JPEG quality 30, bilinear upscale back (issue 19's damage);
crappify: the builder's defaults (4x downscale, JPEG 10-70, a number drawn on it); sr2: a 2x
bilinear downscale kept small, scored against bicubic.

The budget: the task's settings (its defaults, plus --set) with budget_s = --minutes: the run
rehearses a few batches on this machine and trains the epochs that fit (trainers/budget.py).
Prints the held-out gain over the damaged input (bicubic for sr2) at every epoch, the best and
the last, the steps and the load average.
"""
import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from trainers.degrade import CrappifyParams, crappify_image  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"
MODES = {"jpeg30": CrappifyParams(scale=2, resample="bilinear", jpeg_min=30, jpeg_max=30, text=False),
         "crappify": CrappifyParams(),
         "sr2": CrappifyParams(scale=2, super_res=True, jpeg=False, text=False)}


def build_pairs(root: Path, photos: Path, params: CrappifyParams, side: int, held_out: int) -> list:
    files = sorted(p for p in photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    valid = set(random.Random(0).sample([p.stem for p in files], held_out))
    for split in ("train", "valid"):
        for half in ("clean", "crappy"):
            (root / split / half).mkdir(parents=True)
    for i, photo in enumerate(files):
        split = "valid" if photo.stem in valid else "train"
        with Image.open(photo) as im:
            clean = im.convert("RGB")
        clean.thumbnail((side, side), Image.LANCZOS)
        n = params.scale if params.super_res else 1
        clean = clean.crop((0, 0, clean.width - clean.width % n, clean.height - clean.height % n))
        clean.save(root / split / "clean" / f"{photo.stem}.png")
        crappify_image(clean, params, 1000 + i).save(root / split / "crappy" / f"{photo.stem}.png")
    scale = params.scale if params.super_res else 1
    (root / "dataset.json").write_text(json.dumps({"kind": "restore", "scale": scale}))
    (root / "crappify.json").write_text(json.dumps({"params": asdict(params), "seed": 0}))
    return sorted(valid)


def main():
    from trainers import RunConfig, fit

    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--mode", choices=sorted(MODES), default="jpeg30")
    ap.add_argument("--side", type=int, default=384, help="long side of every photo")
    ap.add_argument("--held-out", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="copy the run and its dataset here (for gan_quality)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a default, e.g. --set extra='{\"loss\": \"pixel\"}'")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(tempfile.mkdtemp(prefix=f"{args.mode}-pairs-"))
    held_out = build_pairs(data, args.photos, MODES[args.mode], args.side, args.held_out)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    # From scratch, as a person without downloaded weights trains ("auto" would pick the U-Net
    # wherever ImageNet weights are cached).
    config = RunConfig.from_dict({"task": "restore", "data": str(data), "seed": args.seed, "pretrained": False,
                                  **overrides}).validate()
    config = config.with_pretrained(config.pretrained_here())
    from trainers.tasks.restore import CROPS_PER_EPOCH
    steps_per_epoch = config.extra.get("crops_per_epoch", CROPS_PER_EPOCH) // config.batch_size
    if "epochs" not in overrides:  # the run's own time budget: the epochs it measures fit
        config = RunConfig.from_dict({**config.to_dict(), "budget_s": args.minutes * 60})
    run = Path(tempfile.mkdtemp(prefix=f"{args.mode}-run-"))
    start = time.perf_counter()
    result = fit(config, run)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    log = (run / "log.txt").read_text().splitlines()
    loss = next((line.split("loss: ", 1)[1] for line in log if "loss: " in line), "?")
    gains = [r["psnr"] - r["input_psnr"] for r in rows]
    best = max(range(len(rows)), key=gains.__getitem__)
    baseline = "damaged input" if MODES[args.mode].super_res is False else "bicubic"
    changed = ", ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items()) or "defaults"
    print(f"{args.mode} on {args.photos.name} ({args.side} px; held out {', '.join(held_out)}), {changed}, seed {args.seed}")
    print(f"  loss: {loss}")
    print("  held-out gain by epoch (dB): " + " ".join(f"{g:+.2f}" for g in gains))
    print(f"  whole held-out photos, tiled: {baseline} {rows[-1]['input_psnr']:.2f} dB; best epoch {best + 1}: "
          f"{rows[best]['psnr']:.2f} dB (gain {gains[best]:+.2f}); last epoch {len(rows)}: {rows[-1]['psnr']:.2f} dB "
          f"(gain {gains[-1]:+.2f}); SSIM {rows[-1]['ssim']:.3f} vs {rows[-1]['input_ssim']:.3f}")
    budget = f"budget_s {config.budget_s:.0f}" if config.budget_s else "epochs given"
    print(f"  {len(rows)} epochs x {steps_per_epoch} steps of {config.batch_size} x {config.image_size} px "
          f"({budget}), {seconds:.0f} s on {result['device']} ({args.threads} threads); "
          f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
    if args.keep:
        import shutil
        shutil.copytree(data, args.keep / "data", dirs_exist_ok=True)
        shutil.copytree(run, args.keep / "run", dirs_exist_ok=True)


if __name__ == "__main__":
    main()
