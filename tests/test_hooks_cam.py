"""Hooks remove themselves; activation statistics are recorded with the run; Grad-CAM looks
where the evidence is."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from trainers import fit
from trainers.cam import cam, default_layer, grad_cam, overlay, peak
from trainers.hooks import ActivationStats, Hooks, hook_count, hook_output, load_activation_stats
from trainers.learner import Learner
from trainers.models import ResNetClassifier
from conftest import tiny_config, write_colour_classes

SIZE, SQUARE = 48, 20
# Grad-CAM's layer: the stem's output (12x12 at 48 px). Measured on this from-scratch model:
# the stem 15/24 peaks inside the square, layer1 10/24, layer2 11/24, layer3 3/24 (3x3 cells).
LAYER = "body.3"


def square_image(rng, left: bool) -> tuple:
    """Dark noise with one bright square; its half of the picture is the class."""
    pixels = rng.normal(50, 20, (SIZE, SIZE, 3))
    top = int(rng.integers(0, SIZE - SQUARE + 1))
    col = int(rng.integers(0, SIZE // 2 - SQUARE + 1)) + (0 if left else SIZE // 2)
    pixels[top:top + SQUARE, col:col + SQUARE] = rng.normal(230, 15, (SQUARE, SQUARE, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")), (top, col)


def write_square_classes(root, per_class=32, valid_per_class=12, seed=0) -> dict:
    """train/ and valid/ of 'left' and 'right'; returns {valid file name: (top, left)}."""
    rng = np.random.default_rng(seed)
    where = {}
    for split, n in (("train", per_class), ("valid", valid_per_class)):
        for name in ("left", "right"):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image, box = square_image(rng, name == "left")
                image.save(folder / f"{i:03d}.png")
                if split == "valid":
                    where[f"{name}/{i:03d}.png"] = box
    return where


@pytest.fixture(scope="module")
def square_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("squares")
    where = write_square_classes(root / "data")
    config = tiny_config(root / "data", image_size=SIZE, epochs=4, batch_size=16, lr=2e-3, extra={"flip": False})
    result = fit(config, root / "run")
    return root, where, result


def test_grad_cam_peak_falls_inside_the_bright_square(square_run):
    from studio.checkpoints import load_checkpoint

    root, where, result = square_run
    loaded = load_checkpoint(root / "run")
    model = loaded.model
    names = list(where)
    x = torch.cat([loaded.preprocess(Image.open(root / "data" / "valid" / n)) for n in names])
    labels = torch.tensor([loaded.classes.index(n.split("/")[0]) for n in names])
    right = int((loaded.forward(x).argmax(1) == labels).sum())
    heat = grad_cam(model, x, class_index=labels, layer=LAYER)
    assert hook_count(model) == 0
    hits = 0
    for name, h in zip(names, heat):
        (top, left), (row, col) = where[name], peak(h)
        hits += int(top <= row < top + SQUARE and left <= col < left + SQUARE)
    fraction = hits / len(where)
    accuracy = right / len(where)
    print(f"Grad-CAM peak inside the square: {hits}/{len(where)} = {fraction:.2f} (accuracy {accuracy:.2f})")
    assert accuracy >= 0.9, f"the square classifier did not learn (accuracy {accuracy:.2f})"
    assert fraction > 0.5, f"Grad-CAM peak inside the square for only {hits}/{len(where)} = {fraction:.2f} of images"


def test_activation_stats_are_kept_with_the_run(square_run):
    root, _, _ = square_run
    stats = load_activation_stats(root / "run" / "activation_stats.pt")
    assert stats is not None, "fit() should record activation statistics by default"
    n, layers = stats["mean"].shape
    assert layers == len(stats["layers"]) > 5 and "body.0" in stats["layers"]
    assert n == 4 * (64 // 16)  # every training batch of 4 epochs
    assert stats["hist"].shape == (n, layers, 40)
    assert stats["epoch"].tolist() == sorted(stats["epoch"].tolist()) and set(stats["epoch"].tolist()) == {0, 1, 2, 3}
    assert torch.all((stats["near_zero"] >= 0) & (stats["near_zero"] <= 1))
    assert torch.isfinite(stats["std"]).all()


def test_cam_and_grad_cam_leave_no_hooks_and_any_channel_count():
    torch.manual_seed(0)
    model = ResNetClassifier("resnet18", 3)
    x = torch.randn(2, 3, 32, 32)
    for heat in (grad_cam(model, x), cam(model, x), grad_cam(model, x, 1, layer="body.1"), cam(model, x, 2)):
        assert heat.shape == (2, 32, 32) and heat.min() >= 0 and heat.max() <= 1
        assert torch.allclose(heat.flatten(1).max(1).values, torch.ones(2)) or heat.max() == 0
    assert hook_count(model) == 0
    # In-place activations are restored after Grad-CAM turned them off.
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    # A model of 5 channels and no body/head: Grad-CAM still works; CAM says why it cannot.
    odd = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2))
    assert grad_cam(odd, x)[0].shape == (32, 32) and default_layer(odd) == "0"
    with pytest.raises(ValueError, match="body and a head"):
        cam(odd, x)
    with pytest.raises(ValueError, match="no layer named"):
        grad_cam(odd, x, layer="nope")
    assert hook_count(odd) == 0
    picture = overlay(Image.new("RGB", (64, 64)), grad_cam(model, x)[0].numpy(), 0.5)
    assert picture.size == (64, 64)


def test_hooks_are_removed_even_when_the_body_raises():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(RuntimeError):
        with hook_output(model[0]), Hooks(list(model), lambda *a: None):
            model(torch.randn(3, 5))  # wrong shape: the forward raises
    assert hook_count(model) == 0
    with hook_output(model[2]) as h:
        model(torch.randn(3, 4))
    assert h.stored.shape == (3, 2) and hook_count(model) == 0


def test_activation_stats_callback_removes_its_hooks_and_resumes(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(torch.randn(16, 3, 16, 16), torch.randint(0, 2, (16,)))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    path = tmp_path / "activation_stats.pt"
    learn = Learner(model, DataLoader(ds, 8), DataLoader(ds, 8), nn.CrossEntropyLoss(),
                    callbacks=[ActivationStats(path)], mixed_precision=False)
    learn.fit_one_cycle(2, 1e-2)
    assert hook_count(model) == 0
    saved = load_activation_stats(path)
    assert saved["layers"] == ["0", "4"] and saved["epoch"].tolist() == [0, 0, 1, 1]
    # A resumed run repeating epoch 1 replaces its rows instead of adding to them.
    again = Learner(model, DataLoader(ds, 8), DataLoader(ds, 8), nn.CrossEntropyLoss(),
                    callbacks=[ActivationStats(path)], mixed_precision=False)
    again.fit_one_cycle(1, 1e-2, first_epoch=1)
    assert load_activation_stats(path)["epoch"].tolist() == [0, 0, 1, 1]
    assert hook_count(model) == 0


def test_activation_stats_can_be_switched_off(tmp_path):
    data = write_colour_classes(tmp_path / "c", per_class=6, size=32, classes=("red", "blue"))
    fit(tiny_config(data, epochs=1, extra={"activation_stats": False}), tmp_path / "run")
    assert not (tmp_path / "run" / "activation_stats.pt").exists()
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
