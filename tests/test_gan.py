"""GANs: spectral norm, switchers, the Wasserstein constraints, and wgan/gan runs through fit."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainers import ConfigError, fit
from trainers.gan_loop import (CRITIC, GENERATOR, FixedSwitcher, GANTrainer, ThresholdSwitcher, WassersteinObjective,
                               gradient_penalty)
from trainers.models.gan import Critic, Generator, spectrally_normalised_layers
from trainers.tasks import wgan as wgan_task
from test_restore import restore_config, write_pairs


pytestmark = pytest.mark.usefixtures("one_thread")


def write_images(root: Path, n=8, size=24, seed=0) -> Path:
    """A folder of images (dataset kind "images"): coloured blobs on gradients."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        pixels = rng.uniform(40, 200, 3) + 60 * np.stack([xx, yy, xx * yy], -1)
        y, x = rng.integers(0, size - 8, 2)
        pixels[y:y + 8, x:x + 8] = rng.uniform(0, 255, 3)
        Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(root / f"{i:02d}.png")
    (root / "dataset.json").write_text(json.dumps({"kind": "images", "counts": {"images": n}}))
    return root


def rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def test_critic_weights_are_spectrally_normalised():
    torch.manual_seed(0)
    critic = Critic(size=32, width=16, spectral=True, self_attention=True)
    layers = spectrally_normalised_layers(critic)
    convs = [m for m in critic.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))]
    assert len(layers) == len(convs) == 4 + 3  # 3 strided + final conv, and attention's query/key/value
    with torch.no_grad():  # raw weights far from norm 1, whatever the initialisation gave
        for layer in layers:
            layer.parametrizations.weight.original.mul_(3)
    for _ in range(30):  # each training forward runs one power iteration per layer
        critic(torch.randn(2, 3, 32, 32))
    for layer in layers:
        raw = layer.parametrizations.weight.original.flatten(1)
        normalised = layer.weight.flatten(1)
        assert torch.linalg.matrix_norm(raw, ord=2).item() > 1.5  # the raw weights are not
        assert torch.linalg.matrix_norm(normalised, ord=2).item() == pytest.approx(1.0, abs=0.03)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())


def test_critic_scores_any_size_and_generator_draws_its_size():
    critic, generator = Critic(size=32, width=8), Generator(size=32, latent=16, width=8)
    assert critic(torch.randn(3, 3, 40, 28)).shape == (3,)
    assert generator(generator.noise(2)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="power of two"):
        Generator(size=48)


def test_fixed_switcher_alternates_n_critic_then_n_gen():
    switcher = FixedSwitcher(n_critic=3, n_gen=2)
    modes = [switcher.mode]
    for _ in range(10):
        modes.append(switcher.after_step(1.0))
    assert "".join(m[0] for m in modes[:11]) == "cccggcccggc"


def test_threshold_switcher_hands_over_below_threshold_or_after_max_steps():
    switcher = ThresholdSwitcher(critic_threshold=0.65, gen_threshold=None, max_steps=4)
    assert switcher.mode == CRITIC
    assert switcher.after_step(0.9) == CRITIC      # still above the threshold
    assert switcher.after_step(0.5) == GENERATOR   # below: the generator's turn
    assert switcher.after_step(3.0) == CRITIC      # gen_threshold None: one generator step
    assert [switcher.after_step(0.9) for _ in range(4)] == [CRITIC, CRITIC, CRITIC, GENERATOR]  # capped
    switcher = ThresholdSwitcher(critic_threshold=0.65, gen_threshold=2.0, max_steps=20)
    switcher.after_step(0.1)
    assert [switcher.after_step(v) for v in (3.0, 2.5, 1.5)] == [GENERATOR, GENERATOR, CRITIC]
    state = switcher.state_dict()
    other = ThresholdSwitcher()
    other.load_state_dict(state)
    assert other.mode == switcher.mode and other.count == switcher.count


def test_weight_clipping_keeps_every_critic_weight_within_the_clip(tmp_path):
    torch.manual_seed(0)
    generator, critic = Generator(16, 8, 8), Critic(16, 8, spectral=False)
    images = torch.rand(8, 3, 16, 16)
    loader = [(images[i:i + 4], images[i:i + 4]) for i in (0, 4)]
    trainer = GANTrainer(generator, critic, loader, WassersteinObjective("clip", clip=0.01), FixedSwitcher(5, 1),
                         torch.optim.RMSprop(generator.parameters(), 1e-3),
                         torch.optim.RMSprop(critic.parameters(), 0.5))  # a big step pushes weights past the clip
    for batch in loader * 2:
        trainer.critic_step(batch)
    weights = torch.cat([p.detach().flatten() for p in critic.parameters()])
    assert weights.abs().max().item() <= 0.01 + 1e-9
    assert (weights.abs() > 0.0099).float().mean() > 0.5  # the clip did the work


def test_gradient_penalty_is_taken_on_interpolates_between_real_and_fake():
    seen = []

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((3 * 4 * 4,), 0.5))

        def forward(self, x):
            seen.append(x.detach().clone())
            return x.flatten(1) @ self.w

    torch.manual_seed(1)
    real, fake = torch.rand(6, 3, 4, 4), torch.rand(6, 3, 4, 4) - 1
    penalty = gradient_penalty(Recording(), real, fake)
    (mixed,) = seen
    # Each recorded image is eps*real + (1-eps)*fake with one eps per image, 0 <= eps <= 1.
    eps = ((mixed - fake) / (real - fake)).flatten(1)
    assert torch.allclose(eps, eps[:, :1].expand_as(eps), atol=1e-4)
    assert ((eps >= 0) & (eps <= 1)).all() and eps[:, 0].std() > 0
    # A linear critic's gradient is w everywhere: the penalty is (|w| - 1)^2.
    assert penalty.item() == pytest.approx((0.5 * 48 ** 0.5 - 1) ** 2, rel=1e-5)


def test_wgan_run_writes_grids_of_the_same_latents_and_both_losses(tmp_path, monkeypatch):
    data = write_images(tmp_path / "images")
    inputs = []

    class Recording(wgan_task.FixedNoiseSampler):
        def __call__(self, generator):
            handle = generator.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach().clone()))
            try:
                return super().__call__(generator)
            finally:
                handle.remove()

    monkeypatch.setattr(wgan_task, "FixedNoiseSampler", Recording)
    config = {"task": "wgan", "data": str(data), "epochs": 2, "batch_size": 4, "image_size": 16, "lr": 2e-4,
              "sample_count": 4, "extra": {"width": 8, "latent": 16, "images_per_epoch": 24, "n_critic": 2}}
    result = fit(config, tmp_path / "run")
    assert result["status"] == "completed" and result["epochs_done"] == 2
    run = tmp_path / "run"
    grids = [Image.open(run / "samples" / f"epoch_{e:03d}.png") for e in (1, 2)]
    # 4 samples as a 2 x 2 square, each 16 px picture enlarged to 128 px so that it can be seen.
    assert grids[0].size == grids[1].size == (2 * (128 + 4) + 4, 2 * (128 + 4) + 4)
    assert len(inputs) == 2 and torch.equal(inputs[0], inputs[1])  # the same latent points
    assert not np.array_equal(np.asarray(grids[0]), np.asarray(grids[1]))  # drawn by a generator that learned
    metrics = rows(run / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [1, 2]
    for m in metrics:
        assert {"train_loss", "critic_loss", "seconds", "wasserstein"} <= set(m)
        assert m["critic_steps"] == 4 and m["generator_steps"] == 2  # 6 batches at 2 critic : 1 generator
    batches = rows(run / "gan_losses.jsonl")
    assert len(batches) == 12 and all(b["generator_loss"] is not None and b["critic_loss"] is not None for b in batches)
    assert "gradient penalty" in (run / "log.txt").read_text()
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert {"model", "critic", "switcher"} <= set(checkpoint) and checkpoint["info"]["latent"] == 16


def test_wgan_resume_repeats_nothing_and_continues(tmp_path):
    data = write_images(tmp_path / "images")
    config = {"task": "wgan", "data": str(data), "epochs": 1, "batch_size": 4, "image_size": 16, "lr": 2e-4,
              "extra": {"width": 8, "latent": 16, "images_per_epoch": 8}}
    fit(config, tmp_path / "run")
    result = fit(dict(config, epochs=2), tmp_path / "run", resume=True)
    assert result["epochs_done"] == 2
    assert [m["epoch"] for m in rows(tmp_path / "run" / "metrics.jsonl")] == [1, 2]
    assert sorted({b["epoch"] for b in rows(tmp_path / "run" / "gan_losses.jsonl")}) == [1, 2]


def test_wgan_refuses_bad_settings(tmp_path):
    data = write_images(tmp_path / "images")
    base = {"task": "wgan", "data": str(data), "epochs": 1, "batch_size": 4, "image_size": 16}
    with pytest.raises(ConfigError, match="power of two"):
        fit(dict(base, image_size=24), tmp_path / "a")
    with pytest.raises(ConfigError, match="constraint"):
        fit(dict(base, extra={"constraint": "both"}), tmp_path / "b")


def test_restoration_gan_starts_from_a_restore_run_and_records_both_losses(tmp_path):
    data = write_pairs(tmp_path / "pairs", n=12)
    fit(restore_config(data, epochs=1, batch_size=4, augment=False), tmp_path / "restore")
    config = {"task": "gan", "data": str(data), "epochs": 2, "batch_size": 4, "image_size": 32, "lr": 1e-4,
              "augment": False, "extra": {"generator_run": str(tmp_path / "restore"), "critic_width": 8,
                                          "switcher": "fixed", "n_critic": 1, "n_gen": 1, "crops_per_epoch": 8}}
    result = fit(config, tmp_path / "gan")
    assert result["status"] == "completed" and result["monitor"] == "psnr"
    metrics = rows(tmp_path / "gan" / "metrics.jsonl")
    for m in metrics:
        assert {"train_loss", "critic_loss", "psnr", "ssim", "input_psnr", "critic_accuracy"} <= set(m)
        assert m["generator_steps"] == m["critic_steps"] == 1  # 2 batches, alternating
        assert 0 <= m["critic_accuracy"] <= 1
    batches = rows(tmp_path / "gan" / "gan_losses.jsonl")
    assert [b["step"] for b in batches] == ["critic", "generator"] * 2
    log = (tmp_path / "gan" / "log.txt").read_text()
    assert "before GAN training" in log and "critic pretraining pass 1/1" in log
    assert Image.open(tmp_path / "gan" / "samples" / "epoch_002.png").width == 3 * (160 + 4) + 4
    checkpoint = torch.load(tmp_path / "gan" / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["info"]["start_psnr"] > 0 and checkpoint["info"]["scale"] == 1
    assert "high for a GAN" not in log
    # RunConfig's default lr (3e-3) is far above what the critic learns at: the log says so.
    high = dict(config, lr=3e-3, epochs=1, extra=dict(config["extra"], critic_pretrain_epochs=0))
    fit(high, tmp_path / "gan_high")
    assert "lr 0.003 is high for a GAN" in (tmp_path / "gan_high" / "log.txt").read_text()


def test_restoration_gan_needs_a_restore_run(tmp_path):
    data = write_pairs(tmp_path / "pairs", n=8)
    config = {"task": "gan", "data": str(data), "epochs": 1, "batch_size": 4, "image_size": 32}
    with pytest.raises(ConfigError, match="generator_run"):
        fit(config, tmp_path / "gan")
    with pytest.raises(ConfigError, match="not a run"):
        fit(dict(config, extra={"generator_run": str(tmp_path)}), tmp_path / "gan")
