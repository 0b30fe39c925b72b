"""Shared test fixtures: small real datasets written to temporary folders."""
import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Tests never download: a missing weights file must fail fast, as it does offline.
os.environ.setdefault("DARKROOM_OFFLINE", "1")
# The servers' upload cache, which would fill /tmp/gradio: a folder removed at the end.
SCRATCH = Path(tempfile.mkdtemp(prefix="darkroom-tests-"))
os.environ["GRADIO_TEMP_DIR"] = str(SCRATCH / "gradio")  # read when gradio is imported
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)

COLOURS = {"red": (200, 40, 40), "blue": (40, 40, 200), "green": (40, 200, 40)}


def write_colour_classes(root: Path, per_class: int = 16, size: int = 32, classes=("red", "blue", "green"), seed=0) -> Path:
    """Noisy solid-colour images, one folder per class: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.array(COLOURS[name])[None, None, :] + rng.normal(0, 40, (size, size, 3))
            Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session", autouse=True)
def temp_in_pytests_folder(tmp_path_factory):
    """The test process's temp directory is pytest's base folder, which pytest prunes: Gradio's
    client downloads each returned file through a new folder in the temp directory and leaves
    it behind, empty (1,727 in /tmp after a few runs of the suite)."""
    tempfile.tempdir = str(tmp_path_factory.getbasetemp())
    yield
    tempfile.tempdir = None


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request) -> Path:
    """A folder for one test module's shared fixtures, removed when the module is done: pytest
    would keep it until the session ends, and the runs in it hold checkpoints of hundreds of MB."""
    path = tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def colour_data(tmp_path) -> Path:
    return write_colour_classes(tmp_path / "colours")


def tiny_config(data, **changes) -> dict:
    config = {"task": "classify", "data": str(data), "arch": "resnet18", "epochs": 2, "batch_size": 8,
              "image_size": 32, "lr": 3e-3, "freeze_epochs": 0, "pretrained": False,
              # No per-epoch weights (epoch_weights.py) unless a test asks: they would add a
              # ResNet's weights per epoch to every test run's disk.
              "extra": {"keep_epochs_every": 0}}
    config.update(changes)
    return config


def tiny_json(**changes) -> str:
    """tiny_config as a studio's API takes it: the workspace's "colours" dataset, in JSON."""
    return json.dumps(tiny_config(**{"data": "colours", **changes}))


def write_fake_weights(arch):
    """A real torchvision state dict of `arch` (seeded random values) where torch looks for it."""
    torch.manual_seed(123)
    state = torchvision.models.get_model(arch, weights=None).state_dict()
    from trainers.models import weights_file

    path = weights_file(arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine torch's extra thread spins and makes
    small convolutions several times slower, not faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Marks by what a test needs, in one place: every test of a browser module is `browser`;
    the registry's contract trains a run of every task, so it is `slow`. The README's command
    still runs all of them; `-m "not browser and not slow"` gives a quick pass."""
    for item in items:
        module = item.module.__name__ if item.module else ""
        if module.startswith("test_ui_browser"):
            item.add_marker(pytest.mark.browser)
        if module in ("test_task_contract", "test_try_tasks"):
            item.add_marker(pytest.mark.slow)

