"""The registry's contract: every task registered in trainers.tasks trains a tiny run, its
checkpoint loads, Try answers in the task's view, the inspections it lists answer, and a task
that exports gives a bundle whose demo answers. Nothing here names a task: a task added to the
registry and to nothing else is tested too, as the test-only task registered below shows
(it also appears in the Train tab's choices, with its own setting as a field)."""

import types

import pytest
import torch
from PIL import Image
from torch import nn

from studio import inspect as insp
from studio.checkpoints import load_checkpoint
from studio.ui.context import StudioContext
from trainers import fit
from trainers.tasks import TASKS
from trainers.tasks.base import Setting
from trainers.tasks.classify import Classify
from conftest import write_colour_classes
from test_gan import write_images
from test_restore import write_pairs
from test_segment import write_shapes
from test_try_tasks import assert_named_answer
from test_unet import _write_random_vgg_features

# A tiny dataset of each kind a dataset builder makes (kinds, not tasks: a task says which it takes).
WRITERS = {
    "classify": lambda folder: write_colour_classes(folder, per_class=8, size=32, classes=("red", "blue")),
    "segment": lambda folder: write_shapes(folder, n=12),
    "restore": lambda folder: write_pairs(folder, n=12),
    "images": lambda folder: write_images(folder, n=8, size=24),
}


class TinyNet(nn.Module):
    """Two convolutions and a linear head: a network no other task uses."""

    def __init__(self, n_classes: int, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_classes))

    def forward(self, x):
        return self.head(self.features(x))


class TinyClassify(Classify):
    """The test-only task: a classifier of its own network, registered by a fixture alone."""

    name = "tiny_test_classify"
    dataset_kinds = ()  # never guessed from a dataset; chosen by name
    settings_spec = Classify.settings_spec + (
        Setting("tiny_width", int, 8, "Channels of the tiny network's convolutions.", low=1, main=True),
    )

    def build(self, config, device):
        parts = super().build(config, device)
        parts.model = TinyNet(len(parts.info["classes"]), self.read_settings(config)["tiny_width"])
        parts.info["tiny_width"] = parts.model.head[-1].in_features
        return parts

    def model_from_checkpoint(self, config, info):
        return TinyNet(len(info["classes"]), info["tiny_width"])

    def smoke_config(self, data, train):
        return {**super().smoke_config(data, train), "extra": {"activation_stats": True, "tiny_width": 4}}


def kind_of(task) -> str:
    return (task.dataset_kinds or ("classify",))[0]


@pytest.fixture(scope="module")
def registered(module_tmp):
    """The registry with the test-only task added (and taken out again afterwards)."""
    TASKS[TinyClassify.name] = TinyClassify()
    try:
        yield dict(TASKS)
    finally:
        del TASKS[TinyClassify.name]


@pytest.fixture(scope="module")
def runs(registered, module_tmp):
    """One finished tiny run of every registered task, trained through trainers.fit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions are faster so on a shared 2-core machine
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(module_tmp / "torch"))  # a seeded random VGG16-BN for the style loss
        _write_random_vgg_features()
        data, folders, results = {}, {}, {}

        def train(config):
            folder = module_tmp / "runs" / f"{config['task']}_{len(list((module_tmp / 'runs').glob('*')))}"
            results[folder] = fit(config, folder)
            return folder

        (module_tmp / "runs").mkdir()
        for name, task in registered.items():
            kind = kind_of(task)
            if kind not in data:
                data[kind] = WRITERS[kind](module_tmp / "data" / kind)
            folders[name] = train(task.smoke_config(data[kind], train))
        yield types.SimpleNamespace(folders=folders, results=results, data=data, root=module_tmp)
    torch.set_num_threads(threads)


def picture():
    return Image.new("RGB", (40, 32), (200, 60, 40))


def task_names():
    return list(TASKS) + [TinyClassify.name]


@pytest.mark.parametrize("name", task_names())
def test_a_tiny_run_trains_and_its_checkpoint_loads(runs, name):
    result = runs.results[runs.folders[name]]
    assert result.status == "completed" and result.epochs_done == 1, result
    loaded = load_checkpoint(runs.folders[name])
    assert loaded.task == name and loaded.kind is TASKS[name]
    assert sum(p.numel() for p in loaded.model.parameters()) > 0


@pytest.mark.parametrize("name", task_names())
def test_try_answers_in_the_tasks_view(runs, name):
    from studio.ui import try_tab

    loaded = load_checkpoint(runs.folders[name])
    view = loaded.kind.try_view
    shown = try_tab.shown_for(name)
    assert shown[view] and sum(shown[v] for v in try_tab.VIEWS) == 1
    if view == "classes":
        top, heat, note = try_tab.classify_view(loaded, picture(), 2)
        assert set(top) <= set(loaded.classes) and abs(sum(top.values()) - 1) < 1e-3 and isinstance(heat, Image.Image)
    elif view == "overlay":
        overlay, legend = try_tab.segment_view(loaded, picture())
        assert isinstance(overlay, Image.Image) and "<" in legend
    elif view == "before_after":
        (before, after), both = try_tab.before_after_view(loaded, picture())
        assert before.size == after.size and both.width >= 2 * after.width
    elif view == "drawn":
        assert isinstance(try_tab.generate_view(loaded, 3, 2), Image.Image)
    else:
        assert view == "stylised" and try_tab.stylise_view(loaded, picture()).size == (40, 32)
    # What /try_model's last output holds, by name, built from the task's view alone.
    given = {"picture": picture(), "k": 2, "opacity": 0.5, "seed": 3, "count": 2}
    _, named = try_tab.answer(loaded, "run-1", given)
    assert_named_answer(named, loaded, "run-1", given)


@pytest.mark.parametrize("name", task_names())
def test_the_inspections_the_task_lists_answer(runs, name):
    loaded = load_checkpoint(runs.folders[name])
    inspections = loaded.kind.inspections
    assert "summary" in inspections and insp.model_summary(loaded)
    if "features" in inspections:
        layer = insp.layer_choices(loaded)[-1]
        assert isinstance(insp.strongest_feature_maps(loaded, picture(), layer, k=2), Image.Image)
    if "heatmap" in inspections:
        method = insp.heatmap_methods(loaded)[0]
        overlay, index = insp.heatmap(loaded, picture(), method)
        assert isinstance(overlay, Image.Image) and 0 <= index < len(insp.heatmap_classes(loaded))
    else:
        assert not insp.heatmap_methods(loaded)
    if "interpretation" in inspections:
        assert insp.is_classifier(loaded)
        predictions = insp.validation_predictions(loaded)
        assert len(predictions["preds"]) == len(predictions["targets"]) > 0


@pytest.mark.parametrize("name", task_names())
def test_export_and_demo_answer_where_the_task_exports(runs, name, tmp_path):
    from studio.demo import Bundle
    from studio.export import ExportError, export_bundle

    if not TASKS[name].exports:
        with pytest.raises(ExportError, match="Bundles and demos are made for"):
            export_bundle(runs.folders[name], tmp_path / "bundle")
        return
    export_bundle(runs.folders[name], tmp_path / "bundle")
    bundle = Bundle(tmp_path / "bundle")
    answer = bundle.predict(picture())
    if isinstance(answer, tuple):  # before_after: (the picture, restored), the same size
        before, after = answer
        assert isinstance(after, Image.Image) and before.size == after.size
    else:
        assert answer and (isinstance(answer, Image.Image) or abs(sum(answer.values()) - 1) < 1e-3)


def test_a_registered_task_appears_in_the_train_tab_with_its_settings(registered, module_tmp):
    import gradio as gr

    from studio.ui import build_app, task_options

    ctx = StudioContext.open(module_tmp / "workspace")
    try:
        demo = build_app(ctx)
        blocks = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
        values = [value for _, value in blocks["train-task"].choices]
        assert TinyClassify.name in values and set(TASKS) <= set(values)
        # its own setting is a field of the Train tab, as its Setting declares it
        width = blocks["train-tiny-test-classify-tiny-width"]
        assert isinstance(width, gr.Number) and width.value == 8 and width.label == "Tiny width"
        assert width.info == "Channels of the tiny network's convolutions." and width.minimum == 1
        # the form's values of its fields become the config's extra, by setting name
        with gr.Blocks():
            dataset, task_menu = gr.Dropdown(["colours"]), gr.Dropdown(values)
            options = task_options.build(ctx, dataset, task_menu)
        shown = [f.value for f in options.inputs]
        assert options.extra(TinyClassify.name, shown) == {}  # every field at its default
        at = next(
            i for i, (owner, s) in enumerate(options.keys) if owner == TinyClassify.name and s.name == "tiny_width"
        )
        shown[at] = 4
        assert options.extra(TinyClassify.name, shown) == {"tiny_width": 4}
        assert options.extra("classify", shown) == {}  # another task's fields are not its settings
        shown[at] = 2.5
        with pytest.raises(task_options.OptionsError, match="'Tiny width' must be a whole number"):
            options.extra(TinyClassify.name, shown)
    finally:
        ctx.store.close()


def test_a_registered_tasks_setting_reaches_its_run(runs):
    loaded = load_checkpoint(runs.folders[TinyClassify.name])
    assert loaded.model.head[-1].in_features == 4  # smoke_config's extra.tiny_width, through RunConfig
