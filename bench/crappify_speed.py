"""Crappify throughput: our parallel builder against a single-process PIL loop doing the same
degradations on the same images (the bundled photos, each used --repeat times).

    .venv/bin/python bench/crappify_speed.py [--repeat 8] [--processes N]

Prints images per second for both and their ratio (near the number of free cores when the
machine is otherwise idle; process start-up is included in ours)."""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.datasets.crappify import CrappifyParams, crappify_dataset, crappify_image, image_seed, prepare_clean  # noqa: E402
from studio.datasets.safe_io import open_image, save_png  # noqa: E402
from studio.datasets.samples import ASSETS  # noqa: E402
from studio.workspace import Workspace  # noqa: E402

PARAMS = CrappifyParams(scale=4, text=True, jpeg=True, noise=8.0, blur=0.6)


def make_source(folder: Path, repeat: int) -> list:
    photos = sorted((ASSETS / "photos").glob("*.jpg"))
    folder.mkdir(parents=True)
    for k in range(repeat):
        for p in photos:
            shutil.copyfile(p, folder / f"{p.stem}_{k}.jpg")
    return sorted(folder.iterdir())


def single_process_loop(files, out: Path, seed: int = 0) -> None:
    for d in ("clean", "crappy"):
        (out / d).mkdir(parents=True)
    for f in files:
        clean = prepare_clean(open_image(f), PARAMS)
        save_png(crappify_image(clean, PARAMS, image_seed(seed, f.stem)), out / "crappy" / f"{f.stem}.png")
        save_png(clean, out / "clean" / f"{f.stem}.png")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=8)
    ap.add_argument("--processes", type=int, default=os.cpu_count())
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = make_source(tmp / "src", args.repeat)
        n = len(files)
        t0 = time.perf_counter()
        single_process_loop(files, tmp / "loop")
        loop_s = time.perf_counter() - t0
        ws = Workspace.open(tmp / "ws")
        t0 = time.perf_counter()
        report = crappify_dataset(ws, "bench", tmp / "src", PARAMS, seed=0, processes=args.processes)
        ours_s = time.perf_counter() - t0
        assert report["pairs"] == n
        # Same seed, same settings: our pairs equal the loop's, byte for byte.
        same = all((tmp / "loop" / d / f.name).read_bytes() == f.read_bytes()
                   for d in ("clean", "crappy") for f in (ws.datasets_dir / "bench" / d).iterdir())
    print(f"{n} images (bundled photos x{args.repeat}), settings {PARAMS}")
    print(f"single-process PIL loop : {n / loop_s:7.1f} images/s ({loop_s:.2f} s)")
    print(f"crappify, {args.processes} processes  : {n / ours_s:7.1f} images/s ({ours_s:.2f} s)")
    print(f"ratio                   : {loop_s / ours_s:.2f}x   (identical pairs: {same})")


if __name__ == "__main__":
    main()
