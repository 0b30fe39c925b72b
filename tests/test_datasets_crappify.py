"""Crappify: exact, reproducible (crappy, clean) pairs, in parallel, with recorded settings."""
import json

import numpy as np
import pytest
from PIL import Image

from studio.datasets.crappify import (CrappifyParams, crappify_dataset, crappify_image, image_seed,
                                      prepare_clean, preview)
from studio.datasets.errors import DatasetError
from studio.datasets.safe_io import open_image
from studio.workspace import Workspace


def smooth_picture(seed, w=66, h=50):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([(x * rng.uniform(1, 4) + y * c) % 256 for c in rng.uniform(0, 3, 3)], -1)
    return Image.fromarray(a.astype(np.uint8))


@pytest.fixture
def photos(tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    for i in range(4):
        smooth_picture(i).save(src / f"p{i}.png")
    smooth_picture(9).save(src / "sub" / "p0.png")  # same stem in a subfolder: gets its own name
    (src / "broken.jpg").write_text("no")
    return src


@pytest.fixture
def ws(tmp_path):
    return Workspace.open(tmp_path / "ws")


def files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_pairs_are_exact_reproducible_and_parallel(ws, photos):
    params = {"scale": 2, "noise": 5.0, "blur": 0.5, "text_kind": "word"}
    seen = []
    report = crappify_dataset(ws, "r1", photos, params, seed=3, processes=2, progress=lambda d, t: seen.append((d, t)))
    out = ws.datasets_dir / "r1"
    assert report["pairs"] == 5 and [s["file"] for s in report["skipped"]] == ["broken.jpg"]
    assert seen[0] == (0, 6) and seen[-1] == (6, 6) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert sorted(files(out / "clean")) == ["p0-2.png", "p0.png", "p1.png", "p2.png", "p3.png"]
    # Each pair is exactly what the single-image function gives with the recorded seed.
    record = json.loads((out / "crappify.json").read_text())
    assert record["seed"] == 3 and record["params"]["noise"] == 5.0 and record["images"]["p0-2"]["source"] == "sub/p0.png"
    p = CrappifyParams.from_dict(params)
    clean = prepare_clean(open_image(photos / "p1.png"), p)
    assert record["images"]["p1"]["seed"] == image_seed(3, "p1")
    expected = crappify_image(clean, p, image_seed(3, "p1"))
    assert np.array_equal(np.asarray(Image.open(out / "crappy" / "p1.png")), np.asarray(expected))
    assert np.array_equal(np.asarray(Image.open(out / "clean" / "p1.png")), np.asarray(clean))
    # One process or two, same seed: byte-identical; another seed: different inputs, same targets.
    crappify_dataset(ws, "r2", photos, params, seed=3, processes=1)
    assert files(ws.datasets_dir / "r2") == files(out)
    crappify_dataset(ws, "r3", photos, params, seed=4, processes=1)
    assert files(ws.datasets_dir / "r3" / "clean") == files(out / "clean")
    assert files(ws.datasets_dir / "r3" / "crappy") != files(out / "crappy")
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["kind"] == "restore" and manifest["scale"] == 1 and manifest["counts"] == {"pairs": 5}
    assert list(ws.tmp_dir.iterdir()) == []


def test_super_resolution_keeps_input_small(ws, photos):
    crappify_dataset(ws, "sr", photos, {"scale": 4, "super_res": True, "text": False}, seed=0, processes=1)
    out = ws.datasets_dir / "sr"
    assert Image.open(out / "clean" / "p0.png").size == (64, 48)  # 66x50 cropped to a multiple of 4
    assert Image.open(out / "crappy" / "p0.png").size == (16, 12)
    assert json.loads((out / "dataset.json").read_text())["scale"] == 4


def test_each_degradation_does_what_it_says():
    clean = smooth_picture(0, 64, 48)
    off = CrappifyParams(scale=1, jpeg=False, text=False)
    assert np.array_equal(np.asarray(crappify_image(clean, off, 0)), np.asarray(clean))
    grey = np.asarray(crappify_image(clean, CrappifyParams(scale=1, jpeg=False, text=False, grayscale=True), 0))
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    text = np.asarray(crappify_image(clean, CrappifyParams(scale=1, jpeg=False, text_size=0.5), 0), np.int16)
    assert 0 < (np.abs(text - np.asarray(clean, np.int16)).sum(-1) > 0).mean() < 0.6
    noisy = np.asarray(crappify_image(clean, CrappifyParams(scale=1, jpeg=False, text=False, noise=20.0), 0), float)
    assert 10 < np.std(noisy - np.asarray(clean, float)) < 30
    small = crappify_image(clean, CrappifyParams(scale=4, jpeg=False, text=False), 0)
    assert small.size == clean.size and not np.array_equal(np.asarray(small), np.asarray(clean))
    jpeg = crappify_image(clean, CrappifyParams(scale=1, text=False, jpeg_min=5, jpeg_max=5), 0)
    assert not np.array_equal(np.asarray(jpeg), np.asarray(clean))


def test_preview_follows_settings():
    before, after = preview(np.asarray(smooth_picture(1, 600, 300)), {"scale": 4, "super_res": True})
    assert before.size == after.size == (384, 192)
    b2, a2 = preview(smooth_picture(1, 600, 300), {"scale": 4, "super_res": True})
    assert np.array_equal(np.asarray(a2), np.asarray(after))


@pytest.mark.parametrize("bad, message", [({"scale": 0}, "between 1 and 16"), ({"jpeg_min": 80, "jpeg_max": 20}, "JPEG"),
                                          ({"resample": "magic"}, "resample"), ({"colour": 1}, "Unknown crappify"),
                                          ({"super_res": True, "scale": 1}, "at least 2")])
def test_bad_settings_are_refused(ws, photos, bad, message):
    with pytest.raises(DatasetError, match=message):
        crappify_dataset(ws, "bad", photos, bad)
    assert list(ws.datasets_dir.iterdir()) == []


def test_no_pictures_is_refused(ws, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.png").write_text("not an image")
    with pytest.raises(DatasetError, match="None of the pictures"):
        crappify_dataset(ws, "none", tmp_path / "empty", processes=1)
    assert list(ws.datasets_dir.iterdir()) == [] and list(ws.tmp_dir.iterdir()) == []
