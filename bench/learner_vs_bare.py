"""Our Learner against a bare PyTorch loop: same model, data, optimiser, schedule, steps.

Both train a ResNet-18 classifier on the same in-memory batches with AdamW and OneCycleLR,
and validate once per epoch. Epochs alternate between the two (Learner, bare, Learner, ...)
so that load on the machine hits both alike; the median seconds per epoch are compared.

    python bench/learner_vs_bare.py [--device cpu|cuda] [--rounds 5] [--images 512] [--size 64]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from trainers.learner import Learner  # noqa: E402
from trainers.metrics import Accuracy, ErrorRate  # noqa: E402
from trainers.models import ResNetClassifier  # noqa: E402


def bare_epoch(model, train_dl, valid_dl, device, lr, amp_dtype):
    """The loop anyone would write: no callbacks, no events, no reporting."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=len(train_dl), pct_start=0.25,
                                                div_factor=25, final_div_factor=1e5,
                                                base_momentum=0.85, max_momentum=0.95)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for xb, yb in train_dl:
        xb, yb = xb.to(device), yb.to(device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    model.eval()
    correct = 0
    with torch.inference_mode():
        for xb, yb in valid_dl:
            xb, yb = xb.to(device), yb.to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                correct += (model(xb).argmax(1) == yb).sum().item()
    if device.type == "cuda":
        torch.cuda.synchronize()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.images, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.images,))
    train_dl = DataLoader(TensorDataset(x, y), args.batch_size, shuffle=True, drop_last=True)
    valid_dl = DataLoader(TensorDataset(x[:128], y[:128]), args.batch_size * 2)

    ours = ResNetClassifier("resnet18", 10).to(device)
    bare = ResNetClassifier("resnet18", 10).to(device)
    learner = Learner(ours, train_dl, valid_dl, nn.CrossEntropyLoss(), [Accuracy(), ErrorRate()], device=device)
    learner.groups = [ours]  # one parameter group, as the bare loop has
    amp_dtype = learner.amp_dtype
    if device.type == "cuda":
        bare = bare.to(memory_format=torch.channels_last)

    def time_ours():
        start = time.perf_counter()
        learner.fit_one_cycle(1, 1e-3)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def time_bare():
        start = time.perf_counter()
        bare_epoch(bare, train_dl, valid_dl, device, 1e-3, amp_dtype)
        return time.perf_counter() - start

    time_ours(), time_bare()  # warm-up: allocator, kernels, caches
    ours_s, bare_s = [], []
    for _ in range(args.rounds):
        ours_s.append(time_ours())
        bare_s.append(time_bare())
    o, b = statistics.median(ours_s), statistics.median(bare_s)
    print(f"device {device}, {len(train_dl)} batches of {args.batch_size} at {args.size}px per epoch, "
          f"{args.rounds} rounds")
    print(f"Learner   {o:.3f} s/epoch (median)")
    print(f"bare loop {b:.3f} s/epoch (median)")
    print(f"ratio Learner/bare = {o / b:.3f}")


if __name__ == "__main__":
    main()
