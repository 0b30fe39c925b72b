"""What the per-epoch views cost: held-out scoring (restore, on the bundled photos crappified by
the studio's builder), heatmaps and activation summaries (classify, on the bundled digits), and
per-epoch weights (time and disk), each as a fraction of the epoch's training and validation time.

    flock /tmp/bench.lock nice -n 0 .venv/bin/python bench/epoch_views_cost.py --epochs 3

Each callback's after_epoch is timed where it runs, inside a normal fit(); the epoch's own time
is metrics.jsonl's `seconds` (training and validation). Prints one line per callback and task.
"""

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.restore_quality import MODES, PHOTOS, build_pairs  # noqa: E402
from trainers import fit  # noqa: E402
from trainers.epoch_weights import EpochWeights, kept_bytes, kept_epochs  # noqa: E402
from trainers.heldout import HeldoutRecord  # noqa: E402
from trainers.internals import EpochInternals  # noqa: E402
from trainers.callbacks import EpochSamples  # noqa: E402

DIGITS = Path(__file__).resolve().parents[1] / "assets" / "digits"
TIMED = {
    "held-out scoring": HeldoutRecord,
    "heatmaps + activation summary": EpochInternals,
    "per-epoch weights": EpochWeights,
    "sample grid (held-out outputs)": EpochSamples,
}


def timed(spent):
    """Wrap each timed callback's after_epoch so its seconds add up in `spent`."""
    for name, cls in TIMED.items():
        original = cls.after_epoch

        def wrapper(self, _original=original, _name=name):
            start = time.perf_counter()
            _original(self)
            spent[_name] += time.perf_counter() - start

        cls.after_epoch = wrapper


def report(task, run, spent):
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epoch_s = sum(r["seconds"] for r in rows)
    print(f"{task}: {len(rows)} epochs, {epoch_s / len(rows):.2f} s per epoch (training + validation)")
    for name, seconds in spent.items():
        print(f"  {name:32s} {seconds / len(rows):7.3f} s per epoch = {seconds / epoch_s:6.2%} of epoch time")
    kept = kept_epochs(run)
    if kept:
        size = kept_bytes(run) / 2**20
        print(
            f"  weights kept: epochs {kept}, {size:.1f} MB in all, {size / len(kept):.1f} MB per epoch "
            f"(last.pt {(run / 'checkpoints' / 'last.pt').stat().st_size / 2**20:.1f} MB)"
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spent = defaultdict(float)
    timed(spent)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_pairs(tmp / "pairs", PHOTOS, MODES["crappify"], side=384, held_out=4)
        config = {
            "task": "restore",
            "data": str(tmp / "pairs"),
            "pretrained": False,
            "epochs": args.epochs,
            "extra": {"loss": "pixel"},
        }  # the restore defaults otherwise (64 px crops, batch 8)
        fit(config, tmp / "restore")
        report("restore (bundled photos at 384 px, default crappify recipe; 4 held-out photos)", tmp / "restore", spent)
        spent.clear()
        config = {
            "task": "classify",
            "data": str(DIGITS),
            "pretrained": False,
            "epochs": args.epochs,
            "image_size": 64,
            "freeze_epochs": 0,
        }
        fit(config, tmp / "classify")
        report("classify (bundled digits, 64 px; 4 heatmap pictures)", tmp / "classify", spent)


if __name__ == "__main__":
    main()
