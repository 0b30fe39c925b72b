"""The Try tab on real tiny runs of every task: classify, segment, restore, gan, wgan, style (and
a Gatys run, which has no network to try). Each run trains for an epoch through trainers' fit;
the views are called directly, and through the launched studio with gradio_client."""
import types

import numpy as np
import pytest
import torch
from PIL import Image

from studio.checkpoints import CheckpointError, load_checkpoint
from studio.ui import try_tab
from studio.ui.context import StudioContext
from trainers import fit
from conftest import tiny_config, write_colour_classes
from test_gan import write_images
from test_restore import restore_config, write_pairs
from test_segment import seg_config, write_shapes
from test_unet import _write_random_vgg_features


def _train(ctx, name, config):
    """Train `config` into a run folder of the workspace and record it as completed."""
    record = ctx.store.create_run(config, name=name)
    result = fit(config, ctx.workspace.run_dir(record["id"]))
    assert result["status"] == "completed", result
    ctx.store.transition(record["id"], "running")
    ctx.store.transition(record["id"], "completed")
    return record["id"]


@pytest.fixture(scope="module")
def studio(module_tmp):
    """A workspace with one finished run of every task (about half a minute on two cores)."""
    root = module_tmp
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the one_thread fixture: small convolutions are faster so
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(root / "torch"))  # a seeded random VGG16-BN for the style loss
        _write_random_vgg_features()
        ctx = StudioContext.open(root / "workspace")
        ds = ctx.workspace.datasets_dir
        runs = {}
        colours = write_colour_classes(ds / "colours", per_class=8, size=32)
        runs["classify"] = _train(ctx, "colours", tiny_config(colours, epochs=1))
        shapes = write_shapes(ds / "shapes", n=12)
        runs["segment"] = _train(ctx, "shapes", seg_config(shapes, epochs=1))
        pairs = write_pairs(ds / "pairs", n=12)
        runs["restore"] = _train(ctx, "pairs", restore_config(pairs, epochs=1, batch_size=4, augment=False))
        runs["gan"] = _train(ctx, "gan", {
            "task": "gan", "data": str(pairs), "epochs": 1, "batch_size": 4, "image_size": 32, "lr": 1e-3,
            "augment": False, "extra": {"generator_run": str(ctx.workspace.run_dir(runs["restore"])),
                                        "critic_width": 8, "switcher": "fixed", "n_critic": 1, "n_gen": 1,
                                        "crops_per_epoch": 8}})
        images = write_images(ds / "blobs", n=8, size=24)
        runs["wgan"] = _train(ctx, "blobs", {
            "task": "wgan", "data": str(images), "epochs": 1, "batch_size": 4, "image_size": 16, "lr": 2e-4,
            "extra": {"width": 8, "latent": 16, "images_per_epoch": 8, "n_critic": 1}})
        runs["style"] = _train(ctx, "style", {
            "task": "style", "data": str(images), "epochs": 1, "batch_size": 4, "image_size": 32, "lr": 1e-3,
            "sample_count": 2, "extra": {"style_image": str(images / "00.png"), "width": 8, "residual_blocks": 1,
                                         "images_per_epoch": 8, "style_layers": [1, 2]}})
        runs["gatys"] = _train(ctx, "gatys", {
            "task": "style", "data": str(images), "epochs": 1, "image_size": 16,
            "extra": {"mode": "gatys", "steps": 2, "style_image": str(images / "01.png"), "style_layers": [1, 2],
                      "content_layers": [2]}})
        yield types.SimpleNamespace(ctx=ctx, runs=runs, root=root)
    torch.set_num_threads(threads)
    ctx.store.close()


def loaded(studio, task):
    return load_checkpoint(studio.ctx.workspace.run_dir(studio.runs[task]))


def photo(size=(40, 32), seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_classify_gives_top_k_and_a_heatmap(studio):
    top, heat, note = try_tab.classify_view(loaded(studio, "classify"), Image.new("RGB", (32, 32), (200, 40, 40)), 2)
    assert len(top) == 2 and set(top) <= {"red", "green", "blue"} and 0 < sum(top.values()) <= 1 + 1e-6
    assert heat.size == (32, 32) and "Grad-CAM" in note


def test_segment_overlay_follows_opacity_and_the_legend_names_every_class_in_its_colour(studio):
    model = loaded(studio, "segment")
    picture = photo((32, 32))
    clear, legend = try_tab.segment_view(model, picture, 0.0)
    full, _ = try_tab.segment_view(model, picture, 1.0)
    assert np.array_equal(np.asarray(clear), np.asarray(model.shown(picture)))  # opacity 0: the picture itself
    palette = {tuple(c) for c in model.info["palette"]}
    assert {tuple(p) for p in np.asarray(full).reshape(-1, 3)} <= palette  # opacity 1: class colours only
    for code, colour in zip(model.info["codes"], model.info["palette"]):
        assert code in legend and f"rgb{tuple(colour)}" in legend


@pytest.mark.parametrize("task", ["restore", "gan"])
def test_restore_and_gan_give_before_and_after(studio, task):
    """The whole picture, not a centre crop: restored in tiles of the training size (32 px here)
    by the function the run's validation used."""
    from trainers.tiling import tiled

    model = loaded(studio, task)
    assert model.task == task
    picture = photo((48, 40))
    (before, after), pair = try_tab.before_after_view(model, picture)
    assert before.size == after.size == (48, 40) and pair.width > 2 * 48
    assert np.array_equal(np.asarray(before), np.asarray(picture.convert("RGB")))
    x = (torch.from_numpy(np.asarray(picture.convert("RGB"), np.float32) / 255).permute(2, 0, 1)
         - torch.tensor(model.mean).view(3, 1, 1)) / torch.tensor(model.std).view(3, 1, 1)
    expected = (tiled(model.model, x[None], 32)[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
    assert np.abs(np.asarray(after).astype(int) - expected.numpy().astype(int)).max() <= 1


def test_the_gan_run_loads_its_own_trained_generator_not_the_restore_run(studio):
    restore, gan = loaded(studio, "restore"), loaded(studio, "gan")
    saved = torch.load(gan.path, map_location="cpu", weights_only=True)["model"]
    mine, before_gan = gan.model.state_dict(), restore.model.state_dict()
    assert mine.keys() == saved.keys() == before_gan.keys()  # the same U-Net...
    assert all(torch.equal(v, saved[k]) for k, v in mine.items())
    assert any(not torch.equal(v, before_gan[k]) for k, v in mine.items())  # ...with the GAN-trained weights


def test_wgan_same_seed_same_pictures_other_seed_other_pictures(studio):
    model = loaded(studio, "wgan")
    first, again, other = (try_tab.generate_view(model, s, 5) for s in (7, 7, 8))
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))
    assert [im.size for im in model.generate(7, 3)] == [(16, 16)] * 3
    with pytest.raises(CheckpointError, match="between 1 and"):
        model.generate(0, 1000)


def test_style_network_stylises_a_photo_at_its_size_capped(studio):
    model = loaded(studio, "style")
    picture = photo((40, 30))
    styled = try_tab.stylise_view(model, picture)
    assert styled.size == (40, 30) and not np.array_equal(np.asarray(styled), np.asarray(picture))
    assert model.stylise(photo((900, 300)), max_side=300).size == (300, 100)


def test_a_gatys_run_says_it_has_no_network(studio):
    with pytest.raises(CheckpointError, match="Gatys.*no network.*result.png"):
        loaded(studio, "gatys")


def test_each_task_shows_only_its_inputs():
    assert try_tab.shown_for("wgan")["picture"] is False and try_tab.shown_for("wgan")["seed"] is True
    for task in ("classify", "segment", "restore", "gan", "style"):
        shown = try_tab.shown_for(task)
        assert shown["picture"] and not shown["seed"] and not shown["count"]
    assert try_tab.shown_for("classify")["k"] and not try_tab.shown_for("style")["k"]
    assert try_tab.shown_for("segment")["opacity"] and not try_tab.shown_for("classify")["opacity"]
    from trainers.tasks import TASKS

    for task in TASKS:  # exactly one answer view per task of the registry
        shown = try_tab.shown_for(task)
        assert sum(shown[view] for view in try_tab.VIEWS) == 1


def assert_named_answer(named: dict, loaded, run_id: str, given: dict) -> None:
    """The named JSON of a Try answer (the last output of /try_model) holds, by name, what the
    run's view answers in numbers and words, and nothing that is not plain JSON."""
    import json

    view = loaded.kind.try_view
    assert json.loads(json.dumps(named)) == named
    assert (named["run_id"], named["task"], named["view"]) == (run_id, loaded.task, view)
    picture = given.get("picture")
    if view == "classes":
        top = named["top"]
        probabilities = [t["probability"] for t in top]
        assert len(top) == given["k"] and {t["label"] for t in top} <= set(loaded.classes)
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-4
        assert named["heatmap"]["class"] in loaded.classes and named["heatmap"]["class"] in named["note"]
    elif view == "overlay":
        assert named["codes"] == list(loaded.info["codes"]) == list(named["pixel_share"])
        assert abs(sum(named["pixel_share"].values()) - 1) < 1e-4 and min(named["pixel_share"].values()) >= 0
        assert named["size"] == list(loaded.shown(picture).size) and named["opacity"] == given["opacity"]
    elif view == "before_after":  # a small picture is restored whole (larger by the scale for super-resolution)
        scale = int(loaded.info.get("scale", 1) or 1)
        assert named["input_size"] == list(picture.size) and named["size"] == [scale * n for n in picture.size]
    elif view == "drawn":
        assert (named["seed"], named["count"]) == (given["seed"], given["count"])
        assert named["size"] == list(loaded.generate(0, 1)[0].size)
    else:
        assert view == "stylised" and named["size"] == named["input_size"] == list(picture.size)


@pytest.mark.parametrize("task", ["classify", "segment", "restore", "gan", "wgan", "style"])
def test_each_answer_is_named_in_its_views_terms(studio, task):
    model = loaded(studio, task)
    given = {"picture": photo((40, 32)), "k": 2, "opacity": 0.25, "seed": 5, "count": 3}
    shown, named = try_tab.answer(model, studio.runs[task], given)
    assert_named_answer(named, model, studio.runs[task], given)
    assert shown and all(value is not None for value in shown.values())


def test_try_through_the_launched_studio(studio, tmp_path):
    from gradio_client import Client, handle_file
    from studio.ui import build_app
    from trainers.tasks import TASKS

    demo = build_app(studio.ctx)
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        picture = tmp_path / "red.png"
        Image.new("RGB", (32, 32), (200, 40, 40)).save(picture)
        result = client.predict(studio.runs["classify"], handle_file(str(picture)), 2, 0.5, 0, 1,
                                api_name="/try_model")
        label, heat, named = result[0], result[1], result[-1]
        assert len(result) == 10  # the nine outputs scripts read by index, then the named JSON
        assert label["label"] in ("red", "green", "blue") and len(label["confidences"]) == 2
        assert Image.open(heat).size == (256, 256)  # the 32-pixel heatmap, enlarged 8 times for the page
        assert [t["label"] for t in named["top"]] == [c["label"] for c in label["confidences"]]
        grids = [client.predict(studio.runs["wgan"], None, 3, 0.5, 42, 4, api_name="/try_model")[7] for _ in range(2)]
        assert np.array_equal(np.asarray(Image.open(grids[0])), np.asarray(Image.open(grids[1])))
        # Every task of the registry answers by name, as a script reads it.
        image = tmp_path / "photo.png"
        photo((40, 32)).save(image)
        given = {"picture": photo((40, 32)), "k": 2, "opacity": 0.25, "seed": 5, "count": 3}
        for task in TASKS:
            wants_picture = "picture" in TASKS[task].try_inputs
            named = client.predict(studio.runs[task], handle_file(str(image)) if wants_picture else None,
                                   2, 0.25, 5, 3, api_name="/try_model")[-1]
            assert_named_answer(named, loaded(studio, task), studio.runs[task], given)
        # What the page does before each try: every output of /try_model cleared, the JSON too,
        # so a refused picture leaves no stale answer.
        tried = next(fn for fn in demo.fns.values() if fn.api_name == "try_model")
        clears = [fn for fn in demo.fns.values()
                  if not fn.inputs and [b._id for b in fn.outputs] == [b._id for b in tried.outputs]]
        assert len(clears) == 2  # the button's and the upload's
        for fn in clears:
            values = fn.fn()
            assert len(values) == len(tried.outputs) == 10 and set(values.values()) <= {None, ""}
        with pytest.raises(Exception, match="Upload a picture"):
            client.predict(studio.runs["segment"], None, 3, 0.5, 0, 1, api_name="/try_model")
        with pytest.raises(Exception, match="no network"):
            client.predict(studio.runs["gatys"], handle_file(str(picture)), 3, 0.5, 0, 1, api_name="/try_model")
    finally:
        demo.close()


@pytest.mark.parametrize("task", ["gan", "wgan", "style"])
def test_the_share_tab_says_which_runs_it_exports(studio, task):
    from studio.ui import share_tab

    with pytest.raises(ValueError, match=f"classify, segment and restore runs; this is a {task} run"):
        share_tab.start_demo(studio.ctx, studio.runs[task])


@pytest.mark.parametrize("task", ["wgan", "style"])
def test_export_refuses_runs_the_bundle_format_cannot_hold(studio, task, tmp_path):
    from studio.export import ExportError, export_bundle

    with pytest.raises(ExportError, match=f"this is a {task} run"):
        export_bundle(studio.ctx.workspace.run_dir(studio.runs[task]), tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize("task", ["classify", "segment", "restore", "gan", "wgan", "style"])
def test_every_task_can_be_inspected_and_no_hook_is_left(studio, task):
    """Inspect is not for classifiers only: summary and strongest feature maps for each task's
    network (a wgan generator draws them from seed 0's noise); heatmaps for the models with class
    scores (classify, and segment over a class's predicted region); the picture models say why not."""
    from studio import inspect as insp
    from studio.inspect import InspectError
    from trainers.hooks import hook_count

    model = loaded(studio, task)
    own = hook_count(model.model)  # a U-Net keeps its cross-connection hooks for its whole life
    rows = insp.model_summary(model)
    assert rows and sum(r[3] for r in rows) == sum(p.numel() for p in model.model.parameters())
    picture = Image.new("RGB", (40, 40), (120, 60, 200))
    layer = insp.layer_choices(model)[-1]
    maps = insp.strongest_feature_maps(model, None if task == "wgan" else picture, layer, k=4)
    assert maps.size[0] > 0 and hook_count(model.model) == own
    if task in ("classify", "segment"):
        for method in insp.heatmap_methods(model):
            shown, index = insp.heatmap(model, picture, method=method)
            assert shown.size == model.shown(picture).size and hook_count(model.model) == own
            assert 0 <= index < len(insp.heatmap_classes(model))
        assert hook_count(model.model) == own == (0 if task == "classify" else own)
    else:
        assert insp.heatmap_methods(model) == []
        with pytest.raises(InspectError, match=f"this {task} model outputs pictures, not classes"):
            insp.heatmap(model, picture)
