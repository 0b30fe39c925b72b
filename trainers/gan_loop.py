"""The GAN trainer: a generator and a critic taking turns, with the Learner's events.

`GANTrainer` runs one loop for both GANs. Each training batch is one step of either the critic
or the generator; a *switcher* says whose turn it is:

- `FixedSwitcher(n_critic, n_gen)`: n_critic critic steps, then n_gen generator steps, and again
  (the WGAN paper trains the critic 5 times per generator step).
- `ThresholdSwitcher(critic_threshold, gen_threshold, max_steps)`: fastai's adaptive switcher.
  The critic trains until its loss falls below critic_threshold, then the generator trains until
  its loss falls below gen_threshold (None: for one step), and so on. Unlike fastai's, either
  side hands over after max_steps steps at most, so a critic that never reaches the threshold
  cannot stop the generator from learning.

An *objective* says what the two losses are (WassersteinObjective, RestorationObjective) and how a
batch becomes (generator input, real images as the critic sees them, target).

Callbacks are the Learner's (trainers.callbacks): the trainer has the attributes they read
(model = the generator, epoch, batch_index, batches, loss_value, batch_lr, epoch_metrics, stop,
save). `loss_value` is the generator's latest loss: the per-batch curve of a GAN run is the
generator's. `run_gan` is fit() for these tasks, on the same RunHarness (run_harness.py).
The GAN loop runs in float32 on every device (no autocast): the gradient penalty's double
backward and the critic's small scores are where reduced precision hurts first.
"""
import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .callbacks import Callback, CallbackHost, rng_state, seed_everything, set_rng_state
from .errors import ConfigError
from .reporting import Reporter
from .run_harness import RunHarness, RunResult

CRITIC, GENERATOR = "critic", "generator"


# --- switchers ------------------------------------------------------------------
class FixedSwitcher:
    def __init__(self, n_critic: int = 1, n_gen: int = 1):
        if n_critic < 1 or n_gen < 1:
            raise ConfigError("A fixed switcher needs at least one critic step and one generator step per round.")
        self.n_critic, self.n_gen = n_critic, n_gen
        self.mode, self.count = CRITIC, 0

    def describe(self) -> str:
        return f"fixed: {self.n_critic} critic step(s), then {self.n_gen} generator step(s)"

    def after_step(self, loss: float) -> str:
        self.count += 1
        if self.count >= (self.n_critic if self.mode == CRITIC else self.n_gen):
            self.mode, self.count = (GENERATOR if self.mode == CRITIC else CRITIC), 0
        return self.mode

    def state_dict(self):
        return {"mode": self.mode, "count": self.count}

    def load_state_dict(self, state):
        self.mode, self.count = state["mode"], state["count"]


class ThresholdSwitcher(FixedSwitcher):
    def __init__(self, critic_threshold: float = 0.65, gen_threshold: float | None = None, max_steps: int = 20):
        if max_steps < 1:
            raise ConfigError("'extra.switch_max_steps' must be at least 1.")
        self.critic_threshold, self.gen_threshold, self.max_steps = critic_threshold, gen_threshold, max_steps
        self.mode, self.count = CRITIC, 0

    def describe(self) -> str:
        gen = "one step" if self.gen_threshold is None else f"its loss < {self.gen_threshold}"
        return (f"threshold: critic until its loss < {self.critic_threshold}, generator until {gen}; "
                f"at most {self.max_steps} steps each")

    def after_step(self, loss: float) -> str:
        self.count += 1
        threshold = self.critic_threshold if self.mode == CRITIC else self.gen_threshold
        if threshold is None or loss < threshold or self.count >= self.max_steps:
            self.mode, self.count = (GENERATOR if self.mode == CRITIC else CRITIC), 0
        return self.mode


# --- objectives -----------------------------------------------------------------
def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al.): mean of (|grad critic(x)| - 1)^2 at random points x on the
    segments between real and fake images (one uniform mixing weight per image)."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    mixed = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grads,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()


class WassersteinObjective:
    """Critic: mean score of fakes minus mean score of reals (it learns to score reals high),
    plus either the gradient penalty (constraint "penalty", weight 10) or, after each critic step,
    clipping every critic weight to [-clip, clip] (constraint "clip", the original WGAN).
    Generator: minus the mean score of its fakes. Images are in [-1, 1]."""

    def __init__(self, constraint: str = "penalty", penalty_weight: float = 10.0, clip: float = 0.01):
        if constraint not in ("penalty", "clip"):
            raise ConfigError(f"'extra.constraint' must be \"penalty\" or \"clip\", not {constraint!r}.")
        self.constraint, self.penalty_weight, self.clip = constraint, penalty_weight, clip
        self.scores = {}
        self.fakes_in_eval_mode = False  # DCGAN: the generator draws with batch statistics throughout

    def describe(self) -> str:
        if self.constraint == "penalty":
            return f"Wasserstein loss with gradient penalty (weight {self.penalty_weight}) on real/fake interpolates"
        return f"Wasserstein loss with critic weights clipped to [-{self.clip}, {self.clip}]"

    def batch(self, batch, generator, device):
        real = batch[0].to(device) * 2 - 1
        return generator.noise(real.shape[0], device=device), real, None

    def critic_loss(self, critic, real, fake_output):
        real_score, fake_score = critic(real).mean(), critic(fake_output).mean()
        self.scores = {"wasserstein": (real_score - fake_score).item()}
        loss = fake_score - real_score
        if self.constraint == "penalty":
            loss = loss + self.penalty_weight * gradient_penalty(critic, real, fake_output)
        return loss

    @torch.no_grad()
    def after_critic_step(self, critic):
        if self.constraint == "clip":
            for p in critic.parameters():
                p.clamp_(-self.clip, self.clip)

    def generator_loss(self, critic, output, target):
        return -critic(output).mean()


class RestorationObjective:
    """The course's restoration GAN. Critic: binary cross-entropy, clean images labelled real
    and generator outputs fake. Generator: adversarial_weight x cross-entropy of its outputs
    labelled real + content_weight x the content loss (pixel L1 or feature loss) against the
    clean image, which keeps it faithful to its input (fastai's weights_gen=(1, 50)).
    The critic sees images in [-1, 1]."""

    def __init__(self, content_loss: nn.Module, content_weight: float = 50.0, adversarial_weight: float = 1.0):
        self.content_loss, self.content_weight, self.adversarial_weight = content_loss, content_weight, adversarial_weight
        self.scores = {}
        # The critic learns on what the generator gives at inference, and its no-grad passes
        # leave the generator's batch-norm statistics alone.
        self.fakes_in_eval_mode = True

    def describe(self) -> str:
        return (f"critic: BCE real/fake; generator: {self.adversarial_weight} x BCE + "
                f"{self.content_weight} x {getattr(self.content_loss, 'name', 'content loss')}")

    def batch(self, batch, generator, device):
        x, target = batch[0].to(device), batch[1].to(device)
        return x, target[:, 0] * 2 - 1, target

    def critic_loss(self, critic, real, fake_output):
        real_logits, fake_logits = critic(real), critic(fake_output * 2 - 1)
        right = (real_logits > 0).float().sum() + (fake_logits <= 0).float().sum()
        self.scores = {"train_critic_accuracy": (right / (2 * len(real))).item()}
        # The mean of the two halves, as fastai's (loss_real + loss_fake) / 2: chance is ln 2 = 0.69,
        # so the switcher's 0.65 threshold is reachable; a plain sum (1.39 at chance) never got
        # under it and the generator only trained every switch_max_steps steps.
        return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))) / 2

    def after_critic_step(self, critic):
        pass

    def generator_loss(self, critic, output, target):
        logits = critic(output.float() * 2 - 1)
        adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return self.adversarial_weight * adversarial + self.content_weight * self.content_loss(output.float(), target)


# --- the trainer ----------------------------------------------------------------
class GANTrainer(CallbackHost):
    def __init__(self, generator: nn.Module, critic: nn.Module, train_dl, objective, switcher,
                 opt_g, opt_c, device="cpu", seed: int = 42, validate_fn: Callable | None = None):
        self.device = torch.device(device)
        self.generator, self.critic = generator.to(self.device), critic.to(self.device)
        self.train_dl, self.objective, self.switcher = train_dl, objective, switcher
        self.opt_g, self.opt_c = opt_g, opt_c
        self.seed, self.validate_fn = seed, validate_fn
        self.callbacks = []
        self.epoch, self.stop = 0, False
        self.epoch_metrics, self.extra_state = {}, {}
        self.gen_loss = self.critic_loss = None  # latest values
        self.batch_log = []  # this epoch's per-batch record: step kind and both latest losses

    @property
    def model(self):
        """The generator: what callbacks sample from and what `model` in a checkpoint holds."""
        return self.generator

    unwrapped = model

    @property
    def loss_value(self) -> float:
        return self.gen_loss

    @property
    def batch_lr(self) -> float:
        return self.opt_g.param_groups[0]["lr"]

    # --- steps -----------------------------------------------------------------
    def _set_trainable(self, module, flag):
        for p in module.parameters():
            p.requires_grad_(flag)

    def critic_step(self, batch) -> float:
        gen_input, real, _ = self.objective.batch(batch, self.generator, self.device)
        self.generator.train(not self.objective.fakes_in_eval_mode)
        with torch.no_grad():
            fake = self.generator(gen_input)
        self.generator.train()
        self._set_trainable(self.critic, True)
        loss = self.objective.critic_loss(self.critic, real, fake)
        self.opt_c.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_c.step()
        self.objective.after_critic_step(self.critic)
        self.critic_loss = loss.item()
        return self.critic_loss

    def generator_step(self, batch, train: bool = True) -> float:
        gen_input, _, target = self.objective.batch(batch, self.generator, self.device)
        self._set_trainable(self.critic, False)  # no critic gradients in a generator step
        self.generator.train(train)  # a measuring pass (train=False) must not move batch-norm statistics
        with torch.set_grad_enabled(train):
            loss = self.objective.generator_loss(self.critic, self.generator(gen_input), target)
        self.generator.train()
        if train:
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        self.gen_loss = loss.item()
        return self.gen_loss

    # --- epochs ------------------------------------------------------------------
    def train_epoch(self, critic_only: bool = False) -> dict:
        """One pass over the data; returns the epoch's mean losses and step counts."""
        seed_everything(self.seed * 1000 + self.epoch)  # a resumed run sees the same batches
        self.generator.train()
        self.critic.train()
        self.batches = len(self.train_dl)
        sums = {CRITIC: 0.0, GENERATOR: 0.0}
        counts = {CRITIC: 0, GENERATOR: 0}
        scores = {}
        self.batch_log = []
        for self.batch_index, batch in enumerate(self.train_dl):
            if not critic_only:
                self.fire("before_batch")
                if self.stop:
                    break
            mode = CRITIC if critic_only else self.switcher.mode
            if mode == CRITIC:
                loss = self.critic_step(batch)
                for k, v in self.objective.scores.items():
                    scores.setdefault(k, []).append(v)
                if self.gen_loss is None:  # the curve needs a generator value from the start
                    self.generator_step(batch, train=False)
            else:
                loss = self.generator_step(batch)
            sums[mode] += loss
            counts[mode] += 1
            if not critic_only:
                self.switcher.after_step(loss)
                self.batch_log.append({"epoch": self.epoch + 1, "batch": self.batch_index + 1, "step": mode,
                                       "generator_loss": self.gen_loss, "critic_loss": self.critic_loss})
                self.fire("after_batch")
        means = {k: sums[k] / counts[k] if counts[k] else None for k in sums}
        return {"train_loss": means[GENERATOR] if means[GENERATOR] is not None else self.gen_loss,
                "critic_loss": means[CRITIC] if means[CRITIC] is not None else self.critic_loss,
                "generator_steps": counts[GENERATOR], "critic_steps": counts[CRITIC],
                **{k: sum(v) / len(v) for k, v in scores.items()}}

    def fit(self, epochs: int, first_epoch: int = 0):
        """Epochs first_epoch+1 .. epochs (counted from 1 in metrics, as the Learner does)."""
        self.stop = False
        self.fire("before_fit")
        try:
            for self.epoch in range(first_epoch, epochs):
                start = time.perf_counter()
                self.fire("before_epoch")
                train = self.train_epoch()
                if self.stop:
                    break
                valid = self.validate_fn(self) if self.validate_fn else {}
                self.epoch_metrics = {"epoch": self.epoch + 1, **train, **valid,
                                      "seconds": round(time.perf_counter() - start, 3)}
                self.fire("after_epoch")
        finally:
            self.fire("after_fit")
        return self

    # --- checkpoints ---------------------------------------------------------------
    def state(self, extra=None) -> dict:
        return {"model": self.generator.state_dict(), "critic": self.critic.state_dict(),
                "optimizer": self.opt_g.state_dict(), "critic_optimizer": self.opt_c.state_dict(),
                "switcher": self.switcher.state_dict(), "epoch": self.epoch + 1, "rng": rng_state(),
                "losses": {"generator": self.gen_loss, "critic": self.critic_loss},
                "metrics": dict(self.epoch_metrics), **self.extra_state, **(extra or {})}

    def load_state(self, state: dict):
        self.generator.load_state_dict(state["model"])
        self.critic.load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["optimizer"])
        self.opt_c.load_state_dict(state["critic_optimizer"])
        self.switcher.load_state_dict(state["switcher"])
        self.gen_loss, self.critic_loss = state["losses"]["generator"], state["losses"]["critic"]
        set_rng_state(state["rng"])


class BatchLosses(Callback):
    """Appends each epoch's per-batch record to RUN/gan_losses.jsonl (both losses after every step),
    when the epoch is recorded, so a repeated epoch is not written twice."""
    order = 25
    FILE = "gan_losses.jsonl"

    def __init__(self, out_dir):
        self.path = Path(out_dir) / self.FILE

    def after_epoch(self):
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in self.learner.batch_log)

    def keep_epochs_up_to(self, epoch: int):
        if self.path.is_file():
            rows = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["epoch"] <= epoch), encoding="utf-8")


# --- fit() for GAN tasks ----------------------------------------------------------
@dataclasses.dataclass
class GANParts:
    trainer: GANTrainer
    sample_fn: Callable           # generator -> PIL image
    monitor: str
    higher_is_better: bool
    info: dict
    critic_pretrain_epochs: int = 0
    notes: list = dataclasses.field(default_factory=list)  # lines for the run's log
    heldout: object = None  # a HeldoutSet scored every epoch (trainers/heldout.py), where there is one


def gan_loader(dataset, config, device):
    """Shuffled batches, the last partial one dropped (batch norm in the generator)."""
    if len(dataset) < config.batch_size:
        raise ConfigError(f"The batch size ({config.batch_size}) is larger than the training set "
                          f"({len(dataset)} items); use a batch size of at most {len(dataset)}.")
    return DataLoader(dataset, config.batch_size, shuffle=True, drop_last=True, num_workers=config.num_workers,
                      persistent_workers=config.num_workers > 0, pin_memory=device.type == "cuda")


def run_gan(config, out_dir, parts: GANParts, reporter: Reporter | None = None, resume: bool = False) -> RunResult:
    """Train a GAN task into `out_dir` (same files and result as trainers.fit, by the same harness)."""
    harness = RunHarness(config, out_dir, reporter, resume)
    trainer = parts.trainer
    batch_losses = BatchLosses(harness.out)
    lr = trainer.batch_lr
    trainer.extra_state = {"lr": lr, "task": config.task, "info": parts.info, "config": config.to_dict()}
    if harness.checkpoint is not None:
        trainer.load_state(harness.checkpoint)
        batch_losses.keep_epochs_up_to(harness.done)
    elif resume:  # no checkpoint yet: starting again, the first attempt's batches go
        batch_losses.keep_epochs_up_to(0)
    report = harness.open()
    trainer.add_callbacks([*harness.callbacks(parts.sample_fn, parts.monitor, parts.higher_is_better,
                                            heldout=parts.heldout), batch_losses])
    harness.start(trainer.device, len(trainer.train_dl), lr)
    report.log(f"{config.task} on {trainer.device}; {parts.info.get('train_count', '?')} training images; "
               f"lr {lr:.2e}; {len(trainer.train_dl)} batches per epoch")
    report.log(f"loss: {trainer.objective.describe()}")
    report.log(f"switcher: {trainer.switcher.describe()}")
    for line in parts.notes:
        report.log(line)
    if harness.checkpoint is None and parts.critic_pretrain_epochs:
        for i in range(parts.critic_pretrain_epochs):
            stats = trainer.train_epoch(critic_only=True)
            acc = stats.get("train_critic_accuracy")
            report.log(f"critic pretraining pass {i + 1}/{parts.critic_pretrain_epochs}: loss "
                       f"{stats['critic_loss']:.4f}" + (f", accuracy {acc:.1%}" if acc is not None else ""))
            if reporter is not None and reporter.should_stop():
                return harness.result("stopped", 0, trainer.device, lr)
        trainer.gen_loss = None  # measure the generator again against the pretrained critic
    trainer.fit(config.epochs, first_epoch=harness.done)
    return harness.finish(trainer, trainer.device, lr)
