"""The Data tab through its documented API, on a real server bound to 127.0.0.1."""

import io
import json
import types
import zipfile

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from studio.datasets.samples import install_samples
from studio.ui import data_tab
from studio.workspace import Workspace


def png(seed):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(module_tmp):
    root = module_tmp
    ws = Workspace.open(root / "ws")
    install_samples(ws)
    with gr.Blocks() as demo:
        with gr.Tab("Data"):
            data_tab.build(types.SimpleNamespace(workspace=ws, store=None, jobs=None))
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        yield ws, root, Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_import_folder_from_an_uploaded_zip(served):
    ws, root, client = served
    z = root / "pets.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for c, cls in enumerate(("cat", "dog")):
            for i in range(5):
                zf.writestr(f"pets/{cls}/{cls}{i}.png", png(10 * c + i))
        zf.writestr("pets/dog/notes.png", b"not a picture")
    summary, chart, gallery, skipped, named = client.predict(
        "pets", "", handle_file(str(z)), "random", 20, 42, api_name="/import_folder"
    )
    assert "10 images in 2 classes" in summary
    manifest = json.loads((ws.datasets_dir / "pets" / "dataset.json").read_text())
    assert manifest["counts"] == {"train": {"cat": 4, "dog": 4}, "valid": {"cat": 1, "dog": 1}}
    assert len(gallery) == 8  # thumbnails of the training images, up to 6 per class
    reason = "notes.png is not an image (its contents are not a picture format we can read)."
    assert skipped["data"] == [["dog/notes.png", reason]]
    # The same summary by name, as a script reads it (the last output), without the host's folder.
    assert (named["name"], named["kind"], named["classes"], named["images"]) == ("pets", "classify", ["cat", "dog"], 10)
    assert named["counts"] == manifest["counts"] and named["skipped"] == [{"file": "dog/notes.png", "reason": reason}]
    assert "path" not in named and str(ws.root) not in json.dumps(named)


def test_hostile_zip_shows_the_message(served):
    ws, root, client = served
    z = root / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("cat/a.png", png(1))
        zf.writestr("../../evil.png", png(2))
    with pytest.raises(Exception) as caught:
        client.predict("evil", "", handle_file(str(z)), "random", 20, 42, api_name="/import_folder")
    assert "refused and nothing was extracted" in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert not (ws.datasets_dir / "evil").exists() and list(ws.tmp_dir.iterdir()) == []
    with pytest.raises(Exception, match="not allowed"):
        client.predict("../up", "", handle_file(str(z)), "random", 20, 42, api_name="/import_folder")


def test_crappify_masks_and_augmentations(served):
    ws, root, client = served
    settings = [2, "bilinear", True, 10, 70, True, "number", 30, 100, 0, 0, False, False, 0]
    summary, pairs, skipped, named = client.predict("photos-sr", "photos", "", None, 0, *settings, api_name="/crappify")
    assert "12 pairs" in summary and len(pairs) == 16
    assert named["name"] == "photos-sr" and named["kind"] == "restore" and named["pairs"] == 12
    assert named["counts"] == {"pairs": 12} and named["skipped"] == [] and "path" not in named
    assert json.loads((ws.datasets_dir / "photos-sr" / "dataset.json").read_text())["kind"] == "restore"

    shapes = root / "shapes.zip"
    with zipfile.ZipFile(shapes, "w") as zf:
        for p in sorted((ws.datasets_dir / "shapes").rglob("*")):
            if p.parent.name in ("images", "labels") and p.stem < "shape_010":
                zf.write(p, p.relative_to(ws.datasets_dir / "shapes"))
        zf.writestr("codes.txt", "background\ncircle\nsquare\ntriangle\n")
    summary, view, legend, freq, skipped, named = client.predict(
        "shapes10", "", handle_file(str(shapes)), "", "", "", api_name="/import_masks"
    )
    assert "10 image and mask pairs" in summary and "triangle" in legend
    assert (named["name"], named["kind"], named["images"]) == ("shapes10", "segment", 10)
    assert named["codes"] == ["background", "circle", "square", "triangle"] and named["skipped"] == []

    gallery = client.predict("shapes10", 0, 3, 0, api_name="/preview_augmentations")
    assert len(gallery) == 3
    with pytest.raises(Exception, match="no dataset named 'nope'"):
        client.predict("nope", 0, 3, 0, api_name="/preview_augmentations")


def test_a_shared_studio_reads_no_server_folder_and_limits_uploads(tmp_path):
    """app.py's own options with --share (the app is launched locally: no link is asked for)."""
    import httpx

    import app
    from studio.ui import build_app

    local = app.open_context(app.parse_args(["--workspace", str(tmp_path / "local")]))
    assert not local.shared and app.parse_args([]).max_upload == app.MAX_UPLOAD
    local.store.close()
    args = app.parse_args(["--share", "--workspace", str(tmp_path / "ws"), "--max-upload", "1MB"])
    ctx = app.open_context(args)
    assert ctx.shared
    folder = tmp_path / "pictures"  # a folder of this machine that a visitor names
    for c, cls in enumerate(("cat", "dog")):
        (folder / cls).mkdir(parents=True)
        for i in range(3):
            (folder / cls / f"{i}.png").write_bytes(png(10 * c + i))
    demo = build_app(ctx)
    demo.queue().launch(**app.launch_options(args, ctx, share=False))
    try:
        hidden = [
            c["props"].get("visible")
            for c in demo.config["components"]
            if "folder on this machine" in str(c["props"].get("label", "")).lower()
        ]
        assert hidden == [False, False, False]  # folder labels, crappify, masks
        client = Client(demo.local_url, verbose=False)
        with pytest.raises(Exception, match="shared over a public link"):
            client.predict("pets", str(folder), None, "random", 20, 42, api_name="/import_folder")
        with pytest.raises(Exception, match="shared over a public link"):
            client.predict("masks", str(folder), None, "", "", "", api_name="/import_masks")
        assert not (ctx.workspace.datasets_dir / "pets").exists()
        z = tmp_path / "pets.zip"  # uploads still work
        with zipfile.ZipFile(z, "w") as zf:
            for i in range(4):
                zf.writestr(f"cat/{i}.png", png(i))
                zf.writestr(f"dog/{i}.png", png(10 + i))
        summary = client.predict("pets", "", handle_file(str(z)), "random", 25, 42, api_name="/import_folder")[0]
        assert "8 images in 2 classes" in summary
        upload = demo.local_url + "gradio_api/upload"
        small = httpx.post(upload, files={"files": ("small.bin", b"x" * 1000)}, timeout=30)
        big = httpx.post(upload, files={"files": ("big.bin", b"x" * (2 << 20))}, timeout=30)
        assert small.status_code == 200 and big.status_code == 413  # over --max-upload
    finally:
        demo.close()
        ctx.store.close()


def test_the_crappify_form_reads_the_recipe_by_name():
    import dataclasses

    from studio.datasets.crappify import CrappifyParams

    with gr.Blocks():
        controls = data_tab.crappify_controls()
    # every field of the recipe has its control, in the order /crappify takes them (docs/API.md)
    assert list(controls) == [f.name for f in dataclasses.fields(CrappifyParams)]
    shown = {name: control.value for name, control in controls.items()}
    assert data_tab.crappify_params(shown) == CrappifyParams()  # the form starts at the recipe's defaults
    changed = data_tab.crappify_params({**shown, "text_size": 50, "super_res": True, "scale": 2})
    assert (changed.text_size, changed.super_res, changed.scale, changed.max_side) == (0.5, True, 2, 0)
