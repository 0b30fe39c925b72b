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
median ratio.

    python bench/run_vs_bare.py [--seeds 42 1 2] [--epochs 3]
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from package_photos import write_upright  # noqa: E402


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


def ours(config, seed):
    from trainers import fit

    out = tempfile.mkdtemp(prefix="run-vs-bare-")
    start = time.perf_counter()
    result = fit(dict(config, seed=seed), out)
    seconds = (time.perf_counter() - start) / result["epochs_done"]
    rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return seconds, rows[-1]["accuracy"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: what a run's worker uses)")
    args = ap.parse_args()
    from trainers.device import use_cpu_threads

    torch.set_num_threads(args.threads) if args.threads else use_cpu_threads()
    print(f"{torch.get_num_threads()} torch threads; fit() steps with torch's fused AdamW, the bare loop with "
          f"AdamW's default implementation (what a plain loop gets)", flush=True)
    data = write_upright(Path(tempfile.mkdtemp(prefix="upright-")) / "upright")
    config = {"task": "classify", "data": str(data), "image_size": 48, "batch_size": 32, "epochs": args.epochs,
              "lr": 3e-3, "pretrained": False}
    ratios = []
    for seed in args.seeds:
        o_s, o_acc = ours(config, seed)
        b_s, b_acc = bare(config, seed)
        ratios.append(o_s / b_s)
        print(f"seed {seed}: fit() {o_s:.2f} s/epoch, accuracy {o_acc:.4f}; bare loop {b_s:.2f} s/epoch, "
              f"accuracy {b_acc:.4f}; ratio {o_s / b_s:.3f}; load {open('/proc/loadavg').read().split()[0]}",
              flush=True)
    print(f"median ratio fit()/bare = {statistics.median(ratios):.3f} over {len(ratios)} seeds "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
