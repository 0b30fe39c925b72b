"""The bundled samples: present, small, in the documented formats, installed once."""
import json

import numpy as np
from PIL import Image

from studio.datasets.samples import ASSETS, install_samples
from studio.workspace import Workspace


def test_assets_are_small_and_documented():
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 5 * 1024**2
    readme = (ASSETS / "README.md").read_text()
    for name in ("digits/", "photos/", "shapes/"):
        assert name in readme
    for photo in (ASSETS / "photos").glob("*.jpg"):
        assert photo.name in readme, f"{photo.name} has no source and licence in assets/README.md"
        assert max(Image.open(photo).size) <= 384


def test_install_samples_formats_and_idempotence(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    assert install_samples(ws) == ["digits", "photos", "shapes"]
    assert install_samples(ws) == []
    assert list(ws.tmp_dir.iterdir()) == []

    digits = ws.datasets_dir / "digits"
    m = json.loads((digits / "dataset.json").read_text())
    assert m["kind"] == "classify" and m["classes"] == [str(d) for d in range(10)] and m["flip"] is False
    n_train, n_valid = sum(m["counts"]["train"].values()), sum(m["counts"]["valid"].values())
    assert (n_train, n_valid) == (1438, 359)
    assert len(list(digits.glob("train/*/*.png"))) == n_train and len(list(digits.glob("valid/*/*.png"))) == n_valid
    assert Image.open(next(digits.glob("valid/3/*.png"))).size == (32, 32)

    photos = ws.datasets_dir / "photos"
    assert json.loads((photos / "dataset.json").read_text())["kind"] == "images"
    assert len(list(photos.glob("*.png"))) == 12 and not list(photos.glob("*.jpg"))

    shapes = ws.datasets_dir / "shapes"
    m = json.loads((shapes / "dataset.json").read_text())
    codes = (shapes / "codes.txt").read_text().split()
    assert m["kind"] == "segment" and codes == m["codes"] == ["background", "circle", "square", "triangle"]
    images, labels = sorted(shapes.glob("images/*.png")), sorted(shapes.glob("labels/*.png"))
    assert len(images) == 120 and [p.name for p in images] == [p.name for p in labels]
    mask = Image.open(labels[0])
    assert mask.mode in ("L", "P") and mask.size == Image.open(images[0]).size == (64, 64)
    values = np.unique(np.concatenate([np.unique(np.asarray(Image.open(p))) for p in labels]))
    assert values.tolist() == [0, 1, 2, 3]


def test_existing_dataset_is_not_overwritten(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    (ws.datasets_dir / "photos").mkdir()
    (ws.datasets_dir / "photos" / "mine.txt").write_text("keep me")
    assert install_samples(ws) == ["digits", "shapes"]
    assert (ws.datasets_dir / "photos" / "mine.txt").read_text() == "keep me"
