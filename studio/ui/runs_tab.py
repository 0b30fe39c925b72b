"""The Runs tab: every run in a table, loss curves of several runs overlaid, one run's sample
grids scrubbed epoch by epoch or animated as a GIF, the same epoch of 2-4 runs side by side, and
resume, clone with changes, delete (after a confirmation).

The table is refreshed by a slow gr.Timer that compares each run's (status, version) with what
the page has and sends nothing when no run changed."""
import html
import time
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from studio import plots
from studio.animation import epochs_gif
from studio.compare import MAX_RUNS, headed, side_by_side, side_by_side_at_step
from studio.jobs import RESUMABLE
from studio.run_disk import folder_bytes, human_size
from studio.served import served

from . import epochs_panel, sweep_panel
from .context import is_shared, user_errors
from .train_tab import clock

TICK_S = 3.0
SHARED_NO_DELETE = ("This studio is shared over a public link: runs and their checkpoints can be deleted only by "
                    "its owner, on the machine it runs on.")
COLUMNS = ["name", "id", "status", "task", "dataset", "best metric", "duration", "device", "size"]


def _duration(record) -> str:
    if not record.get("started"):
        return ""
    return clock((record.get("ended") or time.time()) - record["started"])


def _best(record) -> str:
    value = record.get("best_metric")
    # a run that monitors only its epoch (the wgan: no metric judges its pictures) has no best
    if not isinstance(value, (int, float)) or record.get("monitor") == "epoch":
        return ""
    return f"{record.get('monitor') or 'metric'} {value:.4g}"


def runs_frame(records, sizes=None) -> pd.DataFrame:
    """The table; `sizes` maps a run id to its folder's bytes on disk."""
    rows = []
    for r in records:
        name = r["name"] + (" (LR finder)" if r["kind"] == "lr_find" and "LR finder" not in r["name"] else "")
        size = (sizes or {}).get(r["id"])
        rows.append([name, r["id"], r["status"], r["task"], r["dataset"], _best(r), _duration(r), r.get("device") or "",
                     human_size(size) if size else ""])
    return pd.DataFrame(rows, columns=COLUMNS)


def run_choices(records, kind=None) -> list:
    return [(f"{r['name']} · {r['id']} ({r['status']})", r["id"]) for r in records if kind is None or r["kind"] == kind]


def grid_run_choices(records, samples_of) -> list:
    """The training runs that have sample grids to compare, each labelled with how many epochs it has."""
    choices = []
    for r in records:
        count = len(samples_of(r["id"])) if r["kind"] == "train" else 0
        if count:
            choices.append((f"{r['name']} · {r['id']} ({count} epoch{'s' if count != 1 else ''})", r["id"]))
    return choices


def _setting(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_setting(v)}" for k, v in value.items()) or "none"
    if value is None:
        return "(chosen at the start)"
    return str(value)


def run_details(record, size=None) -> str:
    """The chosen run as a short text and a two-column table of its settings."""
    if record is None:
        return "Choose a run (click its row in the table, or pick it here)."
    e = html.escape
    config = record.get("config") or {}
    rows = [("dataset", record.get("dataset") or "")] + [(k, _setting(v)) for k, v in config.items() if k != "data"]
    table = "\n".join(f"| {e(k)} | {e(v).replace('|', '&#124;')} |" for k, v in rows)
    return (f"**{e(record['name'])}** `{record['id']}`: {record['status']}"
            + (f", epoch {record.get('epoch') or 0}/{record['epochs']}" if record.get("epochs") else "")
            + (f"; {human_size(size)} on disk" if size else "")
            + (f"\n\n⚠ {e(record['error'])}" if record.get("error") else "")
            + f"\n\n| setting | value |\n|---|---|\n{table}")


def build(ctx):
    store, jobs = ctx.store, ctx.jobs
    records = store.list_runs()

    message = gr.Markdown("", elem_id="runs-message")
    table = gr.Dataframe(runs_frame(records), label="Runs (newest first; click a row to choose it)",
                         interactive=False, max_height=320)
    with gr.Row():
        with gr.Column():
            compare = gr.Dropdown(run_choices(records, "train"), multiselect=True, label="Compare loss curves of",
                                  info="Choose several runs: one colour per run.", allow_custom_value=True)
            compare_log_y = gr.Checkbox(False, label="Log-scale loss")
            overlay = gr.Plot(plots.overlay_figure([]), label="Loss, runs compared")
        with gr.Column():
            chosen = gr.Dropdown(run_choices(records), value=None, label="Run", info="The run the buttons below act on.",
                                 allow_custom_value=True)  # handlers check ids against the store
            details = gr.Markdown(run_details(None))
            epoch = gr.Slider(1, 2, value=1, step=1, label="Epoch", info="Scrub through the sample grid of each epoch.",
                              interactive=False, elem_id="runs-epoch")
            grid = gr.Image(label="Samples of the chosen epoch (each picture captioned)", type="filepath",
                            interactive=False,
                            alt_text="The chosen epoch's sample grid", buttons=["download", "fullscreen"],
                            elem_id="runs-grid")
            with gr.Row():  # each button is usable once a run is chosen (and resume only where it can)
                resume = gr.Button("Resume", interactive=False)
                delete = gr.Button("Delete…", variant="stop", interactive=False, visible=not is_shared(ctx))
            with gr.Row(visible=False) as confirm_row:
                confirm_text = gr.Markdown("")
                confirm = gr.Button("Yes, delete it", variant="stop", scale=0, min_width=140)
                cancel = gr.Button("Cancel", scale=0, min_width=100)
            with gr.Row():
                # the run's settings in the Train form, to change there and Start (app.py wires it)
                clone = gr.Button("Clone into the Train form", interactive=False, elem_id="runs-clone")
                free = gr.Button("Free the disk", interactive=False, elem_id="runs-free", visible=not is_shared(ctx),
                                 min_width=140)
            gr.Markdown("*Free the disk* keeps the run's record (metrics, curves, sample grids, log, settings) and "
                        "removes its checkpoints: it can then no longer be tried, inspected, shared or resumed.")
            gif_button = gr.Button("Animate the epochs", interactive=False)
            gif = gr.Image(label="The sample grids, epoch after epoch", type="filepath", interactive=False,
                           visible=False, alt_text="The sample grids of every epoch, animated",
                           buttons=["download", "fullscreen"], elem_id="runs-gif")
            epochs_panel.build(ctx, chosen, epoch)
    with gr.Accordion("Compare sample grids of runs", open=False):
        with gr.Row():
            grid_runs = gr.Dropdown(grid_run_choices(records, store.samples), multiselect=True, max_choices=MAX_RUNS,
                                    label="Runs side by side", info="Choose 2 to 4 runs with sample grids.", scale=3,
                                    allow_custom_value=True)
            align = gr.Radio(["epoch", "optimiser step"], value="epoch", label="Align by", scale=1,
                             info="Step: for runs whose epochs hold different numbers of batches.")
            grid_epoch = gr.Slider(1, 50, value=1, step=1, label="Epoch (or step)", scale=2)
        grids = gr.Gallery(label="The same epoch of each run", columns=2, height="auto", object_fit="contain",
                           format="png")  # compared by eye: no lossy webp
    sweep_panel.build_runs_view(ctx)  # a sweep's trials together, the best marked, their curves overlaid
    shown = gr.State(None)  # signature of the table the page has
    timer = gr.Timer(TICK_S)

    # --- the table ---
    def table_update(current, rid=None, force=False):
        """(table, compare choices, run choices, signature, details of the chosen run)."""
        records = store.list_runs()
        signature = [(r["id"], r["status"], store.version(r["id"])) for r in records]
        if not force and signature == current:
            return (gr.skip(),) * 6
        chosen_record = next((r for r in records if r["id"] == rid), None)
        sizes = {r["id"]: folder_bytes(ctx.workspace.run_dir(r["id"])) for r in records}
        return (runs_frame(records, sizes), gr.update(choices=run_choices(records, "train")),
                gr.update(choices=run_choices(records)), signature,
                run_details(chosen_record, sizes.get(rid)) if rid else gr.skip(),
                gr.update(choices=grid_run_choices(records, store.samples)))

    table_outputs = [table, compare, chosen, shown, details, grid_runs]
    timer.tick(table_update, [shown, chosen], table_outputs, api_visibility="private", show_progress="hidden")

    def pick_row(frame, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        try:
            return frame.iloc[row]["id"]
        except (IndexError, KeyError, AttributeError):
            return gr.skip()

    table.select(pick_row, table, chosen, api_visibility="private")

    # --- overlay ---
    def draw_overlay(ids, log_y):
        runs = []
        for rid in ids or []:
            record = store.get_run(rid)
            if record is not None:
                runs.append((f"{record['name']} ({rid[-4:]})", store.batch_losses(rid), store.epoch_metrics(rid)))
        return plots.overlay_figure(runs, log_y=bool(log_y))

    compare.change(draw_overlay, [compare, compare_log_y], overlay, api_visibility="private")
    compare_log_y.change(draw_overlay, [compare, compare_log_y], overlay, api_visibility="private")

    # --- one run: details and samples ---
    def choose(rid):
        record = store.get_run(rid) if rid else None
        samples = store.samples(rid) if record else []
        if samples:
            first, last = samples[0][0], samples[-1][0]
            # A slider needs a range: one grid so far gets an inactive slider one epoch wide.
            slider = gr.update(minimum=first, maximum=max(last, first + 1), value=last, interactive=last > first)
            image = served(ctx.workspace, samples[-1][1])
        else:
            slider, image = gr.update(minimum=1, maximum=2, value=1, interactive=False), None
        chosen_one = record is not None
        size = folder_bytes(ctx.workspace.run_dir(rid)) if chosen_one else 0
        has_checkpoints = chosen_one and (ctx.workspace.run_dir(rid) / "checkpoints").is_dir()
        return (run_details(record, size), slider, image, gr.update(visible=False),
                gr.update(interactive=chosen_one and record["status"] in RESUMABLE), gr.update(interactive=chosen_one),
                gr.update(interactive=chosen_one and record["kind"] == "train"),
                gr.update(interactive=bool(samples)), gr.update(value=None, visible=False),
                gr.update(interactive=bool(has_checkpoints) and record["status"] not in ("queued", "running")))

    def scrub(rid, at):
        samples = dict(store.samples(rid)) if rid else {}
        if not samples:
            return None
        nearest = min(samples, key=lambda e: abs(e - (at or 0)))
        return served(ctx.workspace, samples[nearest])

    chosen.change(choose, chosen, [details, epoch, grid, confirm_row, resume, delete, clone, gif_button, gif, free],
                  api_visibility="private")
    epoch.change(scrub, [chosen, epoch], grid, api_visibility="private", show_progress="hidden")

    @user_errors
    def animate(rid):
        need(rid)  # an AnimationError (a ValueError) becomes the page's message
        return served(ctx.workspace, epochs_gif(store.samples(rid), ctx.workspace.run_dir(rid)))

    gif_button.click(animate, chosen, gif, api_name="samples_gif").success(
        lambda: gr.update(visible=True), None, gif, api_visibility="private", show_progress="hidden")

    # --- the same epoch of several runs ---
    @user_errors
    def compare_grids(ids, at, by="epoch"):
        runs = []
        for rid in ids or []:
            record = store.get_run(rid)
            if record is None:
                raise gr.Error(f"There is no run {rid!r} any more.", print_exception=False)
            runs.append((f"{record['name']} ({rid[-4:]})", store.samples(rid), record.get("batches")))
        if by == "optimiser step":
            items = side_by_side_at_step(runs, int(at or 1))
        else:
            items = side_by_side([r[:2] for r in runs], int(at or 1))  # a CompareError becomes the page's message
        # each grid under its run's name and epoch, in the picture itself (compare.headed)
        return [(headed(served(ctx.workspace, path), caption), caption) for path, caption in items]

    def compare_range(ids, by="epoch"):
        """The slider spans the epochs (or steps) the chosen runs have; the gallery fills once 2
        runs are chosen."""
        def end(rid):
            last = max((e for e, _ in store.samples(rid)), default=1)
            return last * (max((store.get_run(rid) or {}).get("batches") or 1, 1) if by == "optimiser step" else 1)
        last = max((end(rid) for rid in ids or []), default=1)
        slider = gr.update(maximum=max(2, last), value=last)
        if len(ids or []) < 2:
            return slider, gr.update(value=None, columns=2)
        try:
            return slider, gr.update(value=compare_grids(ids, last, by), columns=min(len(ids), MAX_RUNS))
        except gr.Error:
            return slider, gr.update(value=None)

    grid_runs.change(compare_range, [grid_runs, align], [grid_epoch, grids], api_visibility="private")
    align.change(compare_range, [grid_runs, align], [grid_epoch, grids], api_visibility="private")
    grid_epoch.release(compare_grids, [grid_runs, grid_epoch, align], grids, api_name="compare_samples")

    # --- actions ---
    def need(rid):
        if not rid:
            raise gr.Error("Choose a run first (click its row in the table).", print_exception=False)
        if store.get_run(str(rid)) is None:
            raise gr.Error(f"There is no run {str(rid)[:40]!r}; list_runs shows the runs there are.",
                           print_exception=False)

    @user_errors
    def do_resume(rid, current):
        need(rid)
        jobs.resume(rid)
        return (f"Run `{rid}` is queued again; it continues from its last checkpoint.",
                *table_update(current, rid, force=True))

    @user_errors
    def do_free(rid, current):
        need(rid)
        if is_shared(ctx):  # removing checkpoints is deleting: the owner's alone
            raise gr.Error(SHARED_NO_DELETE, print_exception=False)
        freed = jobs.free_disk(rid)
        return (f"Freed {human_size(freed)} of run `{rid}`; its record stays.", *table_update(current, rid, force=True),
                gr.update(interactive=False), gr.update(interactive=False))

    action_outputs = [message, *table_outputs]
    resume.click(do_resume, [chosen, shown], action_outputs, api_visibility="private")
    free.click(do_free, [chosen, shown], [*action_outputs, free, resume], api_visibility="private")

    def ask_delete(rid):
        need(rid)
        if is_shared(ctx):
            raise gr.Error(SHARED_NO_DELETE, print_exception=False)
        record = store.get_run(rid)
        if record is None:
            raise gr.Error("That run is gone already.", print_exception=False)
        return (gr.update(visible=True),
                f"Delete **{html.escape(record['name'])}** `{rid}` with its checkpoints and samples? This cannot be undone.")

    @user_errors
    def do_delete(rid, current):
        need(rid)
        if is_shared(ctx):  # the button is hidden; a script calling the event is refused too
            raise gr.Error(SHARED_NO_DELETE, print_exception=False)
        jobs.delete(rid)
        frame, compare_update, chosen_update, signature, _, grid_update = table_update(current, force=True)
        chosen_update["value"] = None
        return (gr.update(visible=False), f"Run `{rid}` deleted.", frame, compare_update, chosen_update, signature,
                run_details(None), grid_update)

    delete.click(ask_delete, chosen, [confirm_row, confirm_text], api_visibility="private")
    cancel.click(lambda: gr.update(visible=False), None, confirm_row, api_visibility="private")
    confirm.click(do_delete, [chosen, shown], [confirm_row, message, *table_outputs], api_visibility="private")
    # shown again: the whole table anew (the timer keeps it current while the tab is open)
    return SimpleNamespace(on_show=(lambda s, rid: table_update(s, rid, force=True), [shown, chosen], table_outputs),
                           clone=clone, chosen=chosen)


def wire_clone(runs, tabs, train):
    """"Clone into the Train form": the chosen run's settings in the form, the Train tab shown."""
    store_of = train.store

    def open_clone(rid):
        record = store_of.get_run(rid) if rid else None
        if record is None:
            raise gr.Error("Choose a run first (click its row in the table).", print_exception=False)
        return (gr.Tabs(selected="train"), *train.clone_values(record.get("config") or {}),
                f"{record['name']} (clone)")

    runs.clone.click(open_clone, runs.chosen, [tabs, *train.clone_form, train.run_name], api_visibility="private",
                     show_progress="hidden")
