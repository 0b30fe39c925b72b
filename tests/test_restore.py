"""Restoration and super-resolution end to end: tiny crappified pairs through trainers.fit."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from trainers import fit
from trainers.grid import TILE, caption_size
from trainers.losses import FeatureLoss, PixelL1, PixelSSIM
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
            pixels[y : y + h, x : x + w] = rng.uniform(0, 255, 3)
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
    """A tiny restore run: pixel loss, and an epoch of 16 crops (the task's 1600 are for real runs)
    unless `extra` says otherwise."""
    settings = dict(task="restore", epochs=3, batch_size=8, lr=3e-3)
    settings.update(changes)
    settings["extra"] = {"loss": "pixel", "crops_per_epoch": 16, "keep_epochs_every": 0, **changes.get("extra", {})}
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
    assert isinstance(choose_loss(None, "cnn")[0], PixelL1)  # the CPU network keeps its pixel loss
    assert isinstance(choose_loss("ssim")[0], PixelSSIM)


def test_feature_loss_run_logs_its_choice(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _write_random_vgg_features()
    data = write_pairs(tmp_path / "pairs", n=10)
    run = tmp_path / "run"
    fit(restore_config(data, epochs=1, batch_size=4, extra={"net": "unet", "loss": None}), run)
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


@pytest.mark.parametrize("net, last", [("cnn", "tail"), ("unet", "head")])
def test_the_task_starts_at_the_input_with_the_correction_learning_at_once(tmp_path, net, last):
    """Issue 5: the gate started at 0 in front of a random head (a saddle: each factor's gradient
    goes through the other), the correction never opened and runs ended at +0.00 dB. The task's
    model must start exactly at its input and give its last layer a gradient on the first step."""
    from trainers import RunConfig
    from trainers.tasks.restore import Restore

    data = write_pairs(tmp_path / "pairs", n=4)
    config = RunConfig.from_dict(restore_config(data, extra={"net": net}))
    torch.manual_seed(0)
    parts = Restore().build(config, torch.device("cpu"))
    x, target = (torch.stack(t) for t in zip(*(parts.train_ds[i] for i in range(2))))
    model = parts.model
    out = model(x)
    assert torch.allclose(out, target[:, 1], atol=1e-6)  # the crappy input, to the pixel
    PixelL1()(out, target).backward()
    assert getattr(model, last).weight.grad.abs().sum() > 0


def test_restore_defaults_give_a_from_scratch_run_enough_steps():
    """Left out, batch size and epochs are restore's own (several steps per epoch on a few dozen
    pairs); a config that gives them keeps its values."""
    from trainers import RunConfig

    config = RunConfig.from_dict({"task": "restore"})
    assert (config.batch_size, config.epochs, config.lr, config.image_size) == (8, 12, 2e-3, 64)
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
    fit(restore_config(data, epochs=1, batch_size=4, extra={"net": "unet", "loss": "pixel"}), run)
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


def test_validation_scores_whole_held_out_pictures_one_at_a_time(tmp_path):
    """Restore validates on the whole held-out pictures (on the scale's grid), whatever the
    training size; a picture above MAX_VALID_PIXELS keeps its centre."""
    from trainers import paired_data
    from trainers.paired_data import WholePairs

    data = write_pairs(tmp_path / "pairs", n=8, size=40)
    _, valid = scan_pairs(data, "crappy", "clean", 0.25, 0)
    ds = WholePairs(valid, 1, (0.5,) * 3, (0.25,) * 3)
    ds.set_size(16)
    x, target = ds[0]
    assert x.shape == (3, 40, 40) and target.shape == (2, 3, 40, 40)
    paired_data.MAX_VALID_PIXELS, saved = 20 * 20, paired_data.MAX_VALID_PIXELS
    try:
        assert ds[0][0].shape == (3, 20, 20)
    finally:
        paired_data.MAX_VALID_PIXELS = saved


def _recipe_dataset(root: Path, n=3, size=40) -> Path:
    """write_pairs plus the recipe a crappify-built dataset records (2x down, JPEG 30, a number)."""
    data = write_pairs(root, n=n, size=size)
    params = {"scale": 2, "jpeg_min": 30, "jpeg_max": 30, "text": True, "text_size": 0.5}
    (data / "crappify.json").write_text(json.dumps({"params": params, "seed": 0}))
    return data


def test_fresh_pairs_from_one_clean_picture_differ_between_batches_and_repeat_with_the_seed(tmp_path):
    """The recipe re-applied on the fly: every draw from the same clean picture is a new crop with
    new damage, and the same torch seed draws the same pairs again."""
    from trainers.degrade import CrappifyParams
    from trainers.paired_data import CrappifyPairs

    data = _recipe_dataset(tmp_path / "pairs", n=1)
    params = CrappifyParams.from_dict(json.loads((data / "crappify.json").read_text())["params"])
    ds = CrappifyPairs([data / "clean" / "000.png"], params, 24, (0.5,) * 3, (0.25,) * 3, length=4)
    assert len(ds) == 4

    def batch(seed):
        torch.manual_seed(seed)
        return [ds[i] for i in range(len(ds))]

    first, again, other = batch(1), batch(1), batch(2)
    for (x, t), (x2, t2) in zip(first, again):
        assert torch.equal(x, x2) and torch.equal(t, t2)
    assert x.shape == (3, 24, 24) and t.shape == (2, 3, 24, 24)
    assert not torch.equal(first[0][0], first[1][0])  # two draws in one batch differ
    assert not any(torch.equal(a[0], b[0]) for a, b in zip(first, other))  # and another batch differs
    assert all(not torch.equal(x, t[0]) for x, t in first)  # damaged, not a copy of the clean crop


def test_a_recipe_dataset_trains_on_fresh_pairs_and_fixed_pairs_train_on_crops(tmp_path):
    data = _recipe_dataset(tmp_path / "pairs", n=6)
    for pairs in ("recipe", "fixed"):
        run = tmp_path / pairs
        fit(
            restore_config(data, epochs=1, batch_size=4, image_size=16, extra={"pairs": pairs, "crops_per_epoch": 8}),
            run,
        )
        ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
        assert ckpt["info"]["pairs"].startswith("fresh pairs" if pairs == "recipe" else "fixed pairs")
        assert ckpt["info"]["net"]["kind"] == "cnn"
        assert np.isfinite(rows(run)[0]["psnr"])


@pytest.mark.parametrize("scale", [1, 2])
def test_a_restore_network_returns_its_input_at_initialisation_on_any_size(scale):
    from trainers.models.restore_net import RestoreCNN
    from trainers.models.unet import UNet
    from trainers.tasks.restore import open_correction

    torch.manual_seed(0)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    nets = [
        RestoreCNN(scale, width=8, blocks=2, mean=mean, std=std).eval(),
        open_correction(UNet("resnet18", n_out=3, scale=scale, image_residual=(mean, std))).eval(),
    ]
    for h, w in [(1, 1), (7, 13), (32, 32), (33, 50)]:
        x = torch.randn(2, 3, h, w)
        base = x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
        if scale > 1:
            base = torch.nn.functional.interpolate(base, scale_factor=scale, mode="bicubic", align_corners=False)
        for net in nets[: 1 if min(h, w) < 32 else 2]:  # the U-Net's encoder needs 32 px
            with torch.no_grad():
                assert torch.allclose(net(x), base, atol=1e-5), (type(net).__name__, h, w)


def test_tiled_inference_of_a_large_picture_has_no_seams():
    """A picture larger than the tiles, through a network whose correction is far from zero: the
    tiled result departs from the network applied to the whole picture no more at the tiles'
    borders (where a hard cut would show a seam) than inside the tiles, and little on average."""
    from trainers.models.restore_net import RestoreCNN
    from trainers.tiling import default_overlap, tile_starts, tiled

    torch.manual_seed(0)
    net = RestoreCNN(1, width=8, blocks=2).eval()
    torch.nn.init.normal_(net.tail.weight, 0, 0.1)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 80), torch.linspace(0, 1, 120), indexing="ij")
    x = torch.stack([torch.sin(6 * xx + 3 * yy), torch.cos(5 * yy), xx * yy])[None] * 2  # smooth, normalised
    tile = 32
    out = tiled(net, x, tile)
    with torch.no_grad():
        whole = net(x)
    assert out.shape == whole.shape
    error = (out - whole).abs()
    assert error.mean() < 0.02
    for axis, length in ((-1, 120), (-2, 80)):
        per_line = error.amax(dim=tuple(d for d in range(4) if d != axis % 4))
        starts = tile_starts(length, tile, tile - default_overlap(tile))
        borders = sorted({s for s in starts[1:]} | {s + tile - 1 for s in starts[:-1]})
        inside = [i for i in range(length) if i not in borders]
        assert per_line[borders].max() <= per_line[inside].max()


def test_fresh_pairs_move_the_damage_grid_even_when_the_recipe_draws_nothing(tmp_path):
    """A recipe without randomness (fixed JPEG quality, no text) on a picture smaller than the
    damage window: the same clean crop still comes with different damage (the JPEG blocks and the
    downscale's grid fall elsewhere), so a few photos are not a few fixed pairs to memorise."""
    from trainers.degrade import CrappifyParams
    from trainers.paired_data import CrappifyPairs

    data = _recipe_dataset(tmp_path / "pairs", n=1)
    params = CrappifyParams.from_dict({"scale": 2, "jpeg_min": 30, "jpeg_max": 30, "text": False})
    ds = CrappifyPairs(
        [data / "clean" / "000.png"], params, 24, (0.5,) * 3, (0.25,) * 3, length=200, flip=False, channels=False
    )
    torch.manual_seed(0)
    damage_of = {}  # clean crop -> the damaged versions drawn with it
    for i in range(len(ds)):
        x, t = ds[i]
        damage_of.setdefault(t[0].numpy().tobytes(), set()).add(x.numpy().tobytes())
    assert max(len(v) for v in damage_of.values()) >= 2


def test_fresh_pairs_draw_the_colour_channels_in_every_order_and_damage_them_after(tmp_path):
    """A few photos hold a few palettes: each draw puts the clean window's channels in a random
    order before the damage, so the pair is the recipe's damage of those colours. Off, the clean
    crops keep the photo's own order."""
    from PIL import Image

    from trainers.degrade import CrappifyParams
    from trainers.paired_data import CrappifyPairs

    path = tmp_path / "red.png"
    Image.new("RGB", (40, 40), (200, 40, 10)).save(path)  # one colour: the order shows at once
    params = CrappifyParams.from_dict({"scale": 2, "jpeg_min": 30, "jpeg_max": 30, "text": False})
    mean, std = (0.0,) * 3, (1.0,) * 3

    def orders(channels):
        ds = CrappifyPairs([path], params, 24, mean, std, length=60, flip=False, channels=channels)
        torch.manual_seed(0)
        seen = set()
        for i in range(len(ds)):
            x, t = ds[i]
            order = tuple(int(v) for v in t[0].mean(dim=(1, 2)).argsort())  # t: [clean, baseline]
            seen.add(order)
            # the damaged input is of the same colours: its channels rank the same way
            assert tuple(int(v) for v in x.mean(dim=(1, 2)).argsort()) == order
        return seen

    assert len(orders(True)) == 6
    assert orders(False) == {(2, 1, 0)}  # blue < green < red, as painted
