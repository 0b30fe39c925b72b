"""The Train tab for every task: a task's own defaults fill the form, a gan chooses its generator
among the restore runs, a style run its style image (from the dataset or uploaded: hostile
uploads refused, the rest kept in the workspace), and what the form makes is a config the
jobs accept."""

import numpy as np
import pytest
from PIL import Image

from studio import uploads
from studio.datasets.errors import DatasetError
from studio.datasets.samples import install_samples
from studio.ui import task_options, train_tab
from studio.ui.context import StudioContext
from trainers import ConfigError
from trainers.tasks import get_task


@pytest.fixture
def ctx(tmp_path):
    ctx = StudioContext.open(tmp_path / "workspace")
    install_samples(ctx.workspace)
    yield ctx
    ctx.store.close()


def form(task, dataset="photos", options=None, **changes):
    """The Train tab's values for `task` as the tab shows them after choosing it, and the task's
    own settings as its fields give them (`options`, by setting name; the rest as shown)."""
    size, batch, epochs, lr, freeze, _ = train_tab.task_settings(task)
    values = dict(
        dataset=dataset,
        task=task,
        arch="resnet18",
        pretrained=False,
        image_size=size,
        batch_size=batch,
        epochs=epochs,
        lr=lr["value"],
        freeze_epochs=freeze,
        mixed_precision=True,
        seed=42,
        budget="none",
    )
    values.update(changes)
    shown = {s.name: shown_value(s) for s in task_options.form_settings(get_task(task))}
    return {**values, "extra": task_options.task_extra(get_task(task), {**shown, **(options or {})})}


def shown_value(setting):
    """What a field shows before anyone changes it (task_options.field)."""
    if setting.widget:
        return None
    if setting.optional or setting.default is None:
        return task_options.DEFAULT if (setting.choices or setting.kind is bool) else None
    return setting.default


def test_choosing_a_task_shows_its_own_defaults():
    size, batch, epochs, lr, freeze, finder = train_tab.task_settings("classify")
    assert (size, batch, epochs, lr["value"]) == (128, 32, 3, "0.003") and finder["visible"]
    size, _, _, lr, _, finder = train_tab.task_settings("wgan")
    assert size == 64 and lr["value"] == "" and not finder["visible"]
    assert "0.0001 with the gradient penalty, 5e-05 with weight clipping" in lr["info"]  # the task's own rates
    gan_lr = train_tab.task_settings("gan")[3]
    assert gan_lr["value"] == "" and "(0.0001)" in gan_lr["info"]  # 1e-4 in the task, not 3e-3


def test_a_gan_needs_a_restore_run_and_lists_only_those_with_a_checkpoint(ctx):
    with pytest.raises(task_options.OptionsError, match="Choose 'Generator' first: the finished restore run"):
        form("gan", dataset="photos")
    restore = ctx.store.create_run({"task": "restore", "data": "photos"}, name="clean-up")
    ctx.store.create_run({"task": "classify", "data": "digits"})
    assert task_options.finished_runs(ctx.store, ctx.workspace, ("restore",)) == []  # queued, no checkpoint yet
    ctx.store.transition(restore["id"], "running")
    ctx.store.transition(restore["id"], "completed")
    (ctx.workspace.run_dir(restore["id"]) / "checkpoints").mkdir(parents=True)
    (ctx.workspace.run_dir(restore["id"]) / "checkpoints" / "best.pt").write_bytes(b"")
    runs = task_options.finished_runs(ctx.store, ctx.workspace, ("restore",))
    assert [value for _, value in runs] == [restore["id"]] and "clean-up" in runs[0][0]
    config = train_tab.make_config(**form("gan", options={"generator_run": restore["id"]}))
    assert config["extra"] == {"generator_run": restore["id"]} and config["lr"] is None


def test_a_style_run_from_the_form_is_a_config_the_jobs_accept(ctx):
    pictures = task_options.picture_choices(ctx.workspace, "photos")
    labels = [label for label, _ in pictures]
    assert "photos/hubble_deep_field.png" in labels
    hubble = dict(pictures)["photos/hubble_deep_field.png"]
    with pytest.raises(task_options.OptionsError, match="Choose 'Style image' first"):
        form("style")
    config = train_tab.make_config(**form("style", options=dict(style_image=hubble, mode="gatys", steps="20")))
    assert config["extra"] == {"mode": "gatys", "style_image": hubble, "steps": 20}
    checked = ctx.jobs._checked(config)  # what submit validates: paths inside the workspace, settings
    assert checked["extra"]["style_image"] == hubble and checked["task"] == "style"
    with pytest.raises(task_options.OptionsError, match="'Steps' must be a whole number"):
        form("style", options=dict(style_image=hubble, mode="gatys", steps="2.5"))
    # a setting for Gatys alone is left out of a network run's config
    assert train_tab.make_config(**form("style", options=dict(style_image=hubble, steps=7)))["extra"] == {
        "style_image": hubble
    }
    outside = str(ctx.workspace.root.parent / "elsewhere.png")
    with pytest.raises(ConfigError, match="inside the workspace"):
        ctx.jobs._checked(train_tab.make_config(**form("style", options={"style_image": outside})))


def test_an_uploaded_style_image_is_checked_and_kept_in_the_workspace_once(ctx, tmp_path):
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128  # a wrong mode for a style image: made RGB on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "style.png")
    kept = uploads.keep_picture(ctx.workspace, tmp_path / "style.png")
    assert ctx.workspace.contains(kept) and kept.parent == ctx.workspace.uploads_dir
    with Image.open(kept) as im:
        assert im.mode == "RGB" and im.size == (40, 30)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "again.png")
    assert uploads.keep_picture(ctx.workspace, tmp_path / "again.png") == kept  # same picture, one file
    assert ("uploaded · " + kept.name, str(kept)) in task_options.picture_choices(ctx.workspace, "photos")
    ctx.jobs._checked(train_tab.make_config(**form("style", options={"style_image": str(kept)})))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("not a picture"), "is not an image"),
        (lambda p: p.write_bytes(_png(64)[:200]), "damaged or truncated"),
        (
            lambda p: Image.new("1", (7000, 6000)).save(p),
            "over the limit of 40,000,000",
        ),  # one limit for every entry point
    ],
    ids=["text", "truncated", "oversized"],
)
def test_hostile_uploads_are_refused_and_nothing_is_kept(ctx, tmp_path, make, message):
    path = tmp_path / "upload.png"
    make(path)
    with pytest.raises(DatasetError, match=message):
        uploads.keep_picture(ctx.workspace, path)
    assert not any(ctx.workspace.uploads_dir.iterdir())


def _png(size):
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_form_says_whether_weights_are_here_and_where_a_file_goes(tmp_path, monkeypatch):
    from conftest import write_fake_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    note = train_tab.weights_note("resnet34", "auto")
    assert "No ImageNet weights for resnet34" in note and "from scratch" in note
    assert "resnet34-" in note and str(tmp_path / "torch" / "hub" / "checkpoints") in note
    assert "the run stops" in train_tab.weights_note("resnet34", "on")
    write_fake_weights("resnet34")
    assert train_tab.weights_note("resnet34", "auto").startswith("✓")
    assert train_tab.make_config(**form("classify", dataset="digits", pretrained="auto"))["pretrained"] == "auto"
    assert train_tab.make_config(**form("classify", dataset="digits", pretrained="on"))["pretrained"] is True


def test_form_defaults_fit_the_pictures_and_take_a_budget(ctx):
    digits = train_tab.form_defaults(ctx.workspace, "digits")
    # The bundled digits are 32 px: never enlarged to RunConfig's 128.
    assert digits["image_size"] == 32 and digits["task"] == "classify" and digits["pretrained"] == "auto"
    assert digits["budget_s"] == 60
    shapes = train_tab.form_defaults(ctx.workspace, "shapes")
    assert shapes["task"] == "segment" and shapes["image_size"] == 64 and "budget_s" not in shapes
    config = ctx.jobs._checked(dict(digits, data="digits"))
    assert config["budget_s"] == 60 and config["image_size"] == 32
    assert train_tab.make_config(**form("classify", dataset="digits", budget="600"))["budget_s"] == 600
    assert "budget_s" not in train_tab.make_config(**form("classify", dataset="digits"))
    size, batch, why = train_tab.data_sizes(ctx.workspace, "digits", "classify")
    assert (size, batch) == (32, 32) and "never enlarged" in why
    run_id = ctx.jobs.submit(dict(digits, data="digits"), kind="estimate")
    assert ctx.store.get_run(run_id)["kind"] == "estimate"


def test_a_runs_task_settings_come_back_into_the_form_and_make_the_same_extra(ctx):
    """Clone into the Train form (and a page's load) fills the task's fields from the run's extra;
    Start then makes that extra again."""
    import gradio as gr

    hubble = dict(task_options.picture_choices(ctx.workspace, "photos"))["photos/hubble_deep_field.png"]
    with gr.Blocks():
        options = task_options.build(ctx, gr.Dropdown(["photos"]), gr.Dropdown(["style", "gan"]))
    config = {"task": "style", "data": "photos", "extra": {"mode": "gatys", "style_image": hubble, "steps": 20}}
    updates = options.values_from_config(config)
    values = [u.get("value") if isinstance(u, dict) else u for u in updates]
    mine = [v for (owner, _), v in zip(options.keys, values) if owner == "style"]
    assert all(v == gr.skip() for (owner, _), v in zip(options.keys, updates) if owner != "style")
    assert options.extra("style", values) == config["extra"] and len(mine) > 3
    run_folder = str(ctx.workspace.run_dir("20260101-000000-abcd"))  # the config holds the folder
    values = [
        u.get("value") if isinstance(u, dict) else u
        for u in options.values_from_config(
            {"task": "gan", "extra": {"generator_run": run_folder, "switcher": "fixed", "flip": False}}
        )
    ]
    assert options.extra("gan", values) == {"generator_run": "20260101-000000-abcd", "switcher": "fixed", "flip": False}


def test_clone_carries_every_setting_of_the_run_into_the_form(ctx):
    """Clone into the Train form, on the real Train tab: the fields take the run's config (its
    task's own settings, a style picture, the budget) and what the form has no field for (a
    gradient clip, a validation share, a list in extra) is carried and named; Start's config
    is then the run's config again."""
    import gradio as gr

    hubble = dict(task_options.picture_choices(ctx.workspace, "photos"))["photos/hubble_deep_field.png"]
    submitted = {
        "task": "style",
        "data": "photos",
        "arch": "resnet18",
        "pretrained": False,
        "image_size": 96,
        "batch_size": 2,
        "epochs": 3,
        "lr": 0.001,
        "freeze_epochs": 0,
        "mixed_precision": False,
        "seed": 7,
        "budget_s": 600,
        "grad_clip": 1.0,
        "valid_pct": 0.3,
        "extra": {"style_image": hubble, "content_weight": 2.0, "style_layers": [1, 2], "keep_last": True},
    }
    record_config = ctx.jobs._checked(submitted)  # what the store keeps of a run (a folder for data)
    with gr.Blocks():
        train = train_tab.build(ctx)
    updates = dict(zip(train.clone_form, train.clone_values(record_config)))

    def shown(component):
        update = updates.get(component, gr.skip())
        if update == gr.skip():
            return component.value
        if isinstance(component, gr.State):  # a state's new value is the value itself
            return update
        return update.get("value", component.value) if isinstance(update, dict) else update

    note = shown(train.clone_form[-1])
    assert "grad_clip" in note and "valid_pct" in note and "extra.style_layers" in note and "budget" not in note
    assert ctx.jobs._checked(train.form_config(*[shown(c) for c in train.settings])) == record_config
