"""Sweeps in the UI: the Train tab's "Try N settings" panel, and the Runs tab's view of a sweep
(its trials with their settings, the best marked, their loss curves overlaid)."""
import html

import gradio as gr
import pandas as pd

from studio import plots, sweeps

from .context import user_errors

TRIAL_COLUMNS = ["", "trial", "settings", "status", "epoch", "best metric", "id"]
BEST = "★ best"


# --- Train tab -------------------------------------------------------------------------------
def build_form(ctx):
    """The panel's inputs, placed where it is called (under the Train tab's settings)."""
    on_cluster = ctx.jobs.runner is not None
    with gr.Accordion("Try N settings (a sweep)", open=False, elem_id="train-sweep"):
        gr.Markdown("Each setting becomes a run of its own with the form's other settings; leave a row "
                    "empty to keep the form's value.")
        lrs = gr.Textbox("", label="Learning rates", placeholder="e.g. 1e-3, 3e-3, 1e-2", elem_id="sweep-lrs")
        sizes = gr.Textbox("", label="Image sizes", placeholder="e.g. 64, 128", elem_id="sweep-sizes")
        batches = gr.Textbox("", label="Batch sizes", placeholder="e.g. 16, 32", elem_id="sweep-batches")
        with gr.Row():
            n = gr.Number(4, label="Settings to try (N)", precision=0, minimum=1, maximum=sweeps.MAX_TRIALS)
            mode = gr.Radio(["grid", "random"], value="grid", label="How",
                            info="grid: the combinations in order; random: seeded draws (rates between the "
                                 "smallest and largest given).")
            seed = gr.Number(0, label="Sweep seed", precision=0)
        early = gr.Checkbox(on_cluster, label="Stop weak settings early (Ray Tune's ASHA)", interactive=on_cluster,
                            info=("On the cluster: one Ray Tune job trains the trials and stops the weaker half at "
                                  "each rung." if on_cluster else "Needs the studio started with --runner ray://…; "
                                  "here every setting trains to the end in the queue."))
        start = gr.Button("Start sweep", elem_id="sweep-start")
        message = gr.Markdown("", elem_id="sweep-message")
    return dict(lrs=lrs, sizes=sizes, batches=batches, n=n, mode=mode, seed=seed, early=early, start=start,
                message=message)


def wire_form(ctx, form, run_name, settings, make_config):
    """Start sweep: the form's config, with each trial's settings in place of the form's."""

    @user_errors
    def start_sweep(lrs, sizes, batches, n, mode, seed, early, name, *values):
        config = make_config(*values)
        space = {"lr": lrs, "image_size": sizes, "batch_size": batches}
        sweep_id = ctx.jobs.submit_sweep(config, space, int(n or 0), mode=mode, seed=int(seed or 0),
                                         early_stop=bool(early), name=name or None)
        count = len(sweeps.sweep_runs(ctx.store.list_runs(), sweep_id))
        how = "one Ray Tune job with early stopping" if early and ctx.jobs.runner is not None else "the queue"
        return f"Sweep `{sweep_id}`: {count} runs in {how}. The Runs tab shows them together, the best marked."

    f = form
    f["start"].click(start_sweep, [f["lrs"], f["sizes"], f["batches"], f["n"], f["mode"], f["seed"], f["early"],
                                   run_name, *settings], f["message"], api_visibility="private")


# --- Runs tab --------------------------------------------------------------------------------
def trials_frame(found) -> pd.DataFrame:
    rows = []
    for r in (found or {}).get("runs", []):
        metric = r.get("best_metric")
        rows.append([BEST if r["id"] == found["best"] else "", f"{r['sweep'].get('trial')}/{r['sweep'].get('of')}",
                     sweeps.label(r["sweep"].get("params", {})), r["status"], r.get("epoch") or 0,
                     "" if metric is None else f"{r.get('monitor') or 'metric'} {metric:.4g}", r["id"]])
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


def sweep_view(store, sweep_id, log_y=False):
    """(heading, trials table, overlay of the trials' losses) for one sweep."""
    found = next((s for s in sweeps.sweeps(store.list_runs()) if s["id"] == sweep_id), None)
    if found is None:
        return "Choose a sweep.", trials_frame(None), plots.overlay_figure([], title="Loss, the sweep's trials")
    best = next((r for r in found["runs"] if r["id"] == found["best"]), None)
    state = "all trials have ended" if found["ended"] else "trials still running or queued"
    heading = f"**{html.escape(found['name'])}** `{found['id']}`: {len(found['runs'])} trials, {state}."
    if best:
        heading += (f" {'Best' if found['ended'] else 'Best so far'}: trial {best['sweep'].get('trial')} "
                    f"({html.escape(sweeps.label(best['sweep'].get('params', {})))}), {best.get('monitor')} "
                    f"{best['best_metric']:.4g}.")
    curves = [((BEST + " " if r["id"] == found["best"] else "") + sweeps.label(r["sweep"].get("params", {})),
               store.batch_losses(r["id"]), store.epoch_metrics(r["id"])) for r in found["runs"]]
    return heading, trials_frame(found), plots.overlay_figure(curves, log_y=bool(log_y), title="Loss, the sweep's trials")


def build_runs_view(ctx):
    """The Runs tab's Sweeps section; returns (refresh function, its outputs) for the tab's show event."""
    store = ctx.store
    with gr.Accordion("Sweeps", open=False, elem_id="runs-sweeps"):
        found = sweeps.sweeps(store.list_runs())
        with gr.Row():
            chosen = gr.Dropdown([(f"{s['name']} ({s['id']})", s["id"]) for s in found],
                                 value=found[0]["id"] if found else None, label="Sweep", elem_id="runs-sweep", scale=3,
                                 info="Refresh lists the sweeps started since the page was opened.")
            log_y = gr.Checkbox(False, label="Log-scale loss", scale=0, min_width=160)
            refresh = gr.Button("Refresh", scale=0, min_width=100)
        heading = gr.Markdown("Choose a sweep.", elem_id="runs-sweep-heading")
        table = gr.Dataframe(trials_frame(None), interactive=False, elem_id="runs-sweep-trials")
        overlay = gr.Plot(plots.overlay_figure([], title="Loss, the sweep's trials"), label="Loss, the sweep's trials")

    def choices(current):
        found = sweeps.sweeps(store.list_runs())
        options = [(f"{s['name']} ({s['id']})", s["id"]) for s in found]
        value = current if current in [s["id"] for s in found] else (found[0]["id"] if found else None)
        return gr.update(choices=options, value=value)

    outputs = [heading, table, overlay]
    show = lambda sweep_id, ly: sweep_view(store, sweep_id, ly)  # noqa: E731
    chosen.change(show, [chosen, log_y], outputs, api_visibility="private")
    log_y.change(show, [chosen, log_y], outputs, api_visibility="private")
    refresh.click(choices, chosen, chosen, api_visibility="private").then(
        show, [chosen, log_y], outputs, api_visibility="private")
    return choices, chosen
