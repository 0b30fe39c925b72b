"""Pretrained weights through torchvision's API, from a file the test writes into TORCH_HOME."""
import subprocess
import sys
import json

import pytest
import torch

from trainers import WeightsUnavailable
from trainers.models import ResNetClassifier, weights_file
from conftest import ROOT, tiny_config, write_fake_weights


def test_weights_load_from_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert str(weights_file("resnet18")).startswith(str(tmp_path / "hub" / "checkpoints"))
    state = write_fake_weights("resnet18")
    model = ResNetClassifier("resnet18", 3, pretrained=True)
    assert torch.equal(model.body[0].weight, state["conv1.weight"])
    assert torch.equal(model.body[7][1].conv2.weight, state["layer4.1.conv2.weight"])


def test_missing_weights_fail_at_once_naming_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as info:
        ResNetClassifier("resnet34", 3, pretrained=True)
    message = str(info.value)
    path = weights_file("resnet34")
    assert path.name in message and str(path.parent) in message and "pretrained off" in message


def test_cli_exits_with_one_line_reason(tmp_path, colour_data):
    config = tmp_path / "c.json"
    config.write_text(json.dumps(tiny_config(colour_data, pretrained=True)))
    env = {"TORCH_HOME": str(tmp_path / "empty"), "DARKROOM_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "trainers", str(config), "--out", str(tmp_path / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Pretrained weights for resnet18")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tiny_config(colour_data, task="nope")))
    done = subprocess.run([sys.executable, "-m", "trainers", str(bad), "--out", str(tmp_path / "o2")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.startswith("error: Unknown task 'nope'")


def _log(out):
    return (out / "log.txt").read_text()


def test_auto_without_weights_trains_from_scratch_and_says_so(tmp_path, colour_data, monkeypatch, one_thread):
    from trainers import RunConfig, fit

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    assert RunConfig().pretrained == "auto"
    config = {k: v for k, v in tiny_config(colour_data, epochs=1).items() if k != "pretrained"}
    out = tmp_path / "run"
    result = fit(config, out)
    assert result["status"] == "completed" and result["pretrained"] is False
    assert "from scratch" in result["weights"] and weights_file("resnet18").name in result["weights"]
    assert "from scratch: no ImageNet weights" in _log(out)
    assert json.loads((out / "config.json").read_text())["pretrained"] is False  # what was used


def test_auto_with_weights_uses_them(tmp_path, colour_data, monkeypatch, one_thread):
    from trainers import fit

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = write_fake_weights("resnet18")
    out = tmp_path / "run"
    result = fit(tiny_config(colour_data, epochs=2, freeze_epochs=1, pretrained="auto"), out)
    assert result["status"] == "completed" and result["pretrained"] is True
    assert "ImageNet weights" in _log(out) and "phase frozen" in _log(out)
    saved = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert saved["config"]["pretrained"] is True
    # The stem's first convolution started from the file's weights (it was frozen for epoch 1,
    # then trained at the lowest of the discriminative rates: still close to them).
    assert torch.allclose(saved["model"]["body.0.weight"], state["conv1.weight"], atol=0.05)


def test_weights_status_names_file_and_folder(tmp_path, monkeypatch):
    from trainers.models import weights_status

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    status = weights_status("resnet34")
    assert not status["present"] and status["folder"] == str(tmp_path / "hub" / "checkpoints")
    write_fake_weights("resnet34")
    assert weights_status("resnet34")["present"]
