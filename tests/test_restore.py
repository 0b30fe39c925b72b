"""Restoration and super-resolution end to end: tiny crappified pairs through trainers.fit."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from trainers import fit
from trainers.grid import TILE, caption_size
from trainers.losses import FeatureLoss, PixelL1
from trainers.paired_data import RestorePairs, scan_pairs
from trainers.tasks.restore import choose_loss
from conftest import tiny_config
from test_unet import _write_random_vgg_features


pytestmark = pytest.mark.usefixtures("one_thread")


def write_pairs(root: Path, n=20, size=32, scale=1, seed=0) -> Path:
    """Clean: smooth gradients with a few rectangles. Crappy: downscaled by 2, blurred, noisy
    (scaled back up when scale == 1; kept at 1/scale size for super-resolution)."""
    rng = np.random.default_rng(seed)
    (root / "clean").mkdir(parents=True)
    (root / "crappy").mkdir()
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        base = rng.uniform(40, 200, 3)
        pixels = base + 50 * np.stack([xx, yy, xx * yy], -1) * rng.uniform(-1, 1, 3)
        for _ in range(3):
            y, x = rng.integers(0, size - 8, 2)
            h, w = rng.integers(4, 12, 2)
            pixels[y:y + h, x:x + w] = rng.uniform(0, 255, 3)
        clean = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
        small_side = size // max(scale, 2)
        small = clean.resize((small_side, small_side), Image.BILINEAR).filter(ImageFilter.GaussianBlur(0.6))
        crappy = small if scale > 1 else small.resize((size, size), Image.BILINEAR)
        noisy = np.asarray(crappy, np.float32) + rng.normal(0, 8, (crappy.height, crappy.width, 3))
        clean.save(root / "clean" / f"{i:03d}.png")
        Image.fromarray(np.clip(noisy, 0, 255).astype("uint8")).save(root / "crappy" / f"{i:03d}.png")
    (root / "dataset.json").write_text(json.dumps({"kind": "restore", "scale": scale}))
    return root


def restore_config(data, **changes):
    settings = dict(task="restore", epochs=3, batch_size=8, lr=3e-3, extra={"loss": "pixel"})
    settings.update(changes)
    return tiny_config(data, **settings)


def rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_restore_run_learns_and_writes_metrics_and_grids(tmp_path):
    data = write_pairs(tmp_path / "pairs")
    run = tmp_path / "run"
    # No augmentation and small batches: enough steps in a few seconds for the loss to fall.
    result = fit(restore_config(data, epochs=3, batch_size=2, augment=False), run)
    assert result["status"] == "completed" and result["monitor"] == "psnr"
    metrics = rows(run)
    assert {"psnr", "ssim", "input_psnr", "input_ssim"} <= set(metrics[0])
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    # The input's scores do not depend on the model (a tiny run is too short to judge the model's
    # own PSNR against them: that is docs/BENCHMARKS.md's job).
    assert len({round(r["input_psnr"], 6) for r in metrics}) == 1 and 15 < metrics[0]["input_psnr"] < 40
    assert all(np.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 for r in metrics)
    grid = Image.open(run / "samples" / "epoch_003.png")
    caption = caption_size(TILE) + 8
    assert grid.width == 3 * (TILE + 4) + 4 and grid.height == 4 * (TILE + caption + 4) + 4  # crappy | output | clean
    assert "loss: pixel L1 (chosen in the config)" in (run / "log.txt").read_text()


def test_super_resolution_run_outputs_twice_the_input(tmp_path):
    data = write_pairs(tmp_path / "sr", scale=2)
    train, valid = scan_pairs(data, "crappy", "clean", 0.2, 42)
    x, target = RestorePairs(train, 2, 32, (0.5,) * 3, (0.25,) * 3, train=True)[0]
    assert x.shape == (3, 16, 16) and target.shape == (2, 3, 32, 32)
    run = tmp_path / "run"
    fit(restore_config(data, epochs=1, batch_size=4), run)
    metrics = rows(run)[0]
    assert metrics["input_psnr"] > 10 and np.isfinite(metrics["psnr"])
    info = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["info"]
    assert info["scale"] == 2


def test_super_resolution_crops_stay_aligned(tmp_path):
    """A training crop of the clean image, downscaled, is the crop of the low-resolution input."""
    data = write_pairs(tmp_path / "sr", n=4, scale=2)
    for path in (data / "crappy").iterdir():  # exact 2x2 means: alignment can be checked pixel for pixel
        clean = torch.from_numpy(np.asarray(Image.open(data / "clean" / path.name), np.float32))
        small = clean.reshape(16, 2, 16, 2, 3).mean((1, 3)).round().clamp(0, 255).numpy().astype("uint8")
        Image.fromarray(small).save(path)
    train, _ = scan_pairs(data, "crappy", "clean", 0.25, 0)
    ds = RestorePairs(train, 2, 24, (0.0,) * 3, (1.0,) * 3, train=True)
    torch.manual_seed(3)
    for i in range(len(ds)):
        x, target = ds[i]
        down = target[0].reshape(3, 12, 2, 12, 2).mean((2, 4))
        assert (x - down).abs().max() < 1.5 / 255


def test_loss_choice_is_said_and_falls_back_to_pixel_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    loss, note = choose_loss(None)
    assert isinstance(loss, PixelL1) and "no VGG16-BN weights" in note and "vgg16_bn" in note
    loss, note = choose_loss("feature")  # asked for, but offline and missing: still trains, and says so
    assert isinstance(loss, PixelL1) and "no VGG16-BN weights" in note
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _write_random_vgg_features()
    loss, note = choose_loss(None)
    assert isinstance(loss, FeatureLoss) and note.startswith("feature loss")
    assert isinstance(choose_loss("pixel")[0], PixelL1)


def test_feature_loss_run_logs_its_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _write_random_vgg_features()
    data = write_pairs(tmp_path / "pairs", n=10)
    run = tmp_path / "run"
    fit(restore_config(data, epochs=1, batch_size=4, extra={}), run)
    assert "loss: feature loss" in (run / "log.txt").read_text()
    assert np.isfinite(rows(run)[0]["train_loss"])


def test_training_crops_keep_a_same_size_pair_aligned(tmp_path):
    """scale 1: the random crop (and flip) of the crappy input is the same crop of the clean image."""
    data = write_pairs(tmp_path / "pairs", n=4, size=48)
    for path in (data / "crappy").iterdir():  # crappy = clean exactly, so alignment is checkable
        Image.open(data / "clean" / path.name).save(path)
    train, _ = scan_pairs(data, "crappy", "clean", 0.25, 0)
    ds = RestorePairs(train, 1, 24, (0.0,) * 3, (1.0,) * 3, train=True)
    torch.manual_seed(0)
    for _ in range(3):
        for i in range(len(ds)):
            x, target = ds[i]
            assert x.shape == target[0].shape == (3, 24, 24)
            assert torch.allclose(x, target[0]) and torch.allclose(target[1], target[0])


def test_one_optimiser_step_moves_the_restored_image_a_little():
    """The correction starts at zero and grows gently: one AdamW step at the default lr must not
    push the output far from the input (a zero-initialised head moved it by 0.1-0.3)."""
    from trainers.models.unet import UNet

    torch.manual_seed(0)
    model = UNet("resnet18", n_out=3, image_residual=((0.5,) * 3, (0.25,) * 3))
    clean = torch.rand(4, 3, 32, 32)
    crappy = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    x = (crappy - 0.5) / 0.25
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    F_loss = PixelL1()
    for _ in range(2):  # the first step only opens the gate; the second moves everything behind it
        opt.zero_grad()
        F_loss(model(x), clean).backward()
        opt.step()
    with torch.no_grad():
        moved = (model(x) - crappy).abs()
        model.eval()
        moved_eval = (model(x) - crappy).abs()
    assert 0 < moved.max() < 0.05 and moved_eval.max() < 0.05


def test_short_training_leaves_held_out_pairs_no_worse_than_the_input(tmp_path):
    """After a dozen steps, what the run keeps (its last epoch, and best.pt) must give about the
    input back in eval mode, not a garbled image (it used to lose over 10 dB). Mid-run epochs may
    dip while batch-norm statistics trail fast-moving weights (docs/CONFIG.md says so)."""
    data = write_pairs(tmp_path / "pairs", n=20)
    run = tmp_path / "run"
    fit(restore_config(data, epochs=3, batch_size=4, lr=3e-3), run)
    last = rows(run)[-1]
    assert last["psnr"] > last["input_psnr"] - 0.3, last


def test_the_task_starts_at_the_input_with_the_correction_learning_at_once(tmp_path):
    """Issue 5: the gate started at 0 in front of a random head (a saddle: each factor's gradient
    goes through the other), the correction never opened and runs ended at +0.00 dB. The task's
    model must start exactly at its input and give its last layer a gradient on the first step."""
    from trainers import RunConfig
    from trainers.tasks.restore import Restore

    data = write_pairs(tmp_path / "pairs", n=4)
    config = RunConfig.from_dict(restore_config(data))
    torch.manual_seed(0)
    parts = Restore().build(config, torch.device("cpu"))
    x, target = (torch.stack(t) for t in zip(*(parts.train_ds[i] for i in range(2))))
    model = parts.model
    out = model(x)
    assert torch.allclose(out, target[:, 1], atol=1e-6)  # the crappy input, to the pixel
    PixelL1()(out, target).backward()
    assert model.head.weight.grad.abs().sum() > 0


def test_restore_defaults_give_a_from_scratch_run_enough_steps():
    """Left out, batch size and epochs are restore's own (several steps per epoch on a few dozen
    pairs); a config that gives them keeps its values."""
    from trainers import RunConfig

    config = RunConfig.from_dict({"task": "restore"})
    assert (config.batch_size, config.epochs, config.lr, config.image_size) == (8, 16, 3e-3, 64)
    assert RunConfig.from_dict({"task": "restore", "batch_size": 32}).batch_size == 32
    assert RunConfig.from_dict({"task": "classify"}).batch_size == 32


def test_from_scratch_restore_uses_group_norm_and_its_checkpoint_rebuilds_the_same_network(tmp_path):
    """A from-scratch run builds its U-Net with group norm and says so in info["unet"], which
    the studio's loader follows; a pretrained encoder with group norm is refused; a run saved
    before info["unet"] existed loads as the batch-norm network it was."""
    from studio.checkpoints import build_model
    from trainers import RunConfig
    from trainers.errors import ConfigError

    data = write_pairs(tmp_path / "pairs", n=8)
    run = tmp_path / "run"
    fit(restore_config(data, epochs=1, batch_size=4), run)
    ckpt = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert ckpt["info"]["unet"] == {"blur": True, "self_attention": True, "norm": "group"}
    model = build_model("restore", ckpt["config"], ckpt["info"])
    model.load_state_dict(ckpt["model"])  # strict: the same layers, group norms included
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.modules())

    old_info = {k: v for k, v in ckpt["info"].items() if k != "unet"}
    old = build_model("restore", ckpt["config"], old_info)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in old.modules())

    with pytest.raises(ConfigError, match="group"):
        RunConfig.from_dict(restore_config(data, batch_size=4, pretrained=True, extra={"norm": "group"})).validate()
    with pytest.raises(ConfigError, match="norm"):
        RunConfig.from_dict(restore_config(data, batch_size=4, extra={"norm": "layer"})).validate()


def test_validation_scores_the_largest_centre_crop_every_held_out_picture_holds(tmp_path):
    """Restore validates on crops up to valid_side, as large as the smallest held-out picture
    allows and never smaller than the training crops; training crops keep the training size."""
    data = write_pairs(tmp_path / "pairs", n=8, size=40)
    train, valid = scan_pairs(data, "crappy", "clean", 0.25, 0)
    stats = ((0.5,) * 3, (0.25,) * 3)
    assert RestorePairs(valid, 1, 16, *stats, valid_side=256)[0][0].shape == (3, 40, 40)
    assert RestorePairs(valid, 1, 16, *stats, valid_side=24)[0][0].shape == (3, 24, 24)
    assert RestorePairs(valid, 1, 16, *stats)[0][0].shape == (3, 16, 16)  # the gan task's validation
    assert RestorePairs(train, 1, 16, *stats, train=True, valid_side=256)[0][0].shape == (3, 16, 16)
    grown = RestorePairs(valid, 1, 16, *stats, valid_side=256)
    grown.set_size(48)  # a progressive stage beyond the pictures: scaled up to fit, as before
    x, target = grown[0]
    assert x.shape == (3, 48, 48) and target.shape == (2, 3, 48, 48)
