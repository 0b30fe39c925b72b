"""Hooks (the course's lesson 6 and part 2's lesson 10): look at what layers compute.

Every hook here is a context manager that removes itself on exit, also when the body raises,
so an inspection never leaves a hook behind on the model. `ActivationStats` is the callback
that records per-layer statistics while a model trains, kept with the run.
"""
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from .callbacks import Callback, write_checkpoint


class Hook:
    """A forward hook on one module calling fn(hook, module, inputs, output); `with Hook(...)`
    removes it on exit. `stored` is free for fn to keep something in."""

    def __init__(self, module: nn.Module, fn, backward: bool = False):
        self.module, self.fn, self.stored = module, fn, None
        if backward:  # full backward hook: the gradient w.r.t. the module's output, any model
            self.handle = module.register_full_backward_hook(self._call)
        else:
            self.handle = module.register_forward_hook(self._call)

    def _call(self, module, inputs, output):
        self.fn(self, module, inputs, output)

    def remove(self):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def __del__(self):
        self.remove()


class Hooks(list):
    """One Hook per module, removed together."""

    def __init__(self, modules, fn, backward: bool = False):
        super().__init__(Hook(m, fn, backward) for m in modules)

    def remove(self):
        for h in self:
            h.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def _store_output(hook, module, inputs, output):
    hook.stored = output.detach()


def _store_live_output(hook, module, inputs, output):
    hook.stored = output


def hook_output(module: nn.Module) -> Hook:
    """`with hook_output(layer) as h: model(x)` -> h.stored is the layer's output."""
    return Hook(module, _store_output)


def hook_live_output(module: nn.Module) -> Hook:
    """`with hook_live_output(layer) as h: score = f(model(x))` -> h.stored is the layer's output
    still on the forward's graph, so `torch.autograd.grad(score, h.stored)` is d score / d output
    summed over every path that uses it, a U-Net's skip connections included (a full backward
    hook sees only what flows back through the module's own call: as little as 1% there)."""
    return Hook(module, _store_live_output)


@contextmanager
def no_inplace(model: nn.Module):
    """Turn off in-place activations for a while: an in-place ReLU after a hooked layer would
    overwrite the stored activations and breaks full backward hooks."""
    changed = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in changed:
        m.inplace = False
    try:
        yield model
    finally:
        for m in changed:
            m.inplace = True


def hook_count(model: nn.Module) -> int:
    """How many hooks of any kind are registered on the model's modules (0 after an inspection)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())


# --- activation statistics ----------------------------------------------------------

HIST_BINS = 40
HIST_RANGE = (0.0, 10.0)   # of |activation|, as the course's histograms
NEAR_ZERO = 0.05           # |activation| below this counts as "near zero"
MAX_ROWS = 2000            # beyond this the recorded batches are thinned to every other one


def stat_layers(model: nn.Module, limit: int = 24) -> list:
    """[(name, module)]: the convolutions and linear layers, evenly thinned to `limit`."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(layers) > limit:
        step = (len(layers) - 1) / (limit - 1)
        layers = [layers[round(i * step)] for i in range(limit)]
    return layers


def batch_stats(output: torch.Tensor) -> tuple:
    """(mean, std, fraction near zero, histogram of |activation|) of one layer's output."""
    a = output.detach().float()
    hist = a.abs().histc(HIST_BINS, *HIST_RANGE)
    return (a.mean().item(), a.std().item() if a.numel() > 1 else 0.0,
            (a.abs() < NEAR_ZERO).float().mean().item(), hist.cpu())


class ActivationStats(Callback):
    """Records, for every `every`-th training batch and every layer of `stat_layers`, the mean,
    std, fraction near zero and a histogram of the output; saved to `path` after each epoch
    (torch tensors only: load with weights_only=True). A resumed run drops rows of the epoch
    it repeats, so the file matches the checkpoint. Every batch cost 1.2x a bare loop on small
    images (24 layers of statistics per step); every 4th keeps the pictures' shape for a few
    percent (docs/BENCHMARKS.md)."""
    order = 10

    def __init__(self, path, limit: int = 24, every: int = 4):
        self.path, self.limit, self.every = Path(path), limit, every
        self.recording = False
        self.hooks = None
        self.rows = self._load_existing()

    def _load_existing(self) -> list:
        if not self.path.is_file():
            return []
        try:
            saved = torch.load(self.path, weights_only=True)
            return [{"epoch": int(e), "batch": int(b), "mean": m, "std": s, "near_zero": z, "hist": h}
                    for e, b, m, s, z, h in zip(saved["epoch"], saved["batch"], saved["mean"], saved["std"],
                                                saved["near_zero"], saved["hist"])]
        except Exception:
            return []  # an unreadable file is replaced: the statistics are a view, not the model

    def before_fit(self):
        self.layers = stat_layers(self.learner.unwrapped, self.limit)
        self.stride = 1
        self._current = {}
        self.hooks = Hooks([m for _, m in self.layers], self._record)

    def _record(self, hook, module, inputs, output):
        if self.recording and module.training and isinstance(output, torch.Tensor):
            self._current[id(module)] = batch_stats(output)

    def before_epoch(self):
        epoch = self.learner.epoch
        self.rows = [r for r in self.rows if r["epoch"] < epoch]

    def before_batch(self):
        self._current = {}
        # The first batch of an epoch always counts, so even short epochs have a row.
        self.recording = self.learner.batch_index % (self.every * self.stride) == 0

    def after_batch(self):
        current, self._current = self._current, {}
        if not self.recording or len(current) != len(self.layers):
            return
        stats = [current[id(m)] for _, m in self.layers]
        self.rows.append({"epoch": self.learner.epoch, "batch": self.learner.batch_index,
                          "mean": torch.tensor([s[0] for s in stats]), "std": torch.tensor([s[1] for s in stats]),
                          "near_zero": torch.tensor([s[2] for s in stats]), "hist": torch.stack([s[3] for s in stats])})
        if len(self.rows) > MAX_ROWS:  # keep the file small on long runs
            self.rows = self.rows[::2]
            self.stride *= 2

    def after_epoch(self):
        self.save()

    def after_fit(self):
        if self.hooks is not None:
            self.hooks.remove()
            self.hooks = None

    def save(self):
        if not self.rows:
            return
        data = {"layers": [n for n, _ in self.layers], "hist_range": torch.tensor(HIST_RANGE),
                "near_zero_below": torch.tensor(NEAR_ZERO),
                "epoch": torch.tensor([r["epoch"] for r in self.rows]),
                "batch": torch.tensor([r["batch"] for r in self.rows]),
                **{k: torch.stack([r[k] for r in self.rows]) for k in ("mean", "std", "near_zero", "hist")}}
        write_checkpoint(data, self.path)


def load_activation_stats(path) -> dict | None:
    """The saved statistics: layers (names), epoch, batch (N), mean, std, near_zero (N, L),
    hist (N, L, bins), hist_range; None when the run has none."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, weights_only=True)
