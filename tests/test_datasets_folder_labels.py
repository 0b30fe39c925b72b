"""Folder labels: class folders or a zip of them -> datasets/NAME, split exactly as seeded."""
import hashlib
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from studio.datasets.errors import DatasetError
from studio.datasets.folder_labels import class_thumbnails, import_folder
from studio.workspace import Workspace


def picture(seed, size=24, mode="RGB"):
    a = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return Image.fromarray(a).convert(mode)


def make_classes(root, classes=("cat", "dog", "owl"), per_class=5, start=0):
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            picture(start + 100 * c + i).save(root / cls / f"{cls}{i}.png")
    return root


def tree_digest(root):
    h = hashlib.sha1()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))


@pytest.fixture
def ws(tmp_path):
    return Workspace.open(tmp_path / "ws")


def test_random_split_is_exact_and_seeded(ws, tmp_path):
    src = make_classes(tmp_path / "src")
    before = tree_digest(src)
    report = import_folder(ws, "pets", src, split="random", valid_pct=0.4, seed=7)
    out = ws.datasets_dir / "pets"
    assert listing(out / "valid") == ["cat/cat0.png", "cat/cat4.png", "dog/dog2.png", "dog/dog3.png",
                                      "owl/owl2.png", "owl/owl3.png"]
    assert len(listing(out / "train")) == 9
    assert report["counts"] == {"train": {"cat": 3, "dog": 3, "owl": 3}, "valid": {"cat": 2, "dog": 2, "owl": 2}}
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["kind"] == "classify" and manifest["classes"] == ["cat", "dog", "owl"]
    assert manifest["builder"]["seed"] == 7 and manifest["counts"] == report["counts"]
    assert tree_digest(src) == before, "the source must not change"
    assert list(ws.tmp_dir.iterdir()) == []
    # Same seed: same split; another seed: another split.
    import_folder(ws, "pets2", src, valid_pct=0.4, seed=7)
    assert listing(ws.datasets_dir / "pets2" / "valid") == listing(out / "valid")
    import_folder(ws, "pets3", src, valid_pct=0.4, seed=8)
    assert listing(ws.datasets_dir / "pets3" / "valid") != listing(out / "valid")
    # Pixels survive the trip (PNG in, PNG out).
    assert np.array_equal(np.asarray(Image.open(out / "valid/cat/cat0.png")), np.asarray(picture(0)))
    assert [c for _, c in class_thumbnails(out, per_class=2)] == ["cat", "cat", "dog", "dog", "owl", "owl"]


def test_split_by_folder_from_a_wrapped_zip(ws, tmp_path):
    make_classes(tmp_path / "d" / "pets" / "train", per_class=3)
    make_classes(tmp_path / "d" / "pets" / "valid", per_class=2, start=50)
    z = tmp_path / "pets.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted((tmp_path / "d").rglob("*.png")):
            zf.write(p, p.relative_to(tmp_path / "d"))
    report = import_folder(ws, "pets", z, split="folder")
    assert report["counts"] == {"train": {"cat": 3, "dog": 3, "owl": 3}, "valid": {"cat": 2, "dog": 2, "owl": 2}}
    assert "valid/owl/owl1.png" in listing(ws.datasets_dir / "pets")
    assert list(ws.tmp_dir.iterdir()) == []


def test_folder_split_needs_train_and_valid(ws, tmp_path):
    src = make_classes(tmp_path / "src")
    with pytest.raises(DatasetError, match="needs a train/ and a valid/"):
        import_folder(ws, "x", src, split="folder")
    assert list(ws.datasets_dir.iterdir()) == [] and list(ws.tmp_dir.iterdir()) == []


def test_bad_files_are_skipped_with_reasons(ws, tmp_path):
    src = make_classes(tmp_path / "src", per_class=3)
    (src / "cat" / "copy.png").write_bytes((src / "cat" / "cat0.png").read_bytes())
    (src / "cat" / "fake.png").write_text("not a picture")
    data = (src / "dog" / "dog0.png").read_bytes()
    (src / "dog" / "cut.png").write_bytes(data[: len(data) // 2])
    picture(9, size=8).save(src / "owl" / "tiny.png")
    (src / "owl" / "readme.txt").write_text("hello")
    picture(10).save(src / "loose.png")
    (src / "empty").mkdir()
    Image.new("1", (10_000, 5_000)).save(src / "owl" / "bomb.png")
    report = import_folder(ws, "pets", src, valid_pct=0.34, seed=1)
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert reasons["cat/copy.png"] == "duplicate of cat/cat0.png"
    assert "not an image" in reasons["cat/fake.png"]
    assert "truncated" in reasons["dog/cut.png"]
    assert reasons["owl/tiny.png"].startswith("too small (8x8")
    assert reasons["owl/readme.txt"] == "not an image file"
    assert reasons["loose.png"] == "not inside a class folder"
    assert "decompression bomb" in reasons["owl/bomb.png"]
    assert len(reasons) == 7
    assert any("'empty'" in n for n in report["notes"])
    assert report["classes"] == ["cat", "dog", "owl"] and report["images"] == 9


def test_converted_modes_and_non_ascii_names(ws, tmp_path):
    src = tmp_path / "src"
    for cls in ("chats_été", "犬"):
        (src / cls).mkdir(parents=True)
    picture(1).convert("CMYK").save(src / "chats_été" / "çà.jpg")
    picture(2, mode="P").save(src / "chats_été" / "palette.png")
    Image.fromarray((np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) * 100)).save(src / "犬" / "deep.png")
    picture(3, mode="RGBA").save(src / "犬" / "alpha.png")
    picture(4, mode="L").save(src / "犬" / "grey.png")
    report = import_folder(ws, "mixed", src, valid_pct=0.5, seed=0)
    assert report["skipped"] == [] and report["images"] == 5
    files = listing(ws.datasets_dir / "mixed")
    assert sum(f.endswith("çà.png") for f in files) == 1
    for f in files:
        assert Image.open(ws.datasets_dir / "mixed" / f).mode == "RGB"


def test_single_class_is_refused_and_nothing_is_left(ws, tmp_path):
    src = make_classes(tmp_path / "src", classes=("cat",))
    (src / "dog").mkdir()  # empty: does not count as a class
    with pytest.raises(DatasetError, match=r"Only one class \('cat'\)"):
        import_folder(ws, "pets", src)
    assert list(ws.datasets_dir.iterdir()) == [] and list(ws.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "a/b", "..", ""])
def test_dataset_name_that_is_a_path_is_refused(ws, tmp_path, name):
    src = make_classes(tmp_path / "src", per_class=2)
    with pytest.raises(DatasetError):
        import_folder(ws, name, src)
    assert list(ws.datasets_dir.iterdir()) == [] and not (tmp_path / "evil").exists()


def test_existing_name_is_refused_and_kept(ws, tmp_path):
    src = make_classes(tmp_path / "src", per_class=2)
    import_folder(ws, "pets", src)
    before = tree_digest(ws.datasets_dir / "pets")
    with pytest.raises(DatasetError, match="already exists"):
        import_folder(ws, "pets", src, seed=3)
    assert tree_digest(ws.datasets_dir / "pets") == before


def test_hostile_zip_leaves_workspace_clean(ws, tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("cat/a.png", b"x")
        zf.writestr("../../evil.png", b"x")
    with pytest.raises(DatasetError, match="nothing was extracted"):
        import_folder(ws, "pets", z)
    assert list(ws.datasets_dir.iterdir()) == [] and list(ws.tmp_dir.iterdir()) == []
    assert not list(tmp_path.rglob("evil.png"))
