"""The Train tab's settings that belong to one task, built from the registry: every task's
`extra` settings (trainers/tasks: Task.all_settings, each a Setting with its type, default, range
or choices and help) become fields in a group shown while that task is chosen. Nothing here names
a task: a Setting says when it needs more than a typed field (`widget`: a finished run to start
from, or a picture from the dataset or uploaded; studio.uploads keeps uploads in the workspace,
since a run may only name files inside it). The values that differ from a setting's default
become the config's `extra`.
"""

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from studio import uploads
from studio.datasets.errors import DatasetError
from studio.datasets.sources import image_files

from .context import user_errors

DEFAULT = "(default)"  # an optional choice left to the task; never a value of its own
YES_NO = {"on": True, "off": False}


class OptionsError(ValueError):
    """A task setting the form cannot turn into a config; said to the user as it is."""


def form_settings(task) -> list:
    """The settings of `task` a form shows (lists are set in a config file): its main ones first,
    then the rest of its own, then its loop's."""
    own = [s for s in task.settings_spec if s.kind is not list]
    return (
        [s for s in own if s.main]
        + [s for s in own if not s.main]
        + [s for s in task.common_settings if s.kind is not list]
    )


def finished_runs(store, workspace, tasks) -> list:
    """(label, run id) of the completed training runs of `tasks` with a checkpoint: those a
    setting of widget "run" may name (studio.jobs accepts no other)."""
    choices = []
    for r in store.list_runs():
        if r["kind"] != "train" or r["task"] not in tasks or r["status"] != "completed":
            continue
        folder = workspace.run_dir(r["id"]) / "checkpoints"
        if (folder / "best.pt").is_file() or (folder / "last.pt").is_file():
            choices.append((f"{r['name']} · {r['id']}", r["id"]))
    return choices


def picture_choices(workspace, dataset) -> list:
    """(label, path) of the pictures uploaded for runs, then those of the chosen dataset."""
    found = [(f"uploaded · {p.name}", str(p)) for p in image_files(workspace.uploads_dir)]
    if dataset:
        try:
            folder = workspace.dataset_dir(dataset)
        except ValueError:
            folder = None
        if folder is not None:
            found += [(f"{dataset}/{p.relative_to(folder).as_posix()}", str(p)) for p in image_files(folder)]
    return found


def form_value(setting, value):
    """A field's value as the config holds it, or None for "left to the default"."""
    if value is None or value == "" or value == DEFAULT:
        return None
    if setting.kind is bool:
        return YES_NO.get(value, value) if setting.optional or setting.default is None else bool(value)
    if setting.kind in (int, float):
        number = float(value)
        if setting.kind is int:
            if number != int(number):
                raise OptionsError(f"'{setting.title}' must be a whole number, not {value}.")
            number = int(number)
        if setting.low is not None and number < setting.low:
            raise OptionsError(f"'{setting.title}' must be at least {setting.low:g}, not {value}.")
        return number
    return value


def field_value(setting, value):
    """A config's value (None: left out) as the setting's field shows it; form_value's inverse."""
    if value is None:
        value = setting.default
    if value is None:
        return DEFAULT if setting.choices or setting.kind is bool else None
    if setting.kind is bool and (setting.optional or setting.default is None):
        return "on" if value else "off"
    if setting.widget == "run":
        return Path(str(value)).name  # the config holds the run's folder, the field its id
    return value


def applies(setting, values: dict) -> bool:
    """Whether a setting applies with the other values of the form (Setting.when)."""
    if not setting.when:
        return True
    other, wanted = setting.when
    return values.get(other) == wanted


def task_extra(task, values: dict) -> dict:
    """The config's `extra` for a task's form values ({setting name: field value}): the settings
    that apply and differ from their defaults; an OptionsError when a needed one is missing."""
    settings = form_settings(task)
    read = {s.name: form_value(s, values.get(s.name)) for s in settings}
    current = {s.name: s.default if read[s.name] is None else read[s.name] for s in settings}
    extra = {}
    for s in settings:
        value = read[s.name]
        if not applies(s, current):
            continue
        if value is None and s.required:
            raise OptionsError(f"Choose '{s.title}' first: {s.help[0].lower() + s.help[1:]}")
        if value is not None and value != s.default:
            extra[s.name] = value
    return extra


def field(task, setting):
    """The Gradio component that asks for one setting (inside the caller's layout)."""
    common = dict(label=setting.title, info=setting.help, elem_id=element_id(task, setting))
    if setting.widget in ("run", "picture"):
        return gr.Dropdown([], value=None, **common)
    if setting.choices:
        labels = setting.choice_labels or setting.choices
        choices = list(zip(labels, setting.choices))
        if setting.optional or setting.default is None:
            return gr.Dropdown([(DEFAULT, DEFAULT), *choices], value=DEFAULT, **common)
        return gr.Radio(choices, value=setting.default, **common)
    if setting.kind is bool:
        if setting.optional or setting.default is None:
            return gr.Radio([DEFAULT, "on", "off"], value=DEFAULT, **common)
        return gr.Checkbox(setting.default, **common)
    if setting.kind in (int, float):
        return gr.Number(setting.default, precision=0 if setting.kind is int else None, minimum=setting.low, **common)
    return gr.Textbox(setting.default or "", **common)


def element_id(task, setting, suffix="") -> str:
    return f"train-{task.name}-{setting.name}{suffix}".replace("_", "-")


def build(ctx, dataset, task_menu):
    """The options of every registered task (inside the caller's layout), each task's in a group
    shown while it is chosen, wired to `dataset` and `task_menu`. Returns .inputs (every field, in
    order), .extra(task name, field values) -> the config's extra, and .refresh(task, dataset)."""
    from trainers.tasks import TASKS

    ws, store = ctx.workspace, ctx.store
    groups, fields, keys = {}, [], []  # keys[i]: (task name, Setting) of fields[i]
    pickers = []  # (task name, Setting, field) of the fields that list runs or pictures
    for name, task in TASKS.items():
        settings = form_settings(task)
        if not settings:
            continue
        with gr.Group(visible=False) as groups[name]:
            made, boxes = {}, {}
            main, more = [s for s in settings if s.main], [s for s in settings if not s.main]
            for setting in main:
                made[setting.name], boxes[setting.name] = setting_box(ws, task, setting, dataset)
            if more:
                with gr.Accordion(f"More {name} settings", open=False):
                    for setting in more:
                        made[setting.name], boxes[setting.name] = setting_box(ws, task, setting, dataset)
            for setting in settings:
                fields.append(made[setting.name])
                keys.append((name, setting))
                if setting.widget:
                    pickers.append((name, setting, made[setting.name]))
            wire_conditions(settings, made, boxes)

    def extra(task_name, values) -> dict:
        if task_name not in TASKS:
            return {}
        mine = {s.name: v for (owner, s), v in zip(keys, values) if owner == task_name}
        return task_extra(TASKS[task_name], mine)

    def refresh(task_name, dataset_name, *current):
        pictures = picture_choices(ws, dataset_name)
        paths = [p for _, p in pictures]
        updates = [gr.update(visible=task_name == name) for name in groups]
        for (owner, setting, _), value in zip(pickers, current):
            if setting.widget == "run":
                runs = finished_runs(store, ws, setting.runs_of) if owner == task_name else []
                ids = [run for _, run in runs]
                updates.append(gr.update(choices=runs, value=value if value in ids else (ids[0] if ids else None)))
            else:
                updates.append(gr.update(choices=pictures, value=value if value in paths else None))
        return updates

    def values_from_config(config) -> list:
        """Updates of every field for a run's config: its task's fields show its extra (the rest
        at their defaults) and the pickers list what they may name; other tasks' fields stay."""
        task_name, extra = config.get("task"), config.get("extra") or {}
        dataset_name = Path(str(config["data"])).name if config.get("data") else None
        out = []
        for owner, setting in keys:
            if owner != task_name:
                out.append(gr.skip())
                continue
            value = field_value(setting, extra.get(setting.name))
            if setting.widget == "run":
                out.append(gr.update(choices=finished_runs(store, ws, setting.runs_of), value=value))
            elif setting.widget == "picture":
                out.append(gr.update(choices=picture_choices(ws, dataset_name), value=value))
            else:
                out.append(value)
        return out

    outputs = [*groups.values(), *(f for _, _, f in pickers)]
    inputs = [task_menu, dataset, *(f for _, _, f in pickers)]
    task_menu.change(refresh, inputs, outputs, api_visibility="private")
    dataset.change(refresh, inputs, outputs, api_visibility="private")
    return SimpleNamespace(
        inputs=fields,
        keys=keys,
        extra=extra,
        values_from_config=values_from_config,
        refresh=refresh,
        outputs=outputs,
        groups=groups,
    )


def setting_box(ws, task, setting, dataset):
    """(field, what to show or hide with it): a setting that applies only sometimes, or a picture
    with its upload button, sits in a column of its own."""
    if not setting.when and setting.widget != "picture":
        return field(task, setting), None
    with gr.Column(visible=applies(setting, {}), elem_id=element_id(task, setting, "-box")) as box:
        made = field(task, setting)
        if setting.widget == "picture":
            wire_upload(ws, task, setting, made, dataset)
    return made, box


def wire_conditions(settings, made, boxes):
    """Show a setting with `when` only while the setting it depends on has that value."""
    for setting in settings:
        if not setting.when or setting.when[0] not in made:
            continue
        shown = boxes[setting.name] or made[setting.name]
        made[setting.when[0]].change(
            lambda v, wanted=setting.when[1]: gr.update(visible=v == wanted),
            made[setting.when[0]],
            shown,
            api_visibility="private",
        )


def wire_upload(ws, task, setting, picker, dataset):
    """An upload button under a picture field: the picture is checked, kept in the workspace's
    uploads and chosen."""
    button = gr.UploadButton(
        f"Upload a {setting.title.lower()}",
        file_types=["image"],
        type="filepath",
        size="sm",
        elem_id=element_id(task, setting, "-upload"),
    )
    note = gr.Markdown("")

    @user_errors
    def on_upload(path, dataset_name):
        try:
            kept = uploads.keep_picture(ws, path)
        except DatasetError as e:
            return gr.skip(), f"⚠ {e}"
        return (
            gr.update(choices=picture_choices(ws, dataset_name), value=str(kept)),
            f"Kept as {Path(kept).name} in the workspace's uploads.",
        )

    button.upload(on_upload, [button, dataset], [picker, note], api_visibility="private")
