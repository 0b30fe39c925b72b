"""Quality check: restoration of crappified photos and 2x super-resolution, held-out photos.

Builds (crappy, clean) pairs from the bundled photos with the studio's crappify builder
(studio/datasets/crappify.py) into a temporary dataset with an explicit split: the held-out
photos sit in valid/ and the model never sees them. Each training photo is crappified
--variants times (40 by default; the builder seeds each copy by its name, so the copies differ,
and more distinct damage per photo is more to learn from). Then trains `restore` with its default
settings (the task's defaults over RunConfig's, plus any --set overrides) and prints the output PSNR next
to the input's on the held-out photos: the run's own validation (centre crops up to 256 px)
and the whole held-out photos through best.pt.

    python bench/restore_quality.py [--mode restore|sr2] [--seed 42] [--set KEY=JSON ...]

No pretrained weights can be downloaded on the benchmark machine: the loss falls back to pixel
L1 (the run says so) and the ResNet encoder starts from scratch.
"""
import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from studio.datasets.crappify import CrappifyParams, crappify_image, image_seed, prepare_clean  # noqa: E402
from studio.datasets.safe_io import open_image, save_png  # noqa: E402

PHOTOS = Path(__file__).resolve().parents[1] / "assets" / "photos"
HELD_OUT = 3  # photos in valid/, chosen by a fixed seed (not the run's)
# restore: the builder's defaults (downscale 4, JPEG 10-70, a number drawn on it);
# sr2: a plain 2x bilinear downscale, the input kept small.
MODES = {"restore": CrappifyParams(), "sr2": CrappifyParams(scale=2, super_res=True, jpeg=False, text=False)}


def build_pairs(root: Path, params: CrappifyParams, variants: int) -> tuple:
    photos = sorted(PHOTOS.glob("*.jpg"))
    held_out = set(random.Random(0).sample([p.stem for p in photos], HELD_OUT))
    for split in ("train", "valid"):
        for half in ("clean", "crappy"):
            (root / split / half).mkdir(parents=True)
    for photo in photos:
        split = "valid" if photo.stem in held_out else "train"
        clean = prepare_clean(open_image(photo), params)
        for k in range(1 if split == "valid" else variants):
            stem = f"{photo.stem}-{k}"
            save_png(clean, root / split / "clean" / f"{stem}.png")
            save_png(crappify_image(clean, params, image_seed(0, stem)), root / split / "crappy" / f"{stem}.png")
    scale = params.scale if params.super_res else 1
    (root / "dataset.json").write_text(json.dumps({"kind": "restore", "scale": scale}))
    return sorted(held_out), scale


@torch.inference_mode()
def whole_photo_psnr(run: Path, data: Path) -> tuple:
    """Mean PSNR of best.pt's output and of the baseline over the whole held-out photos."""
    from trainers.image_metrics import psnr
    from trainers.tasks.restore import checkpoint_unet_settings, restore_unet
    from trainers.paired_data import RestorePairs, scan_pairs

    ckpt = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    config, info = ckpt["config"], ckpt["info"]
    model = restore_unet(config["arch"], info["scale"], info["mean"], info["std"],
                         checkpoint_unet_settings(info, config["extra"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    _, valid = scan_pairs(data, "crappy", "clean", 0.2, 0)
    ds = RestorePairs(valid, info["scale"], 16, info["mean"], info["std"])
    outs, ins = [], []
    for i in range(len(ds)):
        crappy, clean = ds.pair(i)  # whole photos, on the scale's grid
        x = (crappy.float() / 255 - model.in_mean[0]) / model.in_std[0]
        clean = clean.float()[None] / 255
        out = model(x[None]).clamp(0, 1)
        base = torch.nn.functional.interpolate(crappy.float()[None] / 255, size=clean.shape[-2:], mode="bicubic",
                                               align_corners=False).clamp(0, 1)
        outs.append(psnr(out, clean).item())
        ins.append(psnr(base, clean).item())
    return sum(outs) / len(outs), sum(ins) / len(ins)


def valid_side(data: Path, scale: int, size: int) -> int:
    """The side of the run's validation crops (restore validates on crops up to VALID_SIDE)."""
    from trainers.paired_data import RestorePairs, scan_pairs
    from trainers.tasks.restore import VALID_SIDE

    _, valid = scan_pairs(data, "crappy", "clean", 0.2, 0)
    return RestorePairs(valid, scale, size, (0.5,) * 3, (0.25,) * 3, valid_side=VALID_SIDE).size


def main():
    from trainers import RunConfig, fit

    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=sorted(MODES), default="restore")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--variants", type=int, default=40, help="crappified copies of each training photo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="override a default, e.g. --set epochs=6 (for exploring; the benchmark uses none)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(tempfile.mkdtemp(prefix=f"{args.mode}-pairs-"))
    held_out, scale = build_pairs(data, MODES[args.mode], args.variants)
    run = Path(tempfile.mkdtemp(prefix=f"{args.mode}-run-"))
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = RunConfig.from_dict({"task": "restore", "data": str(data), "seed": args.seed, **overrides})
    start = time.perf_counter()
    result = fit(config, run)
    seconds = time.perf_counter() - start
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    loss = next((line.split("loss: ", 1)[1] for line in (run / "log.txt").read_text().splitlines()
                 if "loss: " in line), "?")
    out_psnr, in_psnr = whole_photo_psnr(run, data)
    baseline = "crappy input" if scale == 1 else "bicubic upscale"
    changed = ", ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items()) or "defaults"
    print(f"{args.mode} resnet18 from scratch ({changed}), seed {args.seed}, held-out photos {', '.join(held_out)}")
    print(f"  loss: {loss}")
    side = valid_side(data, scale, config.image_size)
    print(f"  last epoch, centre crops {side} px: output PSNR {last['psnr']:.2f} dB vs {baseline} "
          f"{last['input_psnr']:.2f} dB (gain {last['psnr'] - last['input_psnr']:+.2f} dB); "
          f"SSIM {last['ssim']:.3f} vs {last['input_ssim']:.3f}")
    print(f"  best.pt, whole held-out photos: output PSNR {out_psnr:.2f} dB vs {baseline} {in_psnr:.2f} dB "
          f"(gain {out_psnr - in_psnr:+.2f} dB)")
    print(f"  {len(rows)} epochs, {seconds:.0f} s training on {result['device']} ({args.threads} threads); "
          f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
