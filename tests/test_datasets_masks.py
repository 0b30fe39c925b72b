"""Masks: images + label PNGs + codes -> a segment dataset; every wrong file is named."""
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from studio.datasets.errors import DatasetError
from studio.datasets.masks import (build_painted, class_colours, import_masks, overlay, painted_indices,
                                   pixel_frequencies, segment_sample)
from studio.workspace import Workspace

CODES = ["background", "road", "car"]
PALETTE = [(0, 0, 0), (128, 64, 128), (64, 0, 128)]


def values(seed, w=16, h=12, top=3):
    return np.random.default_rng(seed).integers(0, top, (h, w)).astype(np.uint8)


def picture(seed, w=16, h=12):
    return Image.fromarray(np.random.default_rng(seed + 100).integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def ws(tmp_path):
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def camvid(tmp_path):
    src = tmp_path / "camvid"
    (src / "images").mkdir(parents=True)
    (src / "labels").mkdir()
    (src / "codes.txt").write_text("\n".join(CODES) + "\n")
    for i in range(3):
        picture(i).save(src / "images" / f"f{i}.png")
    Image.fromarray(values(0), "L").save(src / "labels" / "f0.png")
    Image.fromarray(values(1), "L").save(src / "labels" / "f1_P.png")  # CamVid's naming
    Image.fromarray(values(2)).convert("P").save(src / "labels" / "f2.png")
    return src


def test_import_exact_labels_and_counts(ws, camvid):
    report = import_masks(ws, "roads", camvid, void="background")
    out = ws.datasets_dir / "roads"
    assert report["skipped"] == [] and report["images"] == 3
    for i in range(3):
        label = Image.open(out / "labels" / f"f{i}.png")
        assert label.mode == "P" and np.array_equal(np.asarray(label), values(i))
        assert np.array_equal(np.asarray(Image.open(out / "images" / f"f{i}.png")), np.asarray(picture(i)))
    manifest = json.loads((out / "dataset.json").read_text())
    total = np.bincount(np.concatenate([values(i).ravel() for i in range(3)]), minlength=3)
    assert manifest["kind"] == "segment" and manifest["codes"] == CODES and manifest["void"] == "background"
    assert manifest["counts"]["pixels"] == dict(zip(CODES, total.tolist()))
    assert (out / "codes.txt").read_text().split() == CODES
    freq = pixel_frequencies(out)
    assert freq == pytest.approx({c: n / total.sum() for c, n in zip(CODES, total)})
    image, mask, codes = segment_sample(out, 1)
    assert np.array_equal(mask, values(1)) and codes == CODES


def test_every_wrong_file_is_named(ws, camvid):
    picture(5).save(camvid / "images" / "lonely.png")                      # no label
    Image.fromarray(values(6), "L").save(camvid / "labels" / "ghost.png")  # no image
    picture(7).save(camvid / "images" / "big.png")
    Image.fromarray(values(7, w=20), "L").save(camvid / "labels" / "big.png")  # wrong size
    picture(8).save(camvid / "images" / "stray.png")
    Image.fromarray(values(8, top=12), "L").save(camvid / "labels" / "stray.png")  # values 3..11 not in codes
    picture(9).save(camvid / "images" / "broken.png")
    (camvid / "labels" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    report = import_masks(ws, "roads", camvid)
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert reasons["images/lonely.png"] == "image without a label"
    assert reasons["labels/ghost.png"] == "label without an image"
    assert reasons["labels/big.png"] == "is 20x12 but its image is 16x12"
    assert reasons["labels/stray.png"].startswith("has values outside the 3 codes (0-2): 3, 4, 5")
    assert "broken.png" in reasons["images/broken.png"]
    assert len(reasons) == 5 and report["images"] == 3
    assert sorted(p.name for p in (ws.datasets_dir / "roads" / "labels").iterdir()) == ["f0.png", "f1.png", "f2.png"]


def test_colour_masks_with_palette(ws, tmp_path):
    src = tmp_path / "colour"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    for i in range(2):
        picture(i).save(src / "images" / f"c{i}.png")
        Image.fromarray(np.asarray(PALETTE, np.uint8)[values(i)]).save(src / "masks" / f"c{i}.png")
    rgb = np.asarray(PALETTE, np.uint8)[values(2)]
    rgb[0, 0] = (1, 2, 3)
    picture(2).save(src / "images" / "odd.png")
    Image.fromarray(rgb).save(src / "masks" / "odd.png")
    report = import_masks(ws, "colour", src, codes="\n".join(CODES), palette=PALETTE)
    assert report["images"] == 2
    assert report["skipped"] == [{"file": "masks/odd.png", "reason": "has colours not in the palette: (1, 2, 3)"}]
    assert np.array_equal(np.asarray(Image.open(ws.datasets_dir / "colour" / "labels" / "c1.png")), values(1))
    with pytest.raises(DatasetError, match="no palette"):
        import_masks(ws, "nopalette", src, codes=CODES)
    assert not (ws.datasets_dir / "nopalette").exists()


def test_zip_source_and_refusals(ws, camvid, tmp_path):
    z = tmp_path / "camvid.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(camvid.rglob("*")):
            if p.is_file():
                zf.write(p, "camvid/" + str(p.relative_to(camvid)))
    assert import_masks(ws, "zipped", z)["images"] == 3
    with pytest.raises(DatasetError, match="void code 'sky'"):
        import_masks(ws, "v", camvid, void="sky")
    with pytest.raises(DatasetError, match="at least two codes"):
        import_masks(ws, "c", camvid, codes="only")
    with pytest.raises(DatasetError, match="not allowed"):
        import_masks(ws, "../up", camvid)
    (camvid / "codes.txt").unlink()
    with pytest.raises(DatasetError, match="no codes.txt"):
        import_masks(ws, "n", camvid)
    assert sorted(p.name for p in ws.datasets_dir.iterdir()) == ["zipped"]
    assert list(ws.tmp_dir.iterdir()) == []


def test_all_pairs_bad_makes_nothing(ws, camvid):
    for p in (camvid / "labels").iterdir():
        Image.fromarray(values(0, top=9) + 3, "L").save(p)
    with pytest.raises(DatasetError, match="No valid image and label pairs.*values outside"):
        import_masks(ws, "bad", camvid)
    assert list(ws.datasets_dir.iterdir()) == [] and list(ws.tmp_dir.iterdir()) == []


def test_painted_masks_become_index_pngs(ws, tmp_path):
    colours = class_colours(3)
    layer = np.zeros((12, 16, 4), np.uint8)
    layer[2:5, 2:6] = colours[1] + (255,)
    layer[6:9, 8:12] = (colours[2][0] - 10, colours[2][1] + 5, colours[2][2], 200)  # a blended brush edge
    layer[0, 0] = (255, 255, 255, 40)  # nearly transparent: not painted
    idx = painted_indices(Image.fromarray(layer, "RGBA"), colours)
    expected = np.zeros((12, 16), np.uint8)
    expected[2:5, 2:6], expected[6:9, 8:12] = 1, 2
    assert np.array_equal(idx, expected)
    picture(0).save(tmp_path / "a.png")
    picture(1).save(tmp_path / "b.png")
    report = build_painted(ws, "painted", {"a": tmp_path / "a.png", "b": tmp_path / "b.png"},
                           {"a": idx, "b": np.zeros((5, 5), np.uint8)}, CODES)
    assert report["images"] == 1 and report["skipped"][0]["file"] == "b"
    assert np.array_equal(np.asarray(Image.open(ws.datasets_dir / "painted" / "labels" / "a.png")), expected)
    with pytest.raises(DatasetError, match="No masks have been painted"):
        build_painted(ws, "empty", {"a": tmp_path / "a.png"}, {}, CODES)


def test_overlay_colours_only_labelled_pixels():
    image = Image.new("RGB", (4, 2), (100, 100, 100))
    mask = np.array([[0, 1, 2, 0], [0, 0, 0, 1]], np.uint8)
    out = np.asarray(overlay(image, mask, class_colours(3), opacity=1.0))
    assert tuple(out[0, 0]) == (100, 100, 100) and tuple(out[0, 1]) == class_colours(3)[1]
    half = np.asarray(overlay(image, mask, class_colours(3), opacity=0.5))
    assert tuple(half[0, 2]) == tuple(round((100 + c) / 2) for c in class_colours(3)[2])
