"""gan: the course's restoration GAN, started from a finished `restore` run.

extra.generator_run names the restore run's folder (the studio accepts only the id of a completed
restore run and writes its folder here; the checkpoint is read with weights_only=True); its U-Net (best.pt, else last.pt) is the
generator, already trained with a pixel or feature loss. A critic (spectral norm, strided
convolutions, self-attention, no batch norm) first learns for extra.critic_pretrain_epochs
passes to tell the generator's outputs from the clean images; then both train, taking turns by
the switcher (gan_loop: "threshold" by default, as fastai's AdaptiveGANSwitcher, or "fixed").
The generator's loss is the adversarial loss plus content_weight x the content loss (as in the
restore run unless extra.loss says otherwise), which keeps it faithful to its input.

Per epoch: psnr, ssim and input_psnr of the generator on the validation pairs, critic_accuracy
(real clean images scored real and outputs scored fake, on the validation pairs), train_loss (the
generator's mean loss), critic_loss. The generator's PSNR before GAN training is logged and kept
in info["start_psnr"], so the cost of the adversarial sharpening can be read off.
"""

from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..callbacks import read_checkpoint
from ..config import RunConfig
from ..device import pick_device
from ..errors import ConfigError
from ..gan_loop import FixedSwitcher, GANParts, GANTrainer, RestorationObjective, ThresholdSwitcher, gan_loader, run_gan
from ..heldout import gan_stop_epoch
from ..image_metrics import psnr, ssim
from ..models.gan import Critic
from ..paired_data import read_scale, scan_pairs
from ..tiling import tiled
from .registry import register
from .base import RUN_SETTINGS, Setting, Task, own_loop_only
from .restore import (
    LOSSES,
    RESTORE_SETTINGS,
    checkpoint_unet_settings,
    choose_loss,
    heldout_grid,
    restore_datasets,
    restore_heldout,
    restore_network,
)

SWITCHERS = ("threshold", "fixed")
DEFAULT_LR = 1e-4
# Above this a spectrally normalised critic stayed at chance in bench/gan_quality.py (3e-3, the
# RunConfig default, against 1e-4), so the run's log says so.
HIGH_LR = 1e-3


def lr_note(lr: float) -> list:
    """A log line for a learning rate at which the critic is unlikely to learn; none otherwise."""
    if lr <= HIGH_LR:
        return []
    return [
        f"lr {lr:g} is high for a GAN: at 3e-3 the bench's critic stayed at chance (50% accuracy) where "
        f"at {DEFAULT_LR:g} it learned; leave lr out (or null) for the task's default"
    ]


def generator_checkpoint(run_dir) -> tuple:
    """(restore RunConfig, checkpoint dict) of a restore run folder, or a clear error."""
    if not isinstance(run_dir, str) or not run_dir:
        raise ConfigError("The gan task needs 'extra.generator_run': the id of a completed restore run.")
    run = Path(run_dir)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"{run.name!r} is not a run (no config.json): 'extra.generator_run' must name a restore run.")
    restore_config = RunConfig.load(config_path)
    if restore_config.task != "restore":
        raise ConfigError(f"Run {run.name} is a {restore_config.task!r} run; the gan task starts from a restore run.")
    for name in ("best.pt", "last.pt"):
        path = run / "checkpoints" / name
        if path.is_file():
            return restore_config, read_checkpoint(path, f"the generator checkpoint of run {run.name}")
    raise ConfigError(
        f"The restore run {run.name} has no checkpoint yet (checkpoints/best.pt or last.pt); "
        f"let it finish an epoch first."
    )


SETTINGS = (
    Setting(
        "generator_run",
        str,
        None,
        "The finished restore run whose U-Net the GAN starts from and keeps "
        "improving (train a restore run first if there is none).",
        label="Generator",
        widget="run",
        runs_of=("restore",),
        required=True,
        main=True,
    ),
    Setting(
        "switcher",
        str,
        "threshold",
        "Whose turn it is: fastai's adaptive threshold switcher, or a fixed number of critic and generator steps.",
        choices=SWITCHERS,
    ),
    Setting(
        "loss",
        str,
        None,
        "The content loss: feature (VGG), pixel L1 or ssim (L1 + SSIM); left out, the restore run's.",
        choices=LOSSES,
        optional=True,
    ),
    Setting(
        "gen_threshold",
        float,
        None,
        "Threshold switcher: the generator trains until its loss is below this (left out: for one step).",
        optional=True,
    ),
    Setting("critic_threshold", float, 0.65, "Threshold switcher: the critic trains until its loss is below this."),
    Setting("switch_max_steps", int, 20, "Threshold switcher: the most steps either side takes in a row.", low=1),
    Setting("n_critic", int, 1, "Fixed switcher: critic steps per round.", low=1),
    Setting("n_gen", int, 1, "Fixed switcher: generator steps per round.", low=1),
    Setting("content_weight", float, 50.0, "Weight of the content loss in the generator's loss.", low=0),
    Setting("adversarial_weight", float, 1.0, "Weight of the critic's verdict in the generator's loss.", low=0),
    Setting("critic_pretrain_epochs", int, 1, "Passes that train the critic alone before the game starts.", low=0),
    Setting("critic_width", int, 64, "Channels of the critic's first layer.", low=1),
    Setting("critic_self_attention", bool, True, "A self-attention layer in the critic."),
    # the training pairs are drawn as the restore task draws them (restore_datasets)
    *(s for s in RESTORE_SETTINGS if s.name in ("pairs", "crops_per_epoch", "flip")),
)


def _settings(config) -> dict:
    return {s.name: s.read(config.extra) for s in SETTINGS}


@register
class RestorationGAN(Task):
    name = "gan"
    default_monitor = "psnr"
    dataset_kinds = ("restore",)
    try_view, try_button = "before_after", "Restore"  # the generator is its restore run's U-Net
    try_about = "Upload a damaged or small picture: before and after, from the GAN's generator."

    def suggest_epoch(self, record):
        """The GAN's stopping rule (trainers.heldout.gan_stop_epoch), not the score's argmax."""
        return gan_stop_epoch(record), "GAN rule: first epoch within 0.1 dB of the best held-out PSNR"

    def smoke_config(self, data, train):
        from .registry import get_task

        generator_run = train(get_task("restore").smoke_config(data, train))
        return {
            **super().smoke_config(data, train),
            "extra": {
                "generator_run": str(generator_run),
                "critic_width": 8,
                "switcher": "fixed",
                "n_critic": 1,
                "n_gen": 1,
                "crops_per_epoch": 8,
            },
        }

    def model_from_checkpoint(self, config, info):
        # the restore run's network: info["net"] (and info["unet"]) say which and how it was built
        return restore_network(config.get("arch", "resnet18"), info, config.get("extra") or {})

    common_settings = RUN_SETTINGS  # its own loop (gan_loop.run_gan), not the Learner's
    defaults = {"lr": None}  # DEFAULT_LR: RunConfig's 3e-3 kept the critic at chance
    own_lr = f"{DEFAULT_LR:g}"
    lr_finder = False  # its own loop: two networks, two optimisers
    settings_spec = SETTINGS

    def validate(self, config):
        _settings(config)
        restore_config, checkpoint = generator_checkpoint(config.extra.get("generator_run"))
        scale = read_scale(config.data)
        gen_scale = checkpoint.get("info", {}).get("scale", 1)
        if scale != gen_scale:
            raise ConfigError(
                f"The dataset's scale ({scale}) differs from the generator's ({gen_scale}); "
                f"use the restore run's kind of pairs."
            )
        if config.image_size % scale:
            raise ConfigError(f"The image size ({config.image_size}) must be a multiple of the scale ({scale}).")
        scan_pairs(config.data, "crappy", "clean", config.valid_pct, config.seed)

    def build(self, config, device):
        own_loop_only(self.name)

    def own_fit(self, config):
        return self.fit

    def fit(self, config, out_dir, reporter=None, resume=False, device=None):
        s = _settings(config)
        device = device if isinstance(device, torch.device) else pick_device(device)
        restore_config, checkpoint = generator_checkpoint(config.extra["generator_run"])
        info = checkpoint.get("info", {})
        mean, std, scale = info["mean"], info["std"], info.get("scale", 1)
        torch.manual_seed(config.seed)
        generator = restore_network(restore_config.arch, info, restore_config.extra)
        generator.load_state_dict(checkpoint["model"])
        critic = Critic(config.image_size, s["critic_width"], spectral=True, self_attention=s["critic_self_attention"])

        # The restore run's pairs: fresh from the recipe when the dataset has one; whole held-out
        # pictures, tiled at this run's image size, for validation and samples.
        train, valid = scan_pairs(config.data, "crappy", "clean", config.valid_pct, config.seed)
        train_ds, valid_ds, _ = restore_datasets(config, scale, mean, std, train, valid)
        valid_dl = DataLoader(valid_ds, 1, shuffle=False, num_workers=config.num_workers)
        tile = config.image_size // scale

        kind = (info.get("net") or {"kind": "unet"})["kind"]
        if kind == "unet" and "unet" not in info:  # a run from before info["unet"]: its extra says how
            info = {**info, "unet": checkpoint_unet_settings(info, restore_config.extra)}
        content, note = choose_loss(s["loss"] if s["loss"] is not None else restore_config.extra.get("loss"), kind)
        objective = RestorationObjective(content.to(device), s["content_weight"], s["adversarial_weight"])
        if s["switcher"] == "threshold":
            switcher = ThresholdSwitcher(s["critic_threshold"], s["gen_threshold"], s["switch_max_steps"])
        else:
            switcher = FixedSwitcher(s["n_critic"], s["n_gen"])
        lr = config.lr if config.lr is not None else DEFAULT_LR
        # fastai's GAN optimiser: Adam without momentum's lag (beta1 = 0), which GANs prefer.
        opt_g = torch.optim.Adam(generator.parameters(), lr, betas=(0.0, 0.99))
        opt_c = torch.optim.Adam(critic.parameters(), lr, betas=(0.0, 0.99))
        trainer = GANTrainer(
            generator,
            critic,
            gan_loader(train_ds, config, device),
            objective,
            switcher,
            opt_g,
            opt_c,
            device=device,
            seed=config.seed,
            validate_fn=lambda t: evaluate(t.generator, t.critic, valid_dl, device, tile, scale),
        )
        start = evaluate(trainer.generator, None, valid_dl, device, tile, scale)
        info = {
            **info,
            "generator_run": str(config.extra["generator_run"]),
            "start_psnr": start["psnr"],
            "content_loss": note,
            "train_count": len(train),
            "valid_count": len(valid),
            "image_size": config.image_size,
            "arch": restore_config.arch,
        }
        heldout = restore_heldout(valid_ds, config.sample_count, config.seed, device, tile, scale)
        parts = GANParts(
            trainer,
            heldout_grid(heldout),
            heldout=heldout,
            monitor=config.monitor or self.default_monitor,
            higher_is_better=True,
            info=info,
            critic_pretrain_epochs=s["critic_pretrain_epochs"],
            notes=[
                f"generator from {config.extra['generator_run']}: validation PSNR {start['psnr']:.2f} dB "
                f"(input {start['input_psnr']:.2f} dB) before GAN training",
                *lr_note(lr),
            ],
        )
        return run_gan(config, out_dir, parts, reporter, resume)


@torch.no_grad()
def evaluate(generator, critic, valid_dl, device, tile, scale=1) -> dict:
    """PSNR/SSIM of the generator (whole pictures in tiles of `tile` input pixels, as restore's
    validation and Try) and of the input over the validation pairs; the critic's accuracy at
    telling clean images (logit > 0) from outputs (logit <= 0), when given."""
    was = generator.training
    generator.eval()
    if critic is not None:
        critic.eval()
    totals = {"psnr": 0.0, "ssim": 0.0, "input_psnr": 0.0}
    right = count = 0
    for x, target in valid_dl:
        x, target = x.to(device), target.to(device)
        out = tiled(generator, x, tile, scale=scale).clamp(0, 1)
        clean, baseline = target[:, 0], target[:, 1]
        totals["psnr"] += psnr(out, clean).sum().item()
        totals["ssim"] += ssim(out, clean).sum().item()
        totals["input_psnr"] += psnr(baseline, clean).sum().item()
        if critic is not None:
            right += (critic(clean * 2 - 1) > 0).sum().item() + (critic(out * 2 - 1) <= 0).sum().item()
        count += len(x)
    generator.train(was)
    if critic is not None:
        critic.train()
    results = {k: v / max(count, 1) for k, v in totals.items()}
    if critic is not None:
        results["critic_accuracy"] = right / max(2 * count, 1)
    return results
