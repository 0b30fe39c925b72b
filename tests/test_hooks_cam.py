"""Hooks remove themselves; activation statistics are recorded with the run; Grad-CAM looks
where the evidence is."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from trainers import fit
from trainers.cam import cam, class_score, default_layer, grad_cam, layer_cam, overlay, peak, upsample_to_input
from trainers.hooks import ActivationStats, Hooks, hook_count, hook_output, load_activation_stats
from trainers.learner import Learner
from trainers.models import ResNetClassifier
from conftest import tiny_config, write_colour_classes

from square_data import CLASSES, SIZE, hit_fraction, square_image, write_square_classes

EPOCHS, BATCH, PER_CLASS = 5, 16, 32
BRIGHT = 140  # grey level between the noise (50 +- 20) and the square (230 +- 15)


class SquareDetector(nn.Module):
    """A classifier built by hand whose evidence is known: the body's channel 0 fires on bright
    pixels only and channel 1 on dark ones, pooled to a 6 x 6 grid; the head scores "square" by
    the bright channel and "none" by the dark one. A heatmap that explains "square" can only
    point inside the square, on any CPU's rounding: the margins are tens of grey levels."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AvgPool2d(16))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
        with torch.no_grad():
            conv, linear = self.body[0], self.head[2]
            conv.weight.copy_(torch.tensor([[1.0, 1, 1], [-1, -1, -1]]).div(3)[:, :, None, None])
            conv.bias.copy_(torch.tensor([-BRIGHT / 255, BRIGHT / 255]))
            linear.weight.copy_(torch.tensor([[20.0, 0], [0, 1]]))  # a square outweighs the dark around it
            linear.bias.zero_()

    def forward(self, x):
        return self.head(self.body(x))


def test_heatmaps_of_a_model_with_a_known_answer_peak_inside_the_square():
    rng = np.random.default_rng(7)
    pictures = [square_image(rng, where) for where in ("left", "right") * 6]
    where = {str(i): box for i, (_, box) in enumerate(pictures)}
    x = torch.stack([torch.from_numpy(np.asarray(p, dtype=np.float32) / 255).permute(2, 0, 1) for p, _ in pictures])
    model = SquareDetector()
    assert model(x).argmax(1).eq(0).all(), "every picture holds a square"
    names = list(where)
    assert default_layer(model) == "body.2"
    for method, heat in {"Grad-CAM": grad_cam(model, x), "Layer-CAM": layer_cam(model, x), "CAM": cam(model, x),
                         "Grad-CAM at full resolution": grad_cam(model, x, 0, layer="body.1")}.items():
        assert heat.shape == (len(names), SIZE, SIZE) and heat.min() >= 0 and heat.max() <= 1, method
        assert hit_fraction(where, names, heat, peak) == 1.0, method
    # Explaining "none" instead points at the dark background, never at the square.
    away = layer_cam(model, x, 1)
    assert hit_fraction(where, names, away, peak) == 0.0
    assert hook_count(model) == 0


@pytest.fixture(scope="module")
def square_run(module_tmp):
    root = module_tmp
    where = write_square_classes(root / "data", per_class=PER_CLASS)
    config = tiny_config(root / "data", image_size=SIZE, epochs=EPOCHS, batch_size=BATCH, lr=2e-3,
                         # The CAM figures below were measured with running batch-norm statistics;
                         # recomputed ones (precise_bn) move single pictures across the bounds.
                         extra={"flip": False, "precise_bn": False})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as conftest's one_thread: faster on a shared 2-core machine
    try:
        result = fit(config, root / "run")
    finally:
        torch.set_num_threads(threads)
    return root, where, result


def test_heatmaps_of_a_trained_classifier_favour_the_square(square_run):
    from studio.checkpoints import load_checkpoint

    root, where, result = square_run
    loaded = load_checkpoint(root / "run")
    model = loaded.model
    names = list(where)  # the validation pictures that have a square (left and right)
    x = torch.cat([loaded.preprocess(Image.open(root / "data" / "valid" / n)) for n in names])
    labels = torch.tensor([loaded.classes.index(n.split("/")[0]) for n in names])
    accuracy = float((loaded.forward(x).argmax(1) == labels).float().mean())
    assert default_layer(model) == "body.7"  # layer4, the course's choice
    fractions = {"Grad-CAM": hit_fraction(where, names, grad_cam(model, x, labels), peak),
                 "Layer-CAM": hit_fraction(where, names, layer_cam(model, x, labels), peak),
                 "CAM": hit_fraction(where, names, cam(model, x, labels), peak)}
    assert hook_count(model) == 0
    print(f"peak inside the square ({len(names)} pictures, accuracy {accuracy:.2f}): "
          + ", ".join(f"{k} {v:.2f}" for k, v in fractions.items()))
    assert accuracy >= 0.9, f"the square classifier did not learn (accuracy {accuracy:.2f})"
    # How often a from-scratch model's heatmaps hit the square depends on its last bits of
    # rounding (CPU kind, threads): bench/heatmap_localisation.py measures that over seeds.
    # Here only what holds on every machine seen: Layer-CAM well above chance (a peak falls
    # inside the square by luck 14% of the time; the lowest figure measured anywhere is 0.71).
    assert fractions["Layer-CAM"] >= 0.4, fractions


def test_cells_are_upsampled_where_the_network_computes_them():
    # A stride-32 'same'-padded layer centres cell j on pixel 32*j: the hottest cell (1, 2) of
    # a 3x3 map of a 96 px picture belongs at (32, 64), not at the middle of its window.
    maps = torch.zeros(1, 1, 3, 3)
    maps[0, 0, 1, 2] = 1
    up = upsample_to_input(maps, (96, 96))[0, 0]
    assert peak(up) == (32, 64) and float(up[32, 64]) == 1.0
    assert float(up[32, 95]) == 1.0 and float(up[0, 64]) == 0.0  # held past the last cell
    assert torch.equal(upsample_to_input(maps, (3, 3)), maps)


def test_activation_stats_are_kept_with_the_run(square_run):
    root, _, _ = square_run
    stats = load_activation_stats(root / "run" / "activation_stats.pt")
    assert stats is not None, "fit() should record activation statistics by default"
    n, layers = stats["mean"].shape
    assert layers == len(stats["layers"]) > 5 and "body.0" in stats["layers"]
    per_epoch = len(CLASSES) * PER_CLASS // BATCH
    assert n == EPOCHS * len(range(0, per_epoch, 4))  # every 4th training batch of every epoch
    assert stats["hist"].shape == (n, layers, 40)
    assert stats["epoch"].tolist() == sorted(stats["epoch"].tolist()) and set(stats["epoch"].tolist()) == set(range(EPOCHS))
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


def test_layer_gradient_counts_a_unets_skip_connections():
    from trainers.cam import activations_and_gradients
    from trainers.models.unet import UNet

    torch.manual_seed(0)
    model = UNet("resnet18", n_out=3).eval()
    layer = model.encoder[model.cross_indices[-1]]  # read by the next layer and by a skip connection
    name = next(n for n, m in model.named_modules() if m is layer)
    x = torch.randn(1, 3, 32, 32)
    before = hook_count(model)
    a, g = activations_and_gradients(model, x, 1, name)
    # By hand: the output's gradient through every path, and the part that flows back through
    # the module's own call (what a full backward hook would report).
    seen = {}
    peek = layer.register_forward_hook(lambda m, i, out: seen.setdefault("out", out))
    out = model(x.clone().requires_grad_(True))
    peek.remove()
    score = class_score(out, torch.tensor([1]))
    (total,) = torch.autograd.grad(score, seen["out"])
    assert torch.allclose(a, seen["out"].detach()) and torch.allclose(g, total) and total.abs().sum() > 0
    assert hook_count(model) == before and all(p.grad is None for p in model.parameters())
    heat = grad_cam(model, torch.randn(1, 3, 32, 32), 1, layer="encoder.4")  # per-pixel class scores
    assert heat.shape == (1, 32, 32) and float(heat.max()) in (0.0, 1.0)


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
                    callbacks=[ActivationStats(path, every=1)], mixed_precision=False)
    learn.fit_one_cycle(2, 1e-2)
    assert hook_count(model) == 0
    saved = load_activation_stats(path)
    assert saved["layers"] == ["0", "4"] and saved["epoch"].tolist() == [0, 0, 1, 1]
    # A resumed run repeating epoch 1 replaces its rows instead of adding to them.
    again = Learner(model, DataLoader(ds, 8), DataLoader(ds, 8), nn.CrossEntropyLoss(),
                    callbacks=[ActivationStats(path, every=1)], mixed_precision=False)
    again.fit_one_cycle(1, 1e-2, first_epoch=1)
    assert load_activation_stats(path)["epoch"].tolist() == [0, 0, 1, 1]
    assert hook_count(model) == 0


def test_activation_stats_can_be_switched_off(tmp_path):
    data = write_colour_classes(tmp_path / "c", per_class=6, size=32, classes=("red", "blue"))
    fit(tiny_config(data, epochs=1, extra={"activation_stats": False}), tmp_path / "run")
    assert not (tmp_path / "run" / "activation_stats.pt").exists()
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_activation_stats_record_every_kth_batch_by_default(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    ds = TensorDataset(torch.randn(20, 3, 8, 8), torch.randint(0, 2, (20,)))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    path = tmp_path / "activation_stats.pt"
    learn = Learner(model, DataLoader(ds, 2), DataLoader(ds, 4), nn.CrossEntropyLoss(),
                    callbacks=[ActivationStats(path)], mixed_precision=False)
    learn.fit_one_cycle(1, 1e-2)
    assert load_activation_stats(path)["batch"].tolist() == [0, 4, 8]  # 10 batches, every 4th
