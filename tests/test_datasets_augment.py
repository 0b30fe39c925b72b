"""Augmentation preview: masks and targets move with their image, exactly and reproducibly."""
import json

import numpy as np
import pytest
from PIL import Image

from studio.datasets.augment_preview import preview_augmentations
from studio.datasets.errors import DatasetError
from studio.datasets.manifest import write_manifest


def square_scene(size=48):
    """A white square on black; its mask is exactly the square (class 2)."""
    a = np.zeros((size, size, 3), np.uint8)
    m = np.zeros((size, size), np.uint8)
    a[10:30, 14:40] = 255
    m[10:30, 14:40] = 2
    return Image.fromarray(a), Image.fromarray(m, "L")


def test_segment_mask_follows_the_image(tmp_path):
    d = tmp_path / "seg"
    (d / "images").mkdir(parents=True)
    (d / "labels").mkdir()
    image, mask = square_scene()
    image.save(d / "images" / "s.png")
    mask.save(d / "labels" / "s.png")
    write_manifest(d, {"kind": "segment", "codes": ["background", "a", "square"], "void": None, "counts": {}})
    pairs = preview_augmentations(d, index=0, n=6, seed=1)
    assert len(pairs) == 6 and pairs[0].size == (48 * 2 + 4, 48)
    square_colour = np.asarray((60, 180, 75))
    moved = 0
    for pair in pairs:
        a = np.asarray(pair)
        left, right = a[:, :48].astype(int), a[:, 52:].astype(int)
        on_mask = (right == square_colour).all(-1)
        # Nearest-neighbour: only the class colours appear, never a blend.
        assert ((right == 0).all(-1) | on_mask).all()
        bright = left.mean(-1) > 60  # lighting changes brightness, not where the square is
        assert (bright == on_mask).mean() > 0.95
        moved += not np.array_equal(on_mask, np.asarray(mask) == 2)
    assert moved >= 4, "augmentations should move the square"
    again = preview_augmentations(d, index=0, n=6, seed=1)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(pairs, again))
    other = preview_augmentations(d, index=0, n=6, seed=2)
    assert not all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(pairs, other))


def test_restore_target_gets_the_same_transform(tmp_path):
    d = tmp_path / "restore"
    (d / "clean").mkdir(parents=True)
    (d / "crappy").mkdir()
    image, _ = square_scene()
    image.save(d / "clean" / "x.png")
    image.resize((24, 24), Image.NEAREST).save(d / "crappy" / "x.png")  # a 2x super-resolution input
    write_manifest(d, {"kind": "restore", "scale": 2, "counts": {"pairs": 1}})
    for pair in preview_augmentations(d, n=4, seed=0):
        a = np.asarray(pair).astype(int)
        assert np.abs(a[:, :48] - a[:, 52:]).mean() < 2


def test_classify_and_errors(tmp_path):
    d = tmp_path / "cls"
    (d / "train" / "a").mkdir(parents=True)
    square_scene()[0].save(d / "train" / "a" / "one.png")
    (d / "dataset.json").write_text(json.dumps({"kind": "classify", "classes": ["a"], "flip": False}))
    out = preview_augmentations(d, index=5, n=3, seed=0)
    assert len(out) == 3 and out[0].size == (48, 48)
    with pytest.raises(DatasetError, match="between 1 and 64"):
        preview_augmentations(d, n=0)
    with pytest.raises(DatasetError, match="no dataset.json"):
        preview_augmentations(tmp_path)
