"""The run users get against a bare PyTorch loop, on pictures nobody tuned for.

`fit()` with everything a default run has (augmentation, precise batch norm, activation
statistics every 4th batch, checkpoints, a sample grid per epoch, the run's log and metrics,
the rehearsal before the first step) against the loop anyone would write around the SAME
parts (the classify task's datasets with their augmentation, model, loss): AdamW with
OneCycleLR at the same rate, the same batches and epochs, validation once per epoch. Data:
`bench/package_photos.py`'s `upright` set (rotated crops of scikit-learn's two sample
photos; 600 training, 160 held-out crops of 48 px). Each seed runs both, alternately, so load
on the machine hits both alike. Prints seconds per epoch (the whole run divided by its epochs:
setup, checkpoints and samples included for fit) and the final held-out accuracy, then the
median ratio. `--scenes PHOTOS` uses package_photos.write_scenes instead (10 classes of 32 px
crops, 6,000 training and 1,000 held-out: the size of issue 14's comparison); `--parts` prints
where fit()'s seconds go; `--fastai-python` runs fastai's vision_learner on the same folder too.

    python bench/run_vs_bare.py [--seeds 42 1 2] [--epochs 3] [--per-class 1500 250] [--parts]
                                [--fastai-python /tmp/fastai-venv/bin/python]
"""
import argparse
import collections
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from package_photos import write_scenes, write_upright  # noqa: E402


def bare(config, seed):
    """The bare loop on the task's own parts: what fit() adds is all that differs."""
    from trainers import RunConfig
    from trainers.tasks import get_task

    cfg = RunConfig.from_dict(dict(config, seed=seed)).validate()
    start = time.perf_counter()
    torch.manual_seed(seed)
    parts = get_task("classify").build(cfg, torch.device("cpu"))
    model, loss_fn = parts.model, parts.loss_fn
    train = DataLoader(parts.train_ds, cfg.batch_size, shuffle=True, drop_last=True)
    valid = DataLoader(parts.valid_ds, cfg.batch_size * 2)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * len(train),
                                                pct_start=0.25, div_factor=25, final_div_factor=1e5,
                                                base_momentum=0.85, max_momentum=0.95)
    accuracy = 0.0
    for epoch in range(cfg.epochs):
        torch.manual_seed(seed * 1000 + epoch)
        model.train()
        for xb, yb in train:
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
        model.eval()
        correct = total = 0
        with torch.inference_mode():
            for xb, yb in valid:
                correct += (model(xb).argmax(1) == yb).sum().item()
                total += len(yb)
        accuracy = correct / total
    return (time.perf_counter() - start) / cfg.epochs, accuracy


class PartTimes:
    """Seconds spent in each callback's handlers and in the Learner's own stages, summed over a
    run: what fit() adds to the bare loop, part by part. Installed by wrapping the methods that
    call them, so fit() itself runs unchanged."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)

    def install(self):
        from trainers.callbacks import CallbackHost
        from trainers.learner import Learner

        def timed_fire(host, event):
            for cb in host.callbacks:
                handler = getattr(cb, event, None)
                if handler is not None:
                    start = time.perf_counter()
                    handler()
                    self.seconds[f"{type(cb).__name__}.{event}"] += time.perf_counter() - start

        self._undo = [(CallbackHost, "fire", CallbackHost.fire)]
        CallbackHost.fire = timed_fire
        for name in ("rehearse", "validate", "_train_batch", "lr_find"):
            original = getattr(Learner, name)
            self._undo.append((Learner, name, original))
            setattr(Learner, name, self._timing(name, original))

    def _timing(self, name, original):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[f"Learner.{name}"] += time.perf_counter() - start

        return wrapper

    def uninstall(self):
        for owner, name, original in self._undo:
            setattr(owner, name, original)

    def report(self, total_s):
        rows = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        return "\n".join(f"    {s:7.2f} s {100 * s / total_s:5.1f}%  {name}" for name, s in rows if s >= 0.005)


def ours(config, seed, parts=None):
    from trainers import fit

    out = tempfile.mkdtemp(prefix="run-vs-bare-")
    if parts is not None:
        parts.install()
    start = time.perf_counter()
    try:
        result = fit(dict(config, seed=seed), out)
    finally:
        if parts is not None:
            parts.uninstall()
    total = time.perf_counter() - start
    if parts is not None:
        print(f"seed {seed}: fit() {total:.2f} s in all, by part (nested: Learner._train_batch holds the "
              f"batch events' callbacks):\n{parts.report(total)}", flush=True)
    rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    shutil.rmtree(out, ignore_errors=True)
    return total / result["epochs_done"], rows[-1]["accuracy"]


def fastai_side(python, data, config, seed) -> str:
    """fastai's vision_learner + fit_one_cycle on the same folder and settings, in its own Python."""
    done = subprocess.run(
        [python, str(Path(__file__).with_name("fastai_side.py")), str(data), "--size", str(config["image_size"]),
         "--batch-size", str(config["batch_size"]), "--epochs", str(config["epochs"]), "--lr", str(config["lr"]),
         "--seed", str(seed), "--threads", str(torch.get_num_threads())],
        capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return f"fastai {result['fastai']} {result['seconds_per_epoch']:.2f} s/epoch, accuracy {result['accuracy']:.4f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--per-class", type=int, nargs=2, default=(150, 40), metavar=("TRAIN", "VALID"),
                    help="upright crops per class (1500 250: 6,000 training and 1,000 held-out pictures)")
    ap.add_argument("--scenes", type=Path, metavar="PHOTOS",
                    help="instead of upright: package_photos.write_scenes of this folder's photos (32 px, 10 classes)")
    ap.add_argument("--parts", action="store_true", help="print where fit()'s seconds go, part by part")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: what a run's worker uses)")
    ap.add_argument("--extra", type=json.loads, default={}, metavar="JSON",
                    help="fit()'s extra settings, e.g. '{\"precise_bn\": false}' (the bare loop has none)")
    ap.add_argument("--fastai-python", help="a Python with fastai (bench/fastai_side.py says how): fastai too")
    args = ap.parse_args()
    from trainers.device import use_cpu_threads

    torch.set_num_threads(args.threads) if args.threads else use_cpu_threads()
    print(f"{torch.get_num_threads()} torch threads; fit() steps with torch's fused AdamW, the bare loop with "
          f"AdamW's default implementation (what a plain loop gets)", flush=True)
    if args.scenes:
        data = write_scenes(Path(tempfile.mkdtemp(prefix="scenes-")) / "scenes", args.scenes)
        size, batch = 32, 64  # issue 14's comparison: 32 px, batches of 64
    else:
        data = write_upright(Path(tempfile.mkdtemp(prefix="upright-")) / "upright", per_class=tuple(args.per_class))
        size, batch = 48, 32
    print(f"data: {data.name}, {sum(1 for _ in (data / 'train').rglob('*.png'))} training and "
          f"{sum(1 for _ in (data / 'valid').rglob('*.png'))} held-out pictures", flush=True)
    config = {"task": "classify", "data": str(data), "image_size": size, "batch_size": batch, "epochs": args.epochs,
              "lr": 3e-3, "pretrained": False, "extra": args.extra}
    ratios = []
    for seed in args.seeds:
        o_s, o_acc = ours(config, seed, PartTimes() if args.parts else None)
        b_s, b_acc = bare(config, seed)
        ratios.append(o_s / b_s)
        fa = f"; {fastai_side(args.fastai_python, data, config, seed)}" if args.fastai_python else ""
        print(f"seed {seed}: fit() {o_s:.2f} s/epoch, accuracy {o_acc:.4f}; bare loop {b_s:.2f} s/epoch, "
              f"accuracy {b_acc:.4f}; ratio {o_s / b_s:.3f}{fa}; load {open('/proc/loadavg').read().split()[0]}",
              flush=True)
    print(f"median ratio fit()/bare = {statistics.median(ratios):.3f} over {len(ratios)} seeds "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
