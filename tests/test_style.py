"""Style transfer: the Johnson network's shape, Gatys pixel optimisation, both through fit.

The VGG16-BN is randomly initialised and written by the test into a temporary TORCH_HOME, so the
loading path is the real one and nothing is downloaded."""
import json

import pytest
import torch
from PIL import Image

from trainers import ConfigError, fit
from trainers.grid import TILE
from trainers.models.style_net import StyleNet
from trainers.models.vgg_features import pretrained_vgg_features
from trainers.style_loss import StyleLoss
from test_gan import rows, write_images
from test_unet import _write_random_vgg_features


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def vgg_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _write_random_vgg_features()
    return tmp_path / "torch"


@pytest.mark.parametrize("size", [(32, 32), (37, 50), (17, 23)])
def test_style_network_output_has_the_input_size(size):
    net = StyleNet(width=8, residual_blocks=2)
    out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size) and 0 <= out.min() and out.max() <= 1
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())


def test_style_loss_is_zero_for_its_own_content_and_style(vgg_home):
    torch.manual_seed(0)
    style = torch.rand(3, 32, 32)
    loss = StyleLoss(pretrained_vgg_features(), style, style_blocks=(1, 2, 3))
    assert loss(style[None], style[None]).item() == pytest.approx(0.0, abs=1e-9)
    other = torch.rand(1, 3, 32, 32)
    value = loss(other, style[None]).item()
    assert value > 0 and loss.last["style_loss"] > 0
    content = style[None]
    loss.fix_content(content)  # Gatys measures its content photo once; the value must not change
    assert loss(other, content).item() == pytest.approx(value, rel=1e-6)


def test_bf16_vgg_passes_keep_the_loss_and_its_gradient(vgg_home):
    """Gatys runs the VGG in bf16 on a CUDA GPU that has it: the value and the pixel gradient it
    follows must stay those of float32, within bf16's precision."""
    torch.manual_seed(0)
    style, content = torch.rand(3, 64, 64), torch.rand(1, 3, 64, 64)
    loss = StyleLoss(pretrained_vgg_features(), style, style_blocks=(1, 2, 3), content_blocks=(2,))

    def value_and_grad(dtype):
        loss.autocast_dtype = dtype
        image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        value = loss(image, content)
        value.backward()
        return value.item(), image.grad.flatten(), value.dtype

    full, full_grad, _ = value_and_grad(None)
    half, half_grad, dtype = value_and_grad(torch.bfloat16)
    assert dtype == torch.float32  # Gram matrices and losses are float32 in both
    assert half == pytest.approx(full, rel=0.05) and half != full  # bf16 did run, and stayed close
    assert torch.nn.functional.cosine_similarity(full_grad, half_grad, dim=0) > 0.95


def test_gatys_lowers_its_loss_and_writes_frames(tmp_path, vgg_home):
    photos = write_images(tmp_path / "photos", n=2, size=40)
    config = {"task": "style", "data": str(photos), "epochs": 3, "image_size": 32,
              "extra": {"mode": "gatys", "steps": 15, "init": "noise", "style_image": str(photos / "01.png"),
                        "style_layers": [1, 2, 3], "content_layers": [2]}}
    result = fit(config, tmp_path / "run")
    assert result["status"] == "completed" and result["epochs_done"] == 3
    metrics = rows(tmp_path / "run" / "metrics.jsonl")
    losses = [m["train_loss"] for m in metrics]
    assert losses[2] < losses[1] < losses[0]
    assert [m["steps"] for m in metrics] == [5, 10, 15]
    assert all(m["content_loss"] >= 0 and m["style_loss"] >= 0 for m in metrics)
    assert len(list((tmp_path / "run" / "samples").glob("epoch_*.png"))) == 3
    assert Image.open(tmp_path / "run" / "result.png").size == (32, 32)  # the content photo (00.png) is square
    assert "VGG in " in (tmp_path / "run" / "log.txt").read_text()  # the log says which precision ran


def test_style_network_trains_through_fit(tmp_path, vgg_home):
    photos = write_images(tmp_path / "photos", n=5, size=40)
    config = {"task": "style", "data": str(photos), "epochs": 1, "batch_size": 4, "image_size": 32, "lr": 1e-3,
              "sample_count": 2, "extra": {"style_image": str(photos / "00.png"), "width": 8, "residual_blocks": 1,
                                           "images_per_epoch": 8, "style_layers": [1, 2]}}
    result = fit(config, tmp_path / "run")
    assert result["status"] == "completed"
    (metrics,) = rows(tmp_path / "run" / "metrics.jsonl")
    assert {"train_loss", "valid_loss", "content_loss", "style_loss", "seconds"} <= set(metrics)
    assert metrics["valid_loss"] == pytest.approx(metrics["content_loss"] + metrics["style_loss"], rel=1e-4)
    grid = Image.open(tmp_path / "run" / "samples" / "epoch_001.png")
    assert grid.width == 2 * (TILE + 4) + 4  # photo | stylised


def test_style_refuses_missing_or_bad_settings(tmp_path, vgg_home):
    photos = write_images(tmp_path / "photos", n=3, size=24)
    base = {"task": "style", "data": str(photos), "epochs": 1, "batch_size": 2, "image_size": 16}
    with pytest.raises(ConfigError, match="style_image"):
        fit(base, tmp_path / "a")
    with pytest.raises(ConfigError, match="not found"):
        fit(dict(base, extra={"style_image": str(tmp_path / "nope.jpg")}), tmp_path / "b")
    with pytest.raises(ConfigError, match="block numbers"):
        fit(dict(base, extra={"style_image": str(photos / "00.png"), "style_layers": [0, 9]}), tmp_path / "c")
    with pytest.raises(ConfigError, match="mode"):
        fit(dict(base, extra={"style_image": str(photos / "00.png"), "mode": "magic"}), tmp_path / "d")
    (photos / "dataset.json").write_text(json.dumps({"kind": "classify"}))
    with pytest.raises(ConfigError, match="folder of images"):
        fit(dict(base, extra={"style_image": str(photos / "00.png")}), tmp_path / "e")
