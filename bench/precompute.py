"""Precompute: a frozen epoch on cached activations against one without, and against an unfrozen one.

A pretrained classify Learner as fit() builds it (precise batch norm, memory guard, precompute;
without the run's files), on the bundled digits (or `--data`), with a weights file this script
writes into a temporary TORCH_HOME (seeded random values: the same arithmetic as ImageNet's, no
download). Three ways, one after the other in this process:

- precompute on: the frozen phase, `--frozen` epochs (default 3, views 2: epochs 1 and 2 compute
  a view of the training pictures, epoch 3 takes view 1 again from the cache; the validation
  set's activations are computed once before epoch 1);
- precompute off: the same frozen phase with the body run every batch (batch norm trainable);
- unfrozen: one epoch of the whole network, as the phase after the frozen one.

Prints seconds per epoch (training and validation) of each, the cache's one-off seconds, and the
ratios. Expected on a CPU: a frozen epoch from the cache far faster than one without (issue 14
expects well above 5x against the unfrozen phase).

    python bench/precompute.py [--data DIR] [--image-size 32] [--frozen 3] [--threads N]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class EpochClock:
    """Seconds of each epoch, as the Learner measures them (training and validation)."""

    order, learner = 60, None

    def __init__(self):
        self.seconds = []

    def after_epoch(self):
        self.seconds.append(self.learner.epoch_metrics["seconds"])


def learner_for(config):
    from trainers import RunConfig
    from trainers.fit import _build

    return _build(RunConfig.from_dict(config).validate(), "cpu")[3]


def timed(learner, epochs, lr):
    clock = EpochClock()
    learner.add_callbacks([clock])
    start = time.perf_counter()
    learner.fit_one_cycle(epochs, lr)
    learner.remove_callbacks([clock])
    return clock.seconds, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT / "assets" / "digits"))
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--frozen", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: what a run's worker uses)")
    args = ap.parse_args()
    os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="precompute-bench-")
    os.environ["DARKROOM_OFFLINE"] = "1"
    os.environ.pop("DARKROOM_ACTIVATION_CACHE", None)
    import torch
    import torchvision
    from trainers.models import weights_file

    from trainers.device import use_cpu_threads

    torch.set_num_threads(args.threads) if args.threads else use_cpu_threads()
    path = weights_file("resnet18")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.get_model("resnet18", weights=None).state_dict(), path)

    base = {
        "task": "classify",
        "data": args.data,
        "arch": "resnet18",
        "pretrained": True,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "epochs": args.frozen + 1,
        "freeze_epochs": args.frozen,
        "lr": 3e-3,
        "seed": 42,
    }
    on = learner_for(dict(base, extra={"precompute": True, "precompute_views": 2}))
    on.freeze()
    on_epochs, on_total = timed(on, args.frozen, 3e-3)
    off = learner_for(dict(base, extra={"precompute": False}))
    off.freeze()
    off_epochs, off_total = timed(off, args.frozen, 3e-3)
    off.unfreeze()
    unfrozen_epochs, _ = timed(off, 1, slice(3e-3 / 200, 3e-3 / 2))

    cached = on_epochs[2:] or on_epochs[-1:]  # epochs whose view was already in the cache
    cache_s = on_total - sum(cached)  # the validation set once, and each view once
    frozen_off = statistics.median(off_epochs)
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print(
        f"{args.data}: {len(on.train_dl)} training batches of {args.batch_size} at {args.image_size} px, "
        f"resnet18 pretrained (test-written weights), {torch.get_num_threads()} threads, load {load}"
    )
    print(
        f"frozen, precompute on : epochs {', '.join(f'{s:.2f}' for s in on_epochs)} s "
        f"(from the cache: {statistics.median(cached):.3f} s); whole frozen phase {on_total:.1f} s, "
        f"of which computing the activations about {cache_s:.1f} s"
    )
    print(
        f"frozen, precompute off: epochs {', '.join(f'{s:.2f}' for s in off_epochs)} s; whole frozen phase "
        f"{off_total:.1f} s"
    )
    print(f"unfrozen              : {unfrozen_epochs[0]:.2f} s per epoch")
    print(f"ratio frozen epoch without / with the cache: {frozen_off / statistics.median(cached):.1f}x")
    print(f"ratio unfrozen epoch / frozen epoch from the cache: {unfrozen_epochs[0] / statistics.median(cached):.1f}x")
    print(
        f"ratio whole frozen phase without / with precompute ({args.frozen} epochs, cache included): "
        f"{off_total / on_total:.2f}x"
    )


if __name__ == "__main__":
    main()
