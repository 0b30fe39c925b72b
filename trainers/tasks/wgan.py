"""wgan: a DCGAN-style generator learns to draw images like a folder of photos, from noise.

Trained the Wasserstein way with the gradient penalty by default (Gulrajani et al.; critic
without batch norm or spectral norm, Adam with betas (0, 0.9), 5 critic steps per generator
step); extra.constraint = "clip" gives the original WGAN instead (weights clipped to
[-0.01, 0.01], RMSprop). The per-epoch grid draws the same latent points every epoch (a fixed,
seeded noise batch), so epoch N and epoch M can be compared image by image.
"""

import math

import torch

from ..device import pick_device
from ..errors import ConfigError
from ..gan_loop import FixedSwitcher, GANParts, GANTrainer, WassersteinObjective, gan_loader, run_gan
from ..grid import grid, to_pil
from ..image_folder import ImageFolderSet, scan_images
from ..models.gan import Critic, Generator
from .registry import register
from .base import RUN_SETTINGS, Setting, Task, own_loop_only

DEFAULT_LR = {"penalty": 1e-4, "clip": 5e-5}


@register
class WGAN(Task):
    name = "wgan"
    default_monitor = "epoch"
    dataset_kinds = ("images",)
    try_view, try_inputs, try_button = "drawn", ("seed", "count"), "Generate"
    try_about = "No picture needed: choose a seed and a count. The same seed always draws the same pictures."

    def smoke_config(self, data, train):
        return {
            **super().smoke_config(data, train),
            "image_size": 16,
            "lr": 2e-4,
            "extra": {"width": 8, "latent": 16, "images_per_epoch": 8, "n_critic": 1},
        }

    def model_from_checkpoint(self, config, info):
        return Generator(int(info["image_size"]), int(info["latent"]), int(info["width"]))

    # lr null: the constraint's own default (DEFAULT_LR); 64 px is DCGAN's size and quick on a CPU.
    defaults = {"lr": None, "image_size": 64}
    own_lr = f"{DEFAULT_LR['penalty']:g} with the gradient penalty, {DEFAULT_LR['clip']:g} with weight clipping"
    common_settings = RUN_SETTINGS  # its own loop, not the Learner's
    lr_finder = False  # its own loop: two networks, two optimisers
    settings_spec = (
        Setting(
            "constraint",
            str,
            "penalty",
            "How the critic is kept 1-Lipschitz: the gradient penalty "
            "(WGAN-GP) or weight clipping (the original WGAN).",
            choices=("penalty", "clip"),
        ),
        Setting("latent", int, 100, "Length of the noise vector the generator draws from.", low=1),
        Setting("width", int, 64, "Channels of the generator's and critic's widest layer.", low=1),
        Setting("n_critic", int, 5, "Critic steps per generator step.", low=1),
        Setting("images_per_epoch", int, 512, "Images drawn (with repeats) per epoch.", low=1),
        Setting("clip", float, 0.01, "With clipping: critic weights are clamped to [-clip, clip].", low=0),
        Setting("penalty_weight", float, 10.0, "With the penalty: its weight.", low=0),
        Setting("flip", bool, True, "Random horizontal flips in training."),
    )

    def settings(self, config) -> dict:
        size = config.image_size
        if size & (size - 1):
            raise ConfigError(f"For wgan, 'image_size' must be a power of two (16, 32, 64, 128...), not {size}.")
        return self.read_settings(config)

    def validate(self, config):
        settings = self.settings(config)
        paths = scan_images(config.data)
        if config.batch_size > max(len(paths), settings["images_per_epoch"]):
            raise ConfigError(
                f"The batch size ({config.batch_size}) is larger than an epoch "
                f"({settings['images_per_epoch']} images); lower it or raise 'extra.images_per_epoch'."
            )

    def build(self, config, device):
        own_loop_only(self.name)

    def own_fit(self, config):
        return self.fit

    def fit(self, config, out_dir, reporter=None, resume=False, device=None):
        s = self.settings(config)
        device = device if isinstance(device, torch.device) else pick_device(device)
        torch.manual_seed(config.seed)  # the same initial weights on every rerun
        paths = scan_images(config.data)
        dataset = ImageFolderSet(
            paths, config.image_size, train=True, augment=config.augment, flip=s["flip"], length=s["images_per_epoch"]
        )
        generator = Generator(config.image_size, s["latent"], s["width"])
        critic = Critic(config.image_size, s["width"], spectral=False)
        lr = config.lr if config.lr is not None else DEFAULT_LR[s["constraint"]]
        if s["constraint"] == "penalty":
            opt_g = torch.optim.Adam(generator.parameters(), lr, betas=(0.0, 0.9))
            opt_c = torch.optim.Adam(critic.parameters(), lr, betas=(0.0, 0.9))
        else:
            opt_g = torch.optim.RMSprop(generator.parameters(), lr)
            opt_c = torch.optim.RMSprop(critic.parameters(), lr)
        objective = WassersteinObjective(s["constraint"], s["penalty_weight"], s["clip"])
        trainer = GANTrainer(
            generator,
            critic,
            gan_loader(dataset, config, device),
            objective,
            FixedSwitcher(s["n_critic"], 1),
            opt_g,
            opt_c,
            device=device,
            seed=config.seed,
        )
        info = {
            "image_size": config.image_size,
            "latent": s["latent"],
            "width": s["width"],
            "output_range": [-1, 1],
            "train_count": len(paths),
            "constraint": s["constraint"],
        }
        parts = GANParts(
            trainer,
            FixedNoiseSampler(generator, max(config.sample_count, 1), config.seed, device),
            monitor="epoch",
            higher_is_better=True,
            info=info,
        )
        return run_gan(config, out_dir, parts, reporter, resume)


class FixedNoiseSampler:
    """A grid of what the generator draws from the same latent points every epoch (seeded by the
    config's seed), in eval mode so each image depends on its own latent point only."""

    def __init__(self, generator, count, seed, device):
        self.latents = generator.noise(count, torch.Generator().manual_seed(seed), device)

    @torch.inference_mode()
    def __call__(self, generator):
        was_training = generator.training
        generator.eval()
        images = generator(self.latents).float().cpu()
        generator.train(was_training)
        # square (4 x 4 for the default 16) with tiles of at least 128 px: a strip of 64 px
        # thumbnails shows nothing once the page fits it to its width
        return grid([to_pil((x + 1) / 2) for x in images], columns=math.ceil(math.sqrt(len(images))), min_side=128)
