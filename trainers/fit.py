"""fit(): one training run from a RunConfig to a folder of results.

It wires the parts a task builds into a Learner, plans the phases (frozen head first when
the body is pretrained, then everything with discriminative learning rates), resumes from
`checkpoints/last.pt` when asked, and reports through a Reporter.
"""
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from . import budget, distributed
from .atomic import save_torch
from .callbacks import Callback, GradientClip
from .config import RunConfig
from .device import pick_device
from .errors import ConfigError
from .hooks import ActivationStats
from .internals import PICTURES, EpochInternals, fixed_pictures
from .learner import Learner
from .lr_finder import RULES
from .memory import MemoryGuard
from .models.weights import resolve_pretrained
from .precise_bn import PreciseBatchNorm
from .reporting import Reporter
from .run_harness import RunHarness, RunResult
from .tasks import get_task


def plan_phases(config: RunConfig, lr: float) -> list:
    """[(name, epochs, lr)]: a pretrained body is first frozen while the new head learns
    (fastai's fine_tune), then unfrozen with lower rates for early layers."""
    if config.pretrained and config.freeze_epochs > 0:
        frozen = min(config.freeze_epochs, config.epochs)
        phases = [("frozen", frozen, lr)]
        if config.epochs > frozen:
            phases.append(("unfrozen", config.epochs - frozen, slice(lr / 200, lr / 2)))
        return phases
    return [("all", config.epochs, lr)]


def plan_stages(config: RunConfig) -> list:
    """[(image_size, batch_size, epochs)]: one stage, or extra.progressive's stages (the course's
    progressive resizing: small images first, the same weights carried into larger ones)."""
    stages = config.extra.get("progressive")
    if not stages:
        return [(config.image_size, config.batch_size, config.epochs)]
    return [tuple(stage) for stage in stages]


def _set_stage(learner, parts, config, device, ctx, size, batch_size):
    """Resize the datasets (and so the sample grid) and rebuild the loaders for a stage."""
    for ds in (parts.train_ds, parts.valid_ds):
        if not hasattr(ds, "set_size"):
            raise ConfigError(f"The {config.task} task does not support progressive resizing.")
        ds.set_size(size)
    learner.train_dl, learner.valid_dl = _loaders(parts, dataclasses.replace(config, batch_size=batch_size), device, ctx)


def _as_config(config) -> RunConfig:
    config = RunConfig.from_dict(config) if isinstance(config, dict) else config
    return config.validate()


def _resolve_weights(config: RunConfig, checkpoint=None) -> tuple:
    """(config with pretrained true or false, a sentence saying which weights the run starts from).
    A resumed run keeps the choice it started with, whatever the cache holds now: its input
    statistics and phases depend on it."""
    started = (checkpoint or {}).get("config", {}).get("pretrained")
    if isinstance(started, bool):
        return config.with_pretrained(started), f"{config.arch} {'with ImageNet weights' if started else 'from scratch'} (as the run started)"
    used, note = resolve_pretrained(config.pretrained, config.arch)
    return config.with_pretrained(used), note


def _loaders(parts, config, device, ctx):
    pin = device.type == "cuda"
    workers = dict(num_workers=config.num_workers, persistent_workers=config.num_workers > 0, pin_memory=pin)
    if ctx.enabled:
        sampler = DistributedSampler(parts.train_ds, ctx.world, ctx.rank, shuffle=True, seed=config.seed, drop_last=True)
        train = DataLoader(parts.train_ds, config.batch_size, sampler=sampler, drop_last=True, **workers)
    else:
        # drop_last: a last batch of one image breaks batch norm in training.
        train = DataLoader(parts.train_ds, config.batch_size, shuffle=True, drop_last=True, **workers)
    valid = DataLoader(parts.valid_ds, parts.valid_batch_size or config.batch_size * 2, shuffle=False, **workers)
    return train, valid


class _SyncStop(Callback):
    """Under DDP every rank must stop at the same batch, or the others wait forever."""
    order = 40

    def before_batch(self):
        learn = self.learner
        learn.stop = distributed.any_rank(learn.stop, learn.device)


def _build(config, device):
    device = pick_device(device) if not isinstance(device, torch.device) else device
    ctx, device = distributed.init_distributed(device)
    torch.manual_seed(config.seed)  # the same initial weights on every rank and every rerun
    task = get_task(config.task)
    parts = task.build(config, device)
    train_dl, valid_dl = _loaders(parts, config, device, ctx)
    learner = Learner(parts.model, train_dl, valid_dl, parts.loss_fn, parts.metrics, device=device,
                      mixed_precision=config.mixed_precision, weight_decay=config.weight_decay, seed=config.seed)
    learner.infer = parts.infer
    if ctx.enabled:
        learner.model = torch.nn.parallel.DistributedDataParallel(
            learner.model, device_ids=[device.index] if device.type == "cuda" else None)
        learner.add_callbacks([_SyncStop()])
    if config.grad_clip is not None:
        learner.add_callbacks([GradientClip(config.grad_clip)])
    learner.add_callbacks([MemoryGuard(f"lower 'image_size' (now {config.image_size} px) or choose a smaller "
                                       f"'arch' than {config.arch}")])
    # The task says whether its networks need it (precise_bn.py); extra.precise_bn overrides.
    if config.extra.get("precise_bn", getattr(task, "precise_bn", False)):
        learner.add_callbacks([PreciseBatchNorm()])
    # What the task adds to the loop (classify: precompute while the body is frozen); activations
    # persist across runs in DARKROOM_ACTIVATION_CACHE when it names a folder, else in memory.
    learner.add_callbacks(task.learner_callbacks(config, os.environ.get("DARKROOM_ACTIVATION_CACHE") or None))
    return ctx, device, parts, learner


def find_lr(config, reporter: Reporter | None = None, device=None) -> dict:
    """Run the LR finder for this config (head only when the body is pretrained)."""
    name = config.task if isinstance(config, RunConfig) else config.get("task", "classify")
    if not get_task(name).lr_finder:  # before the data are checked: no dataset makes it apply
        raise ConfigError(f"The learning-rate finder does not apply to the {name} task; give 'lr' a value "
                          f"(or null for the task's default rate).")
    config, note = _resolve_weights(_as_config(config))
    reporter = reporter or Reporter()
    reporter.log(note)
    ctx, device, parts, learner = _build(config, device)
    try:
        if config.pretrained and config.freeze_epochs > 0:
            learner.freeze()
        reporter.log(f"LR finder on {device}")
        result = learner.lr_find(reporter=reporter)
        if ctx.enabled:
            result["suggestion"] = distributed.broadcast_float(result["suggestion"], device)
        reporter.log(f"LR finder suggests {result['suggestion']:.2e} ({RULES[result['rule']]})")
        return result
    finally:
        distributed.shutdown()


def fit(config, out_dir, reporter: Reporter | None = None, resume: bool = False, device=None,
        started: float | None = None) -> RunResult:
    """Train `config` into `out_dir`; returns a RunResult (status 'completed' or 'stopped',
    epochs_done, best_metric, monitor, device, lr, the weights it started from, its estimated
    and its real seconds). `started`: the time.perf_counter() at which the run's clock started
    (a worker's start of the run, before torch loaded), so that a time budget counts from Start
    and the seconds recorded are the person's; default: now."""
    started = started if started is not None else time.perf_counter()
    config = _as_config(config)
    # A task with a loop of its own (wgan, gan, style's Gatys mode) trains itself: Task.own_fit
    # returns that fit (same arguments, same result), or None for the Learner below.
    own_fit = get_task(config.task).own_fit(config)
    if own_fit is not None:  # these loops start no ImageNet body: "auto" is what the cache holds
        return own_fit(config.with_pretrained(config.pretrained_here()), out_dir, reporter=reporter,
                       resume=resume, device=device)
    harness = RunHarness(config, out_dir, reporter, resume)
    checkpoint = harness.checkpoint
    config, weights_note = _resolve_weights(config, checkpoint)
    harness.config = config

    ctx, device, parts, learner = _build(config, device)
    try:
        harness.is_main = ctx.is_main
        internals = _epoch_internals(config, parts, ctx, device, harness.out)
        # Before the run folder is written: the rehearsal may choose the epochs (budget_s).
        config, estimate = _rehearse(config, learner, checkpoint, started, ctx, parts.sample_fn, internals)
        harness.config = config
        report = harness.open()
        learner.log = report.log
        for line in estimate["log"]:  # what the rehearsal said, now that the run has a log
            report.log(line)
        if checkpoint is not None:
            learner.unwrapped.load_state_dict(checkpoint["model"])
            lr = checkpoint["lr"]
        else:
            lr = _choose_lr(config, learner, ctx, device, report)

        learner.add_callbacks(harness.callbacks(parts.sample_fn, parts.monitor, parts.higher_is_better,
                                                mid_epoch=True, heldout=parts.heldout))
        # Per-layer activation statistics (hooks.py), kept with the run for the Inspect tab;
        # extra.activation_stats = false turns them off.
        stats = None
        if ctx.is_main and config.extra.get("activation_stats", True):
            stats = ActivationStats(harness.out / "activation_stats.pt")
            learner.add_callbacks([stats])
        if internals is not None:
            internals.stats = stats
            learner.add_callbacks([internals])

        # [(name, epochs, lr, stage)]: each progressive stage runs its own frozen/unfrozen phases.
        stages = plan_stages(config)
        phases = [(name, epochs, phase_lr, stage) for stage in stages
                  for name, epochs, phase_lr in plan_phases(dataclasses.replace(config, epochs=stage[2]), lr)]
        harness.start(device, len(learner.train_dl), lr, world_size=ctx.world, pretrained=config.pretrained,
                      **{k: v for k, v in parts.info.items() if k == "classes"})
        report.log(f"weights: {weights_note}")
        n = torch.get_num_threads()
        threads = f" ({n} thread{'s' if n > 1 else ''})" if device.type == "cpu" else ""
        report.log(f"{config.task} {config.arch} on {device}{threads}; {parts.info.get('train_count', '?')} training and "
                   f"{parts.info.get('valid_count', '?')} validation items; lr {lr:.2e}")
        if "loss" in parts.info:
            report.log(f"loss: {parts.info['loss']}")

        first = 0
        done_before = harness.done
        current_stage = None if len(stages) > 1 else stages[0]
        for index, (name, epochs, phase_lr, stage) in enumerate(phases):
            end = first + epochs
            if done_before >= end:  # this phase finished before the interruption
                first = end
                continue
            if stage != current_stage:
                _set_stage(learner, parts, config, device, ctx, stage[0], stage[1])
                current_stage = stage
                report.log(f"progressive resizing: images of {stage[0]} px, batches of {stage[1]}")
            if name == "frozen":
                learner.freeze()
            else:
                learner.unfreeze()
            learner.extra_state = {"phase": index, "lr": lr, "task": config.task, "info": parts.info,
                                   "config": config.to_dict()}
            # A phase continues from the checkpoint if it stopped inside it: after one of its
            # epochs, or inside its first epoch (a time checkpoint).
            inside = first <= done_before if checkpoint is not None and checkpoint.get("batch") else first < done_before
            resume_state = checkpoint if checkpoint is not None and inside and done_before < end else None
            report.log(f"phase {name}: epochs {first + 1}-{end}, lr {_fmt(phase_lr)}")
            learner.fit_one_cycle(epochs, phase_lr, first_epoch=first, resume_state=resume_state)
            if learner.stop:
                break
            first = end

        return harness.finish(learner, device, lr, pretrained=config.pretrained, weights=weights_note,
                              estimate_s=estimate["total_s"], seconds=round(time.perf_counter() - started, 1))
    finally:
        distributed.shutdown()


def _epoch_internals(config, parts, ctx, device, out_dir):
    """Internals over time for models with class scores (classify, segment): heatmaps of fixed
    validation pictures and the activation statistics' summary, every epoch (internals.py);
    None for other tasks, or with extra.internals = false."""
    labels = parts.info.get("classes") or parts.info.get("codes")
    if not (ctx.is_main and labels and config.extra.get("internals", True)):
        return None
    inputs, _ = fixed_pictures(parts.valid_ds, PICTURES, config.seed)
    return EpochInternals(out_dir, inputs, parts.info["mean"], parts.info["std"], labels, device)


def _choose_lr(config, learner, ctx, device, report) -> float:
    """config.lr, or with lr null (automatic) the LR finder's suggestion, found on the head
    alone when the body is pretrained. Loops of their own choose their rate themselves."""
    if config.lr is not None:
        return config.lr
    if not get_task(config.task).lr_finder:
        lr = RunConfig.defaults_for(config.task)["lr"]
        report.log(f"The {config.task} task has no learning-rate finder; training with its default rate {lr:g}")
        return lr
    if config.pretrained and config.freeze_epochs > 0:
        learner.freeze()
    found = learner.lr_find()
    lr = found["suggestion"]
    if ctx.enabled:
        lr = distributed.broadcast_float(lr, device)
    report.log(f"LR finder suggests {lr:.2e} ({RULES[found['rule']]}); training with it")
    return lr


def _epoch_end_work(sample_fn, internals=None):
    """What every epoch ends with, done once for the rehearsal to time: last.pt (weights and the
    optimiser's state), two weights-only files (best.pt, the epoch's kept weights) written to a
    scratch folder, the sample grid and the heatmaps. Left out of the estimate, a one-minute run
    of 14 short epochs overran its budget by the 0.45 s each epoch spent on them."""

    def work(learner):
        with tempfile.TemporaryDirectory() as scratch:  # through the writer the epochs use
            save_torch(learner.state(), Path(scratch) / "last.pt")
            for name in ("best.pt", "epoch.pt"):
                save_torch(learner.unwrapped.state_dict(), Path(scratch) / name)
        if sample_fn is not None:
            learner.sample_with(sample_fn)  # as EpochSamples draws it: in parts once memory ran out
        if internals is not None:
            internals.draw(learner.unwrapped)

    return work


def _rehearse(config, learner, checkpoint, started, ctx=None, sample_fn=None, internals=None) -> tuple:
    """Before the first step: a trial batch at the run's sizes (memory guardrail) that also times
    the run, its epochs' ends included; with `budget_s`, the epochs that fit the budget. Returns
    (config, estimate), the estimate with the lines for the run's log."""
    lines = []
    learner.log = lines.append
    timing = learner.rehearse(epoch_end=_epoch_end_work(sample_fn, internals))
    epoch_s = learner.estimate_epoch_s(timing)
    setup_s = time.perf_counter() - started
    if checkpoint is not None:  # a resumed run keeps the plan it started with
        config = dataclasses.replace(config, epochs=checkpoint.get("config", {}).get("epochs", config.epochs))
    elif config.budget_s is not None and not config.extra.get("progressive"):
        finder_s = budget.LR_FINDER_BATCHES * timing["train_batch_s"] if config.lr is None else 0.0
        epochs = budget.plan_epochs(config.budget_s, setup_s + finder_s, epoch_s)
        if ctx is not None and ctx.enabled:  # every rank must run the same epochs: rank 0's choice
            epochs = round(distributed.broadcast_float(float(epochs), learner.device))
        config = dataclasses.replace(config, epochs=epochs)
        lines.append(f"budget about {budget.clock(config.budget_s)}: {epochs} epochs of about {epoch_s:.1f} s")
    estimate = budget.estimate(setup_s, epoch_s, config.epochs, timing["train_batch_s"], config.lr is None)
    lines.append(f"estimate: about {budget.clock(estimate['total_s'])} in all ({config.epochs} epochs of about "
                 f"{epoch_s:.1f} s, measured on {learner.device} before the first step; setup {setup_s:.1f} s)")
    estimate["log"] = lines
    return config, estimate


def estimate_run(config, device=None, started: float | None = None) -> dict:
    """The run's time before Start, measured on this device: build its parts, rehearse a few
    batches, and say how long it would take (with `budget_s`, for the epochs the budget sets).
    Nothing is written; "auto" weights count only when they are on this machine. `started` as
    for fit(): an estimate job's worker starts as the run's will, so its setup counts alike."""
    started = started if started is not None else time.perf_counter()
    config = _as_config(config)
    config = config.with_pretrained(config.pretrained_here())
    if get_task(config.task).own_fit(config) is not None:
        raise ConfigError(f"The {config.task} task runs a loop of its own, which has no estimate yet.")
    ctx, device, parts, learner = _build(config, device)
    try:
        internals = _epoch_internals(config, parts, ctx, device, out_dir=None)
        config, estimate = _rehearse(config, learner, None, started, ctx, parts.sample_fn, internals)
        return {**{k: v for k, v in estimate.items() if k != "log"}, "device": str(device),
                "batches_per_epoch": len(learner.train_dl), "image_size": config.image_size,
                "batch_size": config.batch_size}
    finally:
        distributed.shutdown()


def _fmt(lr) -> str:
    if isinstance(lr, slice):
        return f"{lr.start:.2e}..{lr.stop:.2e}"
    return f"{lr:.2e}"
