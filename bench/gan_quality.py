"""Quality check: a `gan` run keeps its generator's PSNR while its critic learns.

Builds (crappy, clean) pairs from the bundled photos with the studio's crappify builder
(studio/datasets/crappify.py, default parameters) into a temporary dataset, trains a short
`restore` run (reduced: --restore-epochs, --size), then a `gan` run starting from it with the
gan task's defaults (switcher, weights, critic pretraining, and its lr: a gan config without one
gets the task's 1e-4; only epochs, image size and batch size set here; --gan-lr sets another).
Prints the generator's validation PSNR before GAN training (info start_psnr) and after each
epoch, the margin, the critic's accuracy on real/fake per epoch (50% = guessing) and how many
steps each side took (the threshold switcher gives the critic up to 20 in a row).

    python bench/gan_quality.py [--restore-epochs 3] [--gan-epochs 4] [--size 96] [--variants 6]
                                [--batch-size 4] [--gan-lr NUMBER] [--gan-extra JSON]
                                [--generator-run RUN --data DATA] [--grids DIR]

--generator-run and --data start from a restore run already trained (for example one that
bench/restore_quality.py --keep kept, with its dataset) instead of training a short one here.
--grids copies the gan run's per-epoch sample grids there.

No pretrained weights can be downloaded here: the content loss falls back to pixel L1 and the
U-Net encoder starts from scratch (the runs say so in their logs).
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from studio.datasets.crappify import CrappifyParams, crappify_image, image_seed, prepare_clean  # noqa: E402
from studio.datasets.safe_io import open_image, save_png  # noqa: E402

PHOTOS = ROOT / "assets" / "photos"


def build_pairs(root: Path, variants: int) -> int:
    """Every photo crappified `variants` times (seeded by name); the runs split at random."""
    params = CrappifyParams()
    (root / "clean").mkdir(parents=True)
    (root / "crappy").mkdir()
    count = 0
    for photo in sorted(PHOTOS.glob("*.jpg")):
        clean = prepare_clean(open_image(photo), params)
        for k in range(variants):
            stem = f"{photo.stem}-{k}"
            save_png(clean, root / "clean" / f"{stem}.png")
            save_png(crappify_image(clean, params, image_seed(0, stem)), root / "crappy" / f"{stem}.png")
            count += 1
    (root / "dataset.json").write_text(json.dumps({"kind": "restore", "scale": 1}))
    return count


def rows(run: Path) -> list:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--restore-epochs", type=int, default=3)
    ap.add_argument("--gan-epochs", type=int, default=4)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--variants", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gan-lr", type=float, default=None, help="the gan run's lr (default: the task's own)")
    ap.add_argument("--gan-extra", default="{}", help="JSON merged into the gan run's extra (defaults otherwise)")
    ap.add_argument("--generator-run", type=Path, default=None, help="a finished restore run to start from")
    ap.add_argument("--data", type=Path, default=None, help="its dataset (with --generator-run)")
    ap.add_argument("--grids", type=Path, default=None, help="copy the gan run's sample grids here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from trainers import RunConfig, fit

    tmp = Path(tempfile.mkdtemp(prefix="gan-quality-"))
    data, restore_run, gan_run = tmp / "pairs", tmp / "restore", tmp / "gan"
    if args.generator_run:
        data, restore_run, pairs, restore_s = args.data, args.generator_run, "the restore run's", 0.0
    else:
        pairs = build_pairs(data, args.variants)
    common = {"data": str(data), "image_size": args.size, "batch_size": args.batch_size, "pretrained": False}

    start = time.perf_counter()
    if not args.generator_run:
        fit(RunConfig.from_dict({**common, "task": "restore", "epochs": args.restore_epochs}), restore_run)
    restore_s = time.perf_counter() - start
    start = time.perf_counter()
    gan = {**common, "task": "gan", "epochs": args.gan_epochs, "extra": {**json.loads(args.gan_extra),
                                                                        "generator_run": str(restore_run)}}
    if args.gan_lr is not None:
        gan["lr"] = args.gan_lr
    result = fit(RunConfig.from_dict(gan), gan_run)
    gan_s = time.perf_counter() - start

    checkpoint = torch.load(gan_run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    info = checkpoint.get("info", {})
    start_psnr = info.get("start_psnr", float("nan"))
    epochs = [r for r in rows(gan_run) if "critic_accuracy" in r]
    print(f"{pairs} crappified pairs at {args.size} px; restore {args.restore_epochs} epochs ({restore_s:.0f} s), "
          f"gan {args.gan_epochs} epochs ({gan_s:.0f} s), status {result['status']}")
    print(f"gan lr {checkpoint.get('lr'):g}; generator PSNR before GAN training (start_psnr): {start_psnr:.2f} dB")
    for line in (gan_run / "log.txt").read_text().splitlines():
        if "critic pretraining" in line or "switcher:" in line or "high for a GAN" in line:
            print("  log:", line.split(" ", 2)[-1])
    for r in epochs:
        print(f"  epoch {r.get('epoch')}: psnr {r.get('psnr', float('nan')):.2f} dB "
              f"(input {r.get('input_psnr', float('nan')):.2f}), critic accuracy {100 * r['critic_accuracy']:.1f}%, "
              f"gen loss {r.get('train_loss', float('nan')):.3f}, critic loss {r.get('critic_loss', float('nan')):.3f}, "
              f"steps: {r.get('generator_steps')} generator, {r.get('critic_steps')} critic")
    if epochs:
        last = epochs[-1].get("psnr", float("nan"))
        print(f"PSNR after: {last:.2f} dB; margin (after - before) {last - start_psnr:+.2f} dB")
    print(f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
    if args.grids:
        shutil.copytree(gan_run / "samples", args.grids, dirs_exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
