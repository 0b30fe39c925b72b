"""Seconds per training step of a digits run with 1 thread against a thread per core, alternately.

Why a run's worker gives torch every core but one (trainers/device.py): torch's threads spin
while they wait for each other, so when any other process wants a core (the studio, the
browser, another run) a thread per core stalls every small convolution. A classify Learner as
fit() builds it (resnet18 from scratch, 32 px, batch 32, the bundled digits), `--steps` training
steps per measurement (optimiser step included), threads 1 then os.cpu_count(), `--rounds`
times. Prints each measurement with the machine's load, the medians and their ratio.

    python bench/cpu_threads.py [--steps 15] [--rounds 2]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    import torch
    from torch.utils.data import DataLoader, Subset

    from trainers import RunConfig
    from trainers.fit import _build

    config = RunConfig.from_dict(
        {
            "task": "classify",
            "data": str(ROOT / "assets" / "digits"),
            "image_size": 32,
            "batch_size": 32,
            "pretrained": False,
            "epochs": 1,
        }
    ).validate()
    learner = _build(config, "cpu")[3]
    data = Subset(learner.train_dl.dataset, range(args.steps * 32))
    learner.train_dl = DataLoader(data, 32, shuffle=True, drop_last=True)
    learner.make_optimizer(1e-3)
    counts = {1: [], max(2, os.cpu_count() or 2): []}
    for _ in range(args.rounds):
        for threads in counts:
            torch.set_num_threads(threads)
            learner.model.train()
            start = time.perf_counter()
            for xb, yb in learner.train_dl:
                learner.xb, learner.yb = xb, yb
                learner._one_step()
            seconds = (time.perf_counter() - start) / args.steps
            counts[threads].append(seconds)
            load = " ".join(open("/proc/loadavg").read().split()[:3])
            print(f"{threads} thread{'s' if threads > 1 else ''}: {seconds:.3f} s per step (load {load})", flush=True)
    (one, one_s), (many, many_s) = [(t, statistics.median(s)) for t, s in counts.items()]
    print(
        f"median s/step: {one} thread {one_s:.3f}, {many} threads {many_s:.3f}; ratio {many}/{one} = "
        f"{many_s / one_s:.2f}"
    )


if __name__ == "__main__":
    main()
