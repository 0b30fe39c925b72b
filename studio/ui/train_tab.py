"""The Train tab: choose a dataset and settings, find a learning rate, start a run and watch it.

The run itself is a worker process started by the scheduler (studio/jobs.py); this tab only
submits it and then follows it through the store. A gr.Timer asks the store every
TICK_S seconds whether the run changed (store.version) and sends only the parts of the view
that did; when nothing changed every output is gr.skip(), so an idle page costs nothing.
"""

import html
import json
import time
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from studio import plots
from studio.datasets.errors import DatasetError
from studio.datasets.manifest import dataset_names, read_manifest
from studio.served import served
from studio.store import ENDED
from trainers.constants import ARCHS

from . import sweep_panel, task_options
from .context import user_errors

TICK_S = 1.5
LOG_LINES = 40
ACTIVE = ("queued", "running")


def task_names() -> list:
    """Every task of the registry, in its order (a task registered later is listed too)."""
    from trainers.tasks import TASKS

    return list(TASKS)


def task_for_kind(kind):
    """The first task of the registry that trains on datasets of this kind (Task.dataset_kinds)."""
    from trainers.tasks import TASKS

    return next((name for name, task in TASKS.items() if kind in task.dataset_kinds), None)


class SettingsError(ValueError):
    """A setting typed in the form that cannot become a config (the trainers check the rest)."""


PRETRAINED_INFO = (
    "ImageNet weights through torchvision. auto: used when they are on this machine or can be "
    "downloaded, else the run trains from scratch and says so; on: the run stops if they are missing."
)
BUDGETS = [("about 1 minute", "60"), ("about 10 minutes", "600"), ("no limit", "none")]
BUDGET_INFO = (
    "The run measures a few batches on this machine before its first step and chooses the epochs "
    "that fit; 'no limit' trains for the epochs below."
)


def task_budget(task) -> str:
    """The budget choice a task starts the form with (Task.form_budget_s), "none" for no limit."""
    from trainers.tasks import TASKS

    found = TASKS.get(task)
    seconds = getattr(found, "form_budget_s", None) if found else None
    return "none" if seconds is None else f"{seconds:g}"


PRETRAINED_CHOICES = [("auto", "auto"), ("on", "on"), ("off", "off")]
PRETRAINED_VALUES = {"auto": "auto", "on": True, "off": False, True: True, False: False}


def weights_note(arch, choice) -> str:
    """Before Start: whether the chosen architecture's ImageNet weights are here, and where a
    file goes on a machine without internet."""
    from trainers.models import weights_status

    if choice == "off":
        return "Trains from scratch (pretrained off)."
    s = weights_status(arch or "resnet18")
    if s["present"]:
        return f"✓ ImageNet weights for {s['arch']} are on this machine (`{s['file']}`)."
    then = (
        "the run stops: download them first"
        if choice == "on"
        else "the run tries a download, and trains from scratch if that fails"
    )
    return (
        f"No ImageNet weights for {s['arch']} on this machine: {then}. Offline, put "
        f"[`{s['file']}`]({s['url']}) in `{s['folder']}`."
    )


# --------------------------------------------------------------------------- reading settings
def dataset_summary(workspace, name) -> str:
    if not name:
        return "Choose a dataset (build one in the Data tab, or use a bundled sample)."
    try:
        manifest = read_manifest(workspace.dataset_dir(name))
    except (DatasetError, ValueError) as e:
        return f"⚠ {e}"
    kind = manifest.get("kind", "?")
    counts = manifest.get("counts", {})
    parts = []
    for split, per in counts.items():
        n = sum(per.values()) if isinstance(per, dict) else per
        parts.append(f"{split}: {n}")
    labels = manifest.get("classes") or manifest.get("codes")
    text = f"**{name}**: {kind} dataset" + (f" ({', '.join(parts)} images)" if parts else "")
    if labels:
        shown = ", ".join(map(str, labels[:12])) + (" …" if len(labels) > 12 else "")
        text += f"; {len(labels)} {'classes' if manifest.get('classes') else 'codes'}: {shown}"
    return text


def task_for_dataset(workspace, name):
    try:
        return task_for_kind(read_manifest(workspace.dataset_dir(name)).get("kind"))
    except (DatasetError, ValueError):
        return None


def parse_lr(text):
    """Blank means: let the LR finder choose (lr null in the config)."""
    text = str(text if text is not None else "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise SettingsError(
            f"The learning rate must be a number such as 0.003, or blank to let the "
            f"learning-rate finder choose; {text!r} is neither."
        ) from None


def _whole(value, label):
    if value is None or value == "":
        raise SettingsError(f"'{label}' is empty: give a whole number.")
    if float(value) != int(float(value)):
        raise SettingsError(f"'{label}' must be a whole number, not {value}.")
    return int(float(value))


def parse_budget(choice):
    """The form's budget as seconds, or None for no limit (the epochs decide)."""
    if choice in (None, "", "none"):
        return None
    try:
        return float(choice)
    except (TypeError, ValueError):
        raise SettingsError(f"Choose a time budget from the list, not {choice!r}.") from None


def make_config(
    dataset,
    task,
    arch,
    pretrained,
    image_size,
    batch_size,
    epochs,
    lr,
    freeze_epochs,
    mixed_precision,
    seed,
    budget="none",
    extra=None,
) -> dict:
    """The config for the form's values; `extra` is the task's own settings (task_options.task_extra)."""
    if not dataset:
        raise SettingsError("Choose a dataset first (the Data tab builds one; the bundled samples are ready to use).")
    task = task or task_names()[0]
    config = {
        "task": task,
        "data": dataset,
        "arch": arch or "resnet18",
        "pretrained": PRETRAINED_VALUES.get(pretrained, "auto"),
        "image_size": _whole(image_size, "Image size"),
        "batch_size": _whole(batch_size, "Batch size"),
        "epochs": _whole(epochs, "Epochs"),
        "lr": parse_lr(lr),
        "freeze_epochs": _whole(freeze_epochs, "Frozen epochs"),
        "mixed_precision": bool(mixed_precision),
        "seed": _whole(seed, "Seed"),
    }
    budget_s = parse_budget(budget)
    if budget_s is not None:
        config["budget_s"] = budget_s
    if extra:
        config["extra"] = extra
    return config


def task_settings(task):
    """The form's fields reset to what a run of `task` starts from (RunConfig.defaults_for). A
    task whose default lr is null (the GANs) has a rate of its own: no one-cycle, no LR finder.
    The task says whether its finder applies (Task.lr_finder): its button shows only then."""
    from trainers.config import RunConfig  # torch is loaded by the studio already (Try, Inspect)
    from trainers.tasks import get_task

    task = task or task_names()[0]
    d, finder = RunConfig.defaults_for(task), get_task(task).lr_finder
    own_rate = d["lr"] is None
    if own_rate:
        info = f"Blank: the task's own rate ({get_task(task).own_lr}), not the finder; GANs want a low rate."
    elif finder:
        info = "Blank: the learning-rate finder chooses at the start of the run."
    else:
        info = f"Blank: the task's default rate ({d['lr']:g}); this task has no learning-rate finder."
    lr = "" if own_rate else f"{d['lr']:g}"
    return (
        d["image_size"],
        d["batch_size"],
        d["epochs"],
        gr.update(value=lr, info=info),
        d["freeze_epochs"],
        gr.update(visible=finder),
    )


def data_sizes(workspace, name, task):
    """(image size, batch size, a line saying why) that fit the dataset's pictures, or None when
    the task keeps its own sizes or the data cannot be read (the run's checks say why)."""
    from trainers.tasks import settings_for_data

    try:
        found = settings_for_data({"task": task or task_names()[0], "data": str(workspace.dataset_dir(name))})
    except Exception:  # noqa: BLE001 - a dataset the form cannot size keeps the task's defaults
        return None
    if not found:
        return None
    native = found.get("native_side")
    why = (
        (
            f"Image size {found['image_size']} px from the pictures' own {native} px (never enlarged); "
            f"batch {found['batch_size']} for {found['train_count']} training items."
        )
        if native
        else ""
    )
    return found["image_size"], found["batch_size"], why


def form_defaults(workspace, name) -> dict:
    """The config the Train tab fills in for a dataset before anyone changes a field: the task
    from the dataset's kind, the task's defaults, sizes that fit the pictures, the budget."""
    from trainers.config import RunConfig

    task = task_for_dataset(workspace, name) or task_names()[0]
    d = RunConfig.defaults_for(task)
    sizes = data_sizes(workspace, name, task)
    config = {
        "task": task,
        "data": name,
        "arch": d["arch"],
        "pretrained": "auto",
        "image_size": sizes[0] if sizes else d["image_size"],
        "batch_size": sizes[1] if sizes else d["batch_size"],
        "epochs": d["epochs"],
        "lr": d["lr"],
        "freeze_epochs": d["freeze_epochs"],
        "mixed_precision": d["mixed_precision"],
        "seed": d["seed"],
    }
    budget_s = parse_budget(task_budget(task))
    if budget_s is not None:
        config["budget_s"] = budget_s
    return config


def estimate_text(record) -> str:
    """A finished estimate run's result in one sentence for the form."""
    from trainers.budget import clock as short

    if record is None:
        return ""
    if record["status"] not in ENDED:
        return f"Measuring a few batches on this machine: {record['status']}…"
    r = record.get("result") or {}
    if record["status"] != "completed" or not r.get("total_s"):
        return f"⚠ No estimate: {record.get('error') or record['status']}"
    finder = f", the LR finder {short(r['lr_finder_s'])}" if r.get("lr_finder_s") else ""
    return (
        f"About **{short(r['total_s'])}** on {r.get('device', '?')}: {r['epochs']} epochs of about "
        f"{r['epoch_s']:.1f} s ({r['batches_per_epoch']} batches of {r['batch_size']} at {r['image_size']} px), "
        f"setup {r['setup_s']:.0f} s{finder}. Measured on a few batches; the run records its real time."
    )


# --------------------------------------------------------------------------- showing a run
def clock(seconds) -> str:
    seconds = int(max(seconds or 0, 0))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def status_html(record) -> str:
    if record is None:
        return "<p>No run followed yet: choose a dataset and click <b>Start</b>.</p>"
    e = html.escape
    status = record["status"]
    what = " · ".join(e(str(record[k])) for k in ("task", "dataset") if record.get(k))
    lines = [
        f"Showing <b>{e(record['name'])}</b> <code>{e(record['id'])}</code>"
        + (f" ({what})" if what else "")
        + f": <b data-status='{e(status)}'>{e(status)}</b>"
        + (f" on {e(record['device'])}" if record.get("device") else "")
    ]
    epochs, batches = record.get("epochs") or 0, record.get("batches") or 0
    if record["kind"] == "train" and epochs:
        epoch, batch = record.get("epoch") or 0, record.get("batch") or 0
        done = ((epoch - 1) * batches + batch) / (epochs * batches) if batches and epoch else 0
        if status == "completed":
            done = 1
        progress = f"epoch {epoch}/{epochs}" + (f", batch {batch}/{batches}" if batches else "")
        if status == "running" and record.get("eta_s") is not None:
            progress += f", about {clock(record['eta_s'])} left"
        lines.append(f"<progress value='{done:.3f}' max='1' style='width:100%'></progress> {progress}")
    if record.get("started"):
        end = record.get("ended") or time.time()
        lines.append(
            f"time {clock(end - record['started'])}"
            + (
                f"; best {e(record.get('monitor') or 'metric')} {record['best_metric']:.4g}"
                if isinstance(record.get("best_metric"), (int, float)) and record.get("monitor") != "epoch"
                else ""
            )
        )
    if record.get("error"):
        lines.append(f"<span style='color:#c33'>{e(record['error'])}</span>")
    return "<div class='darkroom-run'>" + "<br>".join(lines) + "</div>"


def metrics_frame(rows) -> pd.DataFrame:
    columns = ["epoch", "train_loss", "valid_loss"] + plots.metric_names(rows) + ["seconds"]
    data = [[_round(row.get(c)) for c in columns] for row in rows]
    return pd.DataFrame(data, columns=columns)


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def follow_view(workspace, store, run_id, sent, log_y, force=False):
    """(status, loss plot, metrics, sample, log, stop button, sent) for the followed run, with
    gr.skip() for each part that is the same as what this page was sent last time."""
    sent = dict(sent or {})
    skip = (gr.skip(),) * 7
    if not run_id:
        return skip
    version = store.version(run_id)
    if not force and sent.get("run") == run_id and sent.get("version") == version and sent.get("log_y") == log_y:
        return skip
    record = store.get_run(run_id)
    if record is None:
        return (
            status_html(None),
            plots.empty_figure("Loss"),
            None,
            None,
            "",
            gr.update(interactive=False),
            {"run": None},
        )
    fresh = force or sent.get("run") != run_id
    out = []

    def part(key, signature, make):
        if fresh or sent.get(key) != signature:
            sent[key] = signature
            out.append(make())
        else:
            out.append(gr.skip())

    losses = store.batch_losses(run_id)
    epochs = store.epoch_metrics(run_id)
    samples = store.samples(run_id)
    log = store.log_tail(run_id, LOG_LINES)
    page = status_html(record)
    part("status", page, lambda: page)
    part(
        "loss",
        (len(losses), losses[-1]["step"] if losses else 0, len(epochs), log_y),
        lambda: plots.loss_figure(losses, epochs, log_y=bool(log_y), batches_per_epoch=record.get("batches")),
    )
    part("metrics", repr(epochs), lambda: metrics_frame(epochs))
    part("sample", samples[-1] if samples else None, lambda: served(workspace, samples[-1][1]) if samples else None)
    part("log", (len(log), log[-1] if log else None), lambda: "\n".join(log))
    part("stop", record["status"] in ACTIVE, lambda: gr.update(interactive=record["status"] in ACTIVE))
    sent.update(run=run_id, version=version, log_y=log_y)
    return (*out, sent)


def form_from_config(workspace, config) -> tuple:
    """Updates for the form's fields (dataset, task, arch, pretrained, image size, batch size,
    epochs, lr, frozen epochs, mixed precision, seed) from a run's config; a field the config
    lacks keeps its value. The dataset list is refreshed at the same time."""
    from pathlib import Path

    names = dataset_names(workspace)
    data = config.get("data")
    data = Path(str(data)).name if data else None  # jobs.submit stores the dataset's folder
    lr_value = config.get("lr")
    keep = gr.skip()
    return (
        gr.update(choices=names, value=data) if data in names else gr.update(choices=names),
        config.get("task") or keep,
        config.get("arch") or keep,
        {True: "on", False: "off", "auto": "auto"}.get(config.get("pretrained"), keep),
        config.get("image_size") or keep,
        config.get("batch_size") or keep,
        config.get("epochs") or keep,
        "" if lr_value is None else f"{lr_value:g}",
        config["freeze_epochs"] if config.get("freeze_epochs") is not None else keep,
        bool(config["mixed_precision"]) if "mixed_precision" in config else keep,
        config["seed"] if config.get("seed") is not None else keep,
    )


# The config keys the form has fields for (make_config); a run's other settings (set in a config
# file or through the API) are carried by a clone instead, and the form says which.
FORM_KEYS = {
    "task",
    "data",
    "arch",
    "pretrained",
    "image_size",
    "batch_size",
    "epochs",
    "lr",
    "freeze_epochs",
    "mixed_precision",
    "seed",
    "budget_s",
    "extra",
}


def budget_choice(config) -> str:
    """The Time budget choice for a run's budget_s ("none" when it had none or one the list lacks)."""
    seconds = config.get("budget_s")
    wanted = "none" if seconds is None else f"{seconds:g}"
    return wanted if wanted in dict(BUDGETS).values() else "none"


def carried_settings(config) -> dict:
    """What a run's config holds beyond the form's fields: its settings the form lacks that differ
    from the task's defaults (grad_clip, valid_pct...; a budget the list lacks) and the extra keys
    no field of its task shows (lists such as extra.progressive). {} when there are none."""
    from trainers.config import RunConfig
    from trainers.tasks import TASKS

    task = config.get("task")
    if task not in TASKS:
        return {}
    defaults = RunConfig.defaults_for(task)
    settings = {k: v for k, v in config.items() if k not in FORM_KEYS and k in defaults and v != defaults[k]}
    if config.get("budget_s") is not None and budget_choice(config) == "none":
        settings["budget_s"] = config["budget_s"]
    shown = {s.name for s in task_options.form_settings(TASKS[task])}
    extra = {k: v for k, v in (config.get("extra") or {}).items() if k not in shown}
    return {"task": task, "settings": settings, "extra": extra} if settings or extra else {}


def carried_note(carried) -> str:
    if not carried:
        return ""
    named = {**carried["settings"], **{f"extra.{k}": v for k, v in carried["extra"].items()}}
    listed = "; ".join(f"`{k}` {json.dumps(v)}" for k, v in named.items())
    return (
        f"Also carried from the run, with no field here: {listed}. They go into the next run "
        f"(the extra ones only while the task stays {carried['task']})."
    )


def with_carried(config, carried) -> dict:
    """The form's config with the carried settings under it (the form's own values win)."""
    if not carried:
        return config
    out = {**carried["settings"], **config}
    if carried["extra"] and config.get("task") == carried["task"]:
        out["extra"] = {**carried["extra"], **(config.get("extra") or {})}
    return out


def lr_finder_progress(record) -> str:
    """'Finding a learning rate: batch 37 of 100, about 0:40 left' while the sweep runs."""
    batch, batches = record.get("batch") or 0, record.get("batches")
    if record["status"] != "running" or not batch or not batches:
        return f"Finding a learning rate: {record['status']}…"
    text = f"Finding a learning rate: batch {batch} of at most {batches} ({100 * batch // batches}%)"
    if record.get("eta_s") is not None:
        text += f", about {clock(record['eta_s'])} left"
    return text + "…"


def lr_finder_message(result) -> tuple:
    """(Markdown for the finder's result, whether its suggestion goes into the field). A
    suggestion at the low end of the sweep means the loss never fell: it is said plainly and the
    field keeps its rate; a minimum at the high end means the sweep stopped while the loss still
    fell: the suggestion is used, with a warning that it may be low."""
    lrs, losses, suggestion = result.get("lrs") or [], result.get("losses") or [], result["suggestion"]
    where = "the **Learning rate** field under Settings"
    if not lrs or suggestion <= lrs[0] * 1.000001:
        low = f"{lrs[0]:.2g}" if lrs else "its lowest"
        return (
            f"⚠ The loss did not fall anywhere in the sweep, so the finder's suggestion is the lowest rate it "
            f"tried ({low}), not a rate it found. {where[0].upper() + where[1:]} keeps its rate; the task's "
            "default is a safer start.",
            False,
        )
    rule = result.get("rule", "minimum")
    if rule == "rise":  # trainers/lr_finder.py suggest(): a level curve that blew up
        return (
            f"The loss stayed level until about {result['rise_lr']:.2g} and rose after it; the finder suggests "
            f"a tenth of that, **{suggestion:.2g}**, now in {where}.",
            True,
        )
    if rule == "level":
        return (
            f"The finder suggests **{suggestion:.2g}**, now in {where}. ⚠ The loss neither fell nor rose up to "
            f"the highest rate tried ({lrs[-1]:.2g}): the suggestion is only a tenth of that edge; the task's "
            "default may train better.",
            True,
        )
    lowest = min(range(len(losses)), key=losses.__getitem__)
    text = f"The finder suggests **{suggestion:.2g}**, now in {where}."
    if lowest >= len(losses) - 2:
        text += (
            f" ⚠ The loss was still falling at the highest rate tried ({lrs[-1]:.2g}): a higher rate may train faster."
        )
    return text, True


def latest_run(store):
    """The run a freshly opened page follows: one that trains now, else the newest."""
    runs = [r for r in store.list_runs() if r["kind"] == "train"]
    active = [r for r in runs if r["status"] in ACTIVE]
    return (active or runs or [None])[0]


# --------------------------------------------------------------------------- the tab
def build(ctx):
    ws, store, jobs = ctx.workspace, ctx.store, ctx.jobs
    names = dataset_names(ws)
    first = "digits" if "digits" in names else (names[0] if names else None)  # the sample a newcomer starts with

    with gr.Row():
        with gr.Column(scale=1, min_width=320):
            dataset = gr.Dropdown(
                names,
                value=first,
                label="Dataset",
                elem_id="train-dataset",
                info="A dataset of this workspace (the Data tab builds new ones).",
            )
            about = gr.Markdown(dataset_summary(ws, first), elem_id="train-about")
            first_task = task_for_dataset(ws, first) or task_names()[0]
            start_size, start_batch, start_epochs, start_lr, start_freeze, start_finder = task_settings(first_task)
            fitted = data_sizes(ws, first, first_task) if first else None
            if fitted:
                start_size, start_batch = fitted[0], fitted[1]
            sizes_note = gr.Markdown(fitted[2] if fitted else "", elem_id="train-sizes-note")
            task = gr.Dropdown(
                task_names(),
                value=first_task,
                label="Task",
                elem_id="train-task",
                info="Chosen from the dataset's kind; the trainers check that the two fit.",
            )
            # Start sits right under what a newcomer chooses; the settings below have working defaults.
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="train-start")
                find_lr = gr.Button("Find learning rate", visible=start_finder["visible"], elem_id="train-find-lr")
                estimate = gr.Button("Estimate time", elem_id="train-estimate")
            estimate_note = gr.Markdown("", elem_id="train-estimate-note")
            lr_status = gr.Markdown("", elem_id="train-lr-status")
            lr_plot = gr.Plot(label="Learning-rate finder", visible=False, elem_id="train-lr-plot")
            run_name = gr.Textbox("", label="Run name (optional)", elem_id="train-run-name")
            gr.Markdown("**Settings**: the defaults suit the dataset's task; change them if you like.")
            arch = gr.Dropdown(
                list(ARCHS),
                value="resnet18",
                label="Architecture",
                info="ResNet body; bigger is slower and needs more data.",
            )
            pretrained = gr.Radio(
                PRETRAINED_CHOICES,
                value="auto",
                label="Pretrained weights",
                info=PRETRAINED_INFO,
                elem_id="train-pretrained",
            )
            weights = gr.Markdown(weights_note("resnet18", "auto"), elem_id="train-weights")
            with gr.Row():
                image_size = gr.Number(
                    start_size, label="Image size", precision=0, minimum=16, maximum=2048, info="Pixels per side."
                )
                batch_size = gr.Number(
                    start_batch,
                    label="Batch size",
                    precision=0,
                    minimum=1,
                    info="Images per step; lower it if memory runs out.",
                )
            with gr.Row():
                epochs = gr.Number(
                    start_epochs, label="Epochs", precision=0, minimum=1, info="Passes over the training set."
                )
                freeze_epochs = gr.Number(
                    start_freeze,
                    label="Frozen epochs",
                    precision=0,
                    minimum=0,
                    info="With pretrained weights: train the head alone first.",
                )
            lr = gr.Textbox(start_lr["value"], label="Learning rate", elem_id="train-lr", info=start_lr["info"])
            budget = gr.Radio(
                BUDGETS, value=task_budget(first_task), label="Time budget", info=BUDGET_INFO, elem_id="train-budget"
            )
            with gr.Row():
                mixed_precision = gr.Checkbox(
                    True, label="Mixed precision", info="Faster on a GPU; ignored on the CPU."
                )
                seed = gr.Number(42, label="Seed", precision=0, info="Same seed, same run.")
            options = task_options.build(ctx, dataset, task)
            carried_md = gr.Markdown("", elem_id="train-carried")
            sweep_form = sweep_panel.build_form(ctx)
        with gr.Column(scale=2):
            status = gr.HTML(status_html(None), elem_id="train-status")
            with gr.Row():
                stop = gr.Button(
                    "Stop", variant="stop", interactive=False, scale=0, min_width=100, elem_id="train-stop"
                )
                log_y = gr.Checkbox(False, label="Log-scale loss", scale=0, min_width=160)
            loss_plot = gr.Plot(plots.empty_figure("Loss"), label="Loss", elem_id="train-loss")
            # Full width each: the grid's captions stay readable and every metric column shows.
            sample = gr.Image(
                label="Samples of the latest epoch (each picture captioned)",
                type="filepath",
                interactive=False,
                elem_id="train-sample",
                height=420,
                alt_text="The latest epoch's sample grid",
                buttons=["download", "fullscreen"],
            )
            metrics = gr.Dataframe(
                metrics_frame([]), label="Metrics per epoch", interactive=False, elem_id="train-metrics"
            )
            log_box = gr.Textbox(
                label="Log (last lines)", lines=8, max_lines=8, autoscroll=True, interactive=False, elem_id="train-log"
            )
    run_id = gr.State(None)
    carried = gr.State({})  # carried_settings of a cloned run, until another run is cloned or opened
    sent = gr.State({})
    lr_run = gr.State(None)
    timer = gr.Timer(TICK_S)
    lr_timer = gr.Timer(TICK_S, active=False)
    estimate_run = gr.State(None)
    estimate_timer = gr.Timer(TICK_S, active=False)
    # The form's fields by make_config's argument names; then every task's own (task_options).
    fields = dict(
        dataset=dataset,
        task=task,
        arch=arch,
        pretrained=pretrained,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        lr=lr,
        freeze_epochs=freeze_epochs,
        mixed_precision=mixed_precision,
        seed=seed,
        budget=budget,
    )
    settings = [*fields.values(), *options.inputs, carried]

    def form_config(*values) -> dict:
        """The config for `settings`' values: the form's fields by name, then the chosen task's
        own, then what a clone carried beyond the form (with_carried)."""
        named = dict(zip(fields, values))
        config = make_config(**named, extra=options.extra(named["task"], values[len(fields) : -1]))
        return with_carried(config, values[-1])

    view = [status, loss_plot, metrics, sample, log_box, stop, sent]
    sweep_panel.wire_form(ctx, sweep_form, run_name, settings, form_config)

    # --- dataset and task ---
    def refresh_datasets(current):
        choices = dataset_names(ws)
        value = current if current in choices else (choices[0] if choices else None)
        return gr.update(choices=choices, value=value)

    defaults_view = [image_size, batch_size, epochs, lr, freeze_epochs, find_lr]

    def on_dataset(name, current):
        """A dataset of another kind switches the task, and the form to that task's defaults;
        the same task keeps what the user typed, but for the sizes, which follow the pictures."""
        new = task_for_dataset(ws, name)
        task_now = new or current
        fitted = data_sizes(ws, name, task_now) if name else None
        note = fitted[2] if fitted else ""
        if not new or new == current:
            values = [gr.skip()] * len(defaults_view)
            budget_value = gr.skip()
        else:
            values = list(task_settings(new))
            budget_value = task_budget(new)
        if fitted:
            values[0], values[1] = fitted[0], fitted[1]
        return dataset_summary(ws, name), note, (new if new and new != current else gr.skip()), budget_value, *values

    def on_task(name, new):
        values = list(task_settings(new))
        fitted = data_sizes(ws, name, new) if name else None
        if fitted:
            values[0], values[1] = fitted[0], fitted[1]
        return (fitted[2] if fitted else ""), task_budget(new), *values

    for control in (arch, pretrained):
        control.change(weights_note, [arch, pretrained], weights, api_visibility="private")
    # .input: the user's choice only; a task set by on_dataset brings its defaults itself.
    task.input(on_task, [dataset, task], [sizes_note, budget, *defaults_view], api_visibility="private")
    dataset.change(
        on_dataset, [dataset, task], [about, sizes_note, task, budget, *defaults_view], api_visibility="private"
    )

    # --- start and follow ---
    @user_errors
    def submit_run(name, *values):
        new_id = jobs.submit(form_config(*values), name=name or None)
        return new_id, {}

    # Start is disabled from the click until the submission is answered, so a double click (or an
    # impatient second one while torch loads) queues one run; it comes back whatever the outcome.
    submitted = start.click(
        lambda: gr.update(interactive=False, value="Starting…"),
        None,
        start,
        queue=False,
        api_visibility="private",
        show_progress="hidden",
    ).then(submit_run, [run_name, *settings], [run_id, sent], api_visibility="private", show_progress="hidden")
    submitted.then(
        lambda: gr.update(interactive=True, value="Start"),
        None,
        start,
        api_visibility="private",
        show_progress="hidden",
    )
    submitted.success(
        lambda rid, s, ly: follow_view(ctx.workspace, store, rid, s, ly, force=True),
        [run_id, sent, log_y],
        view,
        api_visibility="private",
        show_progress="hidden",
    )
    timer.tick(
        lambda rid, s, ly: follow_view(ctx.workspace, store, rid, s, ly),
        [run_id, sent, log_y],
        view,
        api_visibility="private",
        show_progress="hidden",
        concurrency_limit=None,
    )
    log_y.change(
        lambda rid, s, ly: follow_view(ctx.workspace, store, rid, s, ly),
        [run_id, sent, log_y],
        view,
        api_visibility="private",
        show_progress="hidden",
    )

    @user_errors
    def stop_followed(rid):
        if rid:
            jobs.stop(rid)
        return gr.update(interactive=False)

    stop.click(stop_followed, run_id, stop, api_visibility="private")

    # --- learning-rate finder ---
    @user_errors
    def start_lr_find(*values):
        config = form_config(*values)
        config["lr"] = None
        new_id = jobs.submit(config, kind="lr_find")
        return new_id, "Finding a learning rate: starting…", gr.Timer(active=True)

    def lr_progress(rid):
        record = store.get_run(rid) if rid else None
        if record is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False)
        if record["status"] not in ENDED:
            return lr_finder_progress(record), gr.skip(), gr.skip(), gr.skip()
        result = record.get("result") or {}
        if record["status"] == "completed" and result.get("suggestion"):
            suggestion = result["suggestion"]
            figure = plots.lr_figure(result.get("lrs"), result.get("losses"), suggestion)
            text, usable = lr_finder_message(result)
            return (
                text,
                gr.update(value=figure, visible=True),
                f"{suggestion:.2g}" if usable else gr.skip(),
                gr.Timer(active=False),
            )
        reason = record.get("error") or record["status"]
        return f"⚠ The learning-rate finder did not finish: {reason}", gr.skip(), gr.skip(), gr.Timer(active=False)

    find_lr.click(start_lr_find, settings, [lr_run, lr_status, lr_timer], api_visibility="private")

    # --- time estimate: a few batches measured by a worker, as a run would ---
    @user_errors
    def start_estimate(*values):
        new_id = jobs.submit(form_config(*values), kind="estimate")
        return new_id, "Measuring a few batches on this machine…", gr.Timer(active=True)

    def estimate_progress(rid):
        record = store.get_run(rid) if rid else None
        done = record is None or record["status"] in ENDED
        return estimate_text(record), gr.Timer(active=not done)

    estimate.click(start_estimate, settings, [estimate_run, estimate_note, estimate_timer], api_visibility="private")
    estimate_timer.tick(
        estimate_progress,
        estimate_run,
        [estimate_note, estimate_timer],
        api_visibility="private",
        show_progress="hidden",
    )
    lr_timer.tick(
        lr_progress, lr_run, [lr_status, lr_plot, lr, lr_timer], api_visibility="private", show_progress="hidden"
    )

    # --- a freshly opened page follows what is training (nothing is lost by closing the tab), and
    # its form shows that run's settings, so that what is on screen belongs together ---
    # what fill_form fills: the shared fields but the budget, then every task's own
    form = [*(field for name, field in fields.items() if name != "budget"), *options.inputs]

    def fill_form(config) -> tuple:
        return (*form_from_config(ws, config), *options.values_from_config(config))

    def clone_values(config) -> tuple:
        """Clone: every field from the run's config, its budget, and what the form has no field
        for carried into the next run (said under the task's settings)."""
        kept = carried_settings(config)
        return (*fill_form(config), budget_choice(config), kept, carried_note(kept))

    def on_load(ly, current):
        record = latest_run(store)
        rid = record["id"] if record else None
        if not rid:
            return (None,) + (gr.skip(),) * 7 + (refresh_datasets(current),) + (gr.skip(),) * (len(form) - 1)
        return (
            rid,
            *follow_view(ctx.workspace, store, rid, {}, ly, force=True),
            *fill_form(record.get("config") or {}),
        )

    def open_dataset(name):
        """The form for a first run on `name`: its task and that task's defaults (Start here's
        "Train this")."""
        from trainers.config import RunConfig

        new = task_for_dataset(ws, name) or task_names()[0]
        size, batch, n_epochs, rate, freeze, finder = task_settings(new)
        fitted = data_sizes(ws, name, new)  # as choosing the dataset in the form would (on_dataset)
        if fitted:
            size, batch = fitted[0], fitted[1]
        pretrained_default = {True: "on", False: "off"}.get(RunConfig.defaults_for(new).get("pretrained"), "auto")
        return (
            gr.update(choices=dataset_names(ws), value=name),
            new,
            size,
            batch,
            n_epochs,
            rate,
            freeze,
            finder,
            pretrained_default,
            {},  # a first run on the dataset carries nothing of a run cloned before
            "",
        )

    def follow_active(ly):
        """Follow the run that trains now (or the newest): Start here's "Watch it in Train"."""
        record = latest_run(store)
        rid = record["id"] if record else None
        return (rid, *follow_view(ctx.workspace, store, rid, {}, ly, force=True)) if rid else (None,) + (gr.skip(),) * 7

    return SimpleNamespace(
        run_id=run_id,
        follow_active=follow_active,
        follow_inputs=[log_y],
        follow_outputs=[run_id, *view],
        on_load=(on_load, [log_y, dataset], [run_id, *view, *form]),
        # refreshed each time the tab is shown: datasets built since (in the Data tab) appear
        on_show=(refresh_datasets, [dataset], [dataset]),
        open_dataset=open_dataset,
        open_outputs=[dataset, task, *defaults_view, pretrained, carried, carried_md],
        form=form,
        form_from_config=fill_form,
        clone_form=[*form, budget, carried, carried_md],
        clone_values=clone_values,
        settings=settings,
        form_config=form_config,
        run_name=run_name,
        store=store,
    )
