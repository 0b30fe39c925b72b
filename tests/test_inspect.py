"""Inspect on a real tiny run: summary, classifier views, heatmaps, feature maps, concurrent
predictions; the three tabs build; the Share tab starts and stops a demo for a finished run."""
import threading
import types
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from studio import inspect as insp
from studio.checkpoints import CheckpointError, cached_checkpoint, load_checkpoint
from studio.store import Store
from studio.workspace import Workspace
from trainers import fit
from trainers.hooks import hook_count
from conftest import tiny_config, write_colour_classes


@pytest.fixture(scope="module")
def ctx(module_tmp):
    root = module_tmp
    ws = Workspace.open(root / "workspace")
    data = write_colour_classes(ws.dataset_dir("colours"), per_class=10, size=32)
    store = Store(ws.store_dir)
    record = store.create_run(tiny_config(data, epochs=1))
    fit(record["config"], ws.run_dir(record["id"]))
    store.transition(record["id"], "running")
    store.transition(record["id"], "completed")
    yield types.SimpleNamespace(workspace=ws, store=store, jobs=None, run_id=record["id"])
    store.close()


def test_summary_classifier_views_and_no_hooks_left(ctx):
    loaded = load_checkpoint(ctx.workspace.run_dir(ctx.run_id))
    rows = insp.model_summary(loaded)
    first = rows[0]
    assert first[:3] == ["body.0", "Conv2d", "64x16x16"] and first[3] == 3 * 64 * 7 * 7 and first[4] == "yes"
    assert rows[-1][:3] == ["head.8", "Linear", "3"]
    found = insp.validation_predictions(loaded)
    n = len(found["items"])
    cm = insp.confusion_matrix(found["targets"], found["preds"], 3)
    assert cm.sum() == n and cm.shape == (3, 3)
    pairs = insp.most_confused(np.array([[5, 2, 0], [0, 4, 3], [1, 0, 6]]), ["a", "b", "c"])
    assert pairs == [("b", "c", 3), ("a", "b", 2), ("c", "a", 1)]
    grid = insp.top_losses_grid(loaded, found, k=4)
    worst = int(found["losses"].argmax())
    assert grid.size[0] > 128 and found["losses"][worst] >= found["losses"].min()
    picture = Image.new("RGB", (40, 40), (200, 40, 40))
    for method in ("CAM", "Grad-CAM", "Layer-CAM"):
        heat, index = insp.heatmap(loaded, picture, method, None, None, 0.5)
        assert heat.size == (32, 32) and 0 <= index < 3
    maps = insp.strongest_feature_maps(loaded, picture, "body.4", k=4)
    assert maps.size[0] > 2 * 96
    with pytest.raises(ValueError, match="no layer named"):
        insp.strongest_feature_maps(loaded, picture, "nope")
    assert hook_count(loaded.model) == 0
    lines, hist, layers = insp.activation_figures(ctx.workspace.run_dir(ctx.run_id))
    assert layers and lines.data and hist.data


def test_concurrent_predictions_match_serial_ones(ctx):
    loaded = cached_checkpoint(ctx.workspace.run_dir(ctx.run_id))
    assert cached_checkpoint(ctx.workspace.run_dir(ctx.run_id)) is loaded
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(6)]
    serial = [loaded.probabilities(p) for p in pictures]
    got, errors = [None] * 6, []

    def work(i):
        try:
            insp.heatmap(loaded, pictures[i], "Grad-CAM")  # hooks and in-place changes, concurrently
            got[i] = loaded.probabilities(pictures[i])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for a, b in zip(serial, got):
        assert [c for c, _ in a] == [c for c, _ in b] and np.allclose([p for _, p in a], [p for _, p in b], atol=1e-6)
    assert hook_count(loaded.model) == 0


def test_checkpoint_errors_are_sentences(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint yet"):
        load_checkpoint(tmp_path)


def test_tabs_build_and_try_predicts(ctx):
    import gradio as gr
    from studio.ui import inspect_tab, share_tab, try_tab

    with gr.Blocks():
        for name, tab in (("Inspect", inspect_tab), ("Try", try_tab), ("Share", share_tab)):
            with gr.Tab(name):
                tab.build(ctx)
    assert [c[1] for c in inspect_tab.finished_runs(ctx)] == [ctx.run_id]
    loaded = load_checkpoint(ctx.workspace.run_dir(ctx.run_id))
    top, picture, note = try_tab.classify_view(loaded, Image.new("RGB", (32, 32), (40, 40, 200)), 2)
    assert len(top) == 2 and abs(sum(top.values()) - 1) < 1 and picture.size == (32, 32) and "Grad-CAM" in note


def test_share_tab_starts_and_stops_a_demo(ctx):
    from studio.ui import share_tab

    demo, message = share_tab.start_demo(ctx, ctx.run_id)
    try:
        assert demo.url in message and (ctx.workspace.root / "exports" / ctx.run_id / "model.json").is_file()
        with urllib.request.urlopen(demo.url, timeout=10) as response:
            assert response.status == 200
    finally:
        assert share_tab.stop_demo(ctx.run_id)
    assert not demo.running() and not share_tab.stop_demo(ctx.run_id)


@pytest.fixture(scope="module")
def segment_run(ctx):
    """A finished segment run in the same workspace: (run id, its loaded checkpoint)."""
    from test_segment import write_shapes

    data = write_shapes(ctx.workspace.dataset_dir("shapes"), n=12)
    record = ctx.store.create_run(tiny_config(data, task="segment", epochs=1, batch_size=6, lr=1e-2))
    fit(record["config"], ctx.workspace.run_dir(record["id"]))
    ctx.store.transition(record["id"], "running")
    ctx.store.transition(record["id"], "completed")
    return record["id"], load_checkpoint(ctx.workspace.run_dir(record["id"]))


def test_segment_run_summary_feature_maps_and_region_grad_cam(segment_run):
    _, loaded = segment_run
    hooks_before = hook_count(loaded.model)  # the U-Net's own cross-connection hooks stay
    rows = insp.model_summary(loaded)
    assert rows[0][:3] == ["encoder.0", "Conv2d", "64x16x16"]
    assert [r[:3] for r in rows if r[0] == "head"] == [["head", "Conv2d", "3x32x32"]]
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    maps = insp.strongest_feature_maps(loaded, picture, "encoder.4", k=4)
    assert maps.size[0] > 2 * 96
    assert not insp.is_classifier(loaded) and insp.heatmap_classes(loaded) == ["background", "square", "bar"]
    assert insp.heatmap_methods(loaded) == ["Grad-CAM", "Layer-CAM"]  # no pooled head: no CAM
    heat, index = insp.heatmap(loaded, picture, "Grad-CAM", 1, None, 0.5)
    assert heat.size == (32, 32) and index == 1
    with pytest.raises(insp.InspectError, match="not available"):
        insp.heatmap(loaded, picture, "CAM")
    with pytest.raises(insp.InspectError, match="classify runs"):
        insp.validation_predictions(loaded)
    assert hook_count(loaded.model) == hooks_before


def test_picture_models_get_summary_and_feature_maps_but_no_heatmap(tmp_path):
    from studio.checkpoints import LoadedModel
    from trainers.models.unet import UNet

    torch.manual_seed(0)
    model = UNet("resnet18", n_out=3, pretrained=False).eval()  # a restore network's shape
    loaded = LoadedModel(model=model, task="restore", info={"image_size": 32}, config={}, path=tmp_path)
    before = hook_count(model)
    assert insp.model_summary(loaded)[-1][:3] == ["head", "Conv2d", "3x32x32"]
    picture = Image.new("RGB", (32, 32), (90, 120, 30))
    assert insp.strongest_feature_maps(loaded, picture, "encoder.7", k=2).size[0] >= 2 * 96
    assert insp.heatmap_methods(loaded) == [] and insp.heatmap_classes(loaded) == []
    with pytest.raises(insp.InspectError, match="outputs pictures"):
        insp.heatmap(loaded, picture)
    assert hook_count(model) == before


def test_inspect_tab_hides_classifier_parts_for_a_segment_run(ctx, segment_run):
    import gradio as gr
    from studio.ui import inspect_tab

    with gr.Blocks() as demo:
        inspect_tab.build(ctx)
    handlers = {f.fn.__name__: f for f in demo.fns.values()}
    opened = handlers["on_open"]

    def shown(run_id) -> dict:
        return {getattr(c, "label", None) or type(c).__name__: v
                for c, v in zip(opened.outputs, opened.fn(run_id))}

    classify, segment = shown(ctx.run_id), shown(segment_run[0])
    views = "Classifier: confusion matrix, most confused, top losses"
    assert classify[views]["visible"] is True and segment[views]["visible"] is False
    assert classify["Method"]["choices"] == ["Grad-CAM", "Layer-CAM", "CAM"]
    assert segment["Method"]["choices"] == ["Grad-CAM", "Layer-CAM"] and segment["Method"]["visible"]
    assert segment["Class (empty: the predicted one)"]["choices"] == ["background", "square", "bar"]
    assert segment["Model summary"][0][0] == "encoder.0"
    assert segment["Layer (Grad-CAM, Layer-CAM, feature maps)"]["value"] == "encoder.7"
    picture = Image.new("RGB", (40, 40), (230, 210, 60))
    heat, note = handlers["on_heatmap"].fn(segment_run[0], picture, "Grad-CAM", "square", None, 0.5)
    assert heat.size == (32, 32) and "**square** over the pixels predicted as it" in note
    with pytest.raises(gr.Error, match="classify runs"):
        handlers["on_validate"].fn(segment_run[0])
