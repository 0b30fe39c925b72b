"""The Runs tab's epoch views for the chosen run, driven by the tab's epoch slider: the suggested
epoch (marked on the run's loss plot) with buttons that pin an epoch for Try, Export and Share;
the held-out pictures' scores by epoch; two (run, epoch) outputs of one held-out picture on a
wipe slider, flipped, and as a difference map (PNG throughout); and for classify and segment runs
the heatmaps and activation statistics of the epoch. The logic is studio/epochs.py."""

import gradio as gr
import pandas as pd

from studio import epochs as epoch_views
from studio import plots
from studio.served import served
from trainers.epoch_weights import epoch_file, pin_epoch
from trainers.internals import read_summary

from .context import is_shared, user_errors


def build(ctx, chosen, epoch):
    """Call inside the Runs tab's Blocks, under its run column; `chosen` is the run dropdown and
    `epoch` the epoch slider, which scrub these views together with the sample grid."""
    store, ws = ctx.store, ctx.workspace

    internals = gr.Image(
        label="Heatmaps of fixed validation pictures at this epoch (Layer-CAM)",
        format="png",
        interactive=False,
        visible=False,
    )
    stats = gr.Dataframe(
        label="Activation statistics at this epoch (per layer)", interactive=False, visible=False, max_height=220
    )
    with gr.Accordion("Which epoch to keep", open=True):
        suggested = gr.Markdown("", elem_id="epoch-suggested")
        with gr.Row(visible=not is_shared(ctx)):
            pin_this = gr.Button("Pin this epoch", size="sm", elem_id="pin-epoch")
            pin_best = gr.Button("Pin the suggested epoch", size="sm")
            unpin = gr.Button("Unpin (use the best checkpoint)", size="sm")
        loss_plot = gr.Plot(label="Loss, with the suggested epoch")
        scores = gr.Dataframe(
            label="Held-out pictures: PSNR by epoch (+ better, - worse, = same as the epoch before)",
            interactive=False,
            max_height=260,
        )
    with gr.Accordion("Compare two epochs on one picture", open=True):
        with gr.Row():
            picture = gr.Dropdown([], label="Held-out picture")
            other_run = gr.Dropdown([], label="B: run", info="A is this run at the slider's epoch.")
            other_epoch = gr.Number(1, label="B: epoch", precision=0, minimum=1)
        wipe = gr.ImageSlider(
            label="Wipe: A | B (drag)", type="pil", format="png", interactive=False, elem_id="epoch-wipe"
        )
        with gr.Row():
            flip = gr.Checkbox(False, label="Flip: show B instead of A")
            note = gr.Markdown("", elem_id="epoch-wipe-note")
        with gr.Row():
            flipped = gr.Image(label="A (flip to see B)", type="pil", format="png", interactive=False)
            difference = gr.Image(
                label="Difference |A - B| (black: equal)",
                type="pil",
                format="png",
                interactive=False,
                elem_id="epoch-diff",
            )

    def run_dir(rid):
        return ws.run_dir(rid)

    def summary(rid, record):
        """(suggestion text, loss plot with the suggested and pinned epochs marked)."""
        info = epoch_views.suggestion(run_dir(rid), record.get("task"))
        losses, metrics = store.batch_losses(rid), store.epoch_metrics(rid)
        fig = plots.loss_figure(losses, metrics, batches_per_epoch=record.get("batches"))
        plots.mark_epoch(fig, info["epoch"], losses, record.get("batches"))
        if info["pinned"] is not None and info["pinned"] != info["epoch"]:
            plots.mark_epoch(fig, info["pinned"], losses, record.get("batches"), label="pinned", colour="#9467bd")
        return epoch_views.suggestion_text(info), fig

    def panel(rid):
        """Everything that depends on the run only (refreshed on choosing it)."""
        record = store.get_run(rid) if rid else None
        if record is None:
            return (
                "",
                plots.empty_figure("Loss"),
                None,
                gr.update(choices=[], value=None),
                gr.update(choices=[], value=None),
                gr.update(),
            )
        text, fig = summary(rid, record)
        headers, rows = epoch_views.score_table(run_dir(rid))
        names = epoch_views.picture_names(run_dir(rid))
        runs = [(f"{r['name']} · {r['id']}", r["id"]) for r in store.list_runs() if r["kind"] == "train"]
        last = max((s[0] for s in store.samples(rid)), default=None)
        return (
            text,
            fig,
            pd.DataFrame(rows, columns=headers) if rows else None,
            gr.update(choices=names, value=names[0] if names else None),
            gr.update(choices=runs, value=rid),
            gr.update(value=last) if last else gr.update(),
        )

    def at_epoch(rid, at):
        """The internals of the slider's epoch (classify, segment)."""
        image = epoch_views.internals_image(run_dir(rid), int(at or 1)) if rid else None
        if image is None:
            return gr.update(value=None, visible=False), gr.update(value=None, visible=False)
        summary = read_summary(run_dir(rid), int(at or 1)).get("stats") or {}
        frame = pd.DataFrame(
            [[name, s["mean"], s["std"], s["near_zero"]] for name, s in summary.items()],
            columns=["layer", "mean", "std", "near zero"],
        )
        # Only WORKSPACE/served is served (studio/served.py): the run folder's file gets a link there.
        return gr.update(value=served(ws, image), visible=True), gr.update(value=frame, visible=bool(summary))

    def compare(rid, at, name, other, other_at, show_b):
        if not (rid and name and other):
            return None, None, None, ""
        if store.get_run(rid) is None or store.get_run(other) is None:  # ids are checked against the store
            return None, None, None, "That run is not in the studio any more."
        try:
            a, b, diff, text = epoch_views.wipe(run_dir(rid), int(at or 1), run_dir(other), int(other_at or 1), name)
        except epoch_views.EpochsError as e:
            return None, None, None, str(e)
        return (a, b), (b if show_b else a), diff, text

    compare_inputs = [chosen, epoch, picture, other_run, other_epoch, flip]
    compare_outputs = [wipe, flipped, difference, note]
    panel_outputs = [suggested, loss_plot, scores, picture, other_run, other_epoch]

    # Choosing a run fills the picture and B's run and epoch, whose changes redraw the comparison.
    chosen.change(panel, chosen, panel_outputs, api_visibility="private").then(
        at_epoch, [chosen, epoch], [internals, stats], api_visibility="private"
    )
    epoch.change(at_epoch, [chosen, epoch], [internals, stats], api_visibility="private", show_progress="hidden")
    epoch.change(compare, compare_inputs, compare_outputs, api_visibility="private", show_progress="hidden")
    for control in (picture, other_run, other_epoch, flip):
        control.change(compare, compare_inputs, compare_outputs, api_visibility="private", show_progress="hidden")
    flip.change(
        lambda show_b: gr.update(label="B (flip back to see A)" if show_b else "A (flip to see B)"),
        flip,
        flipped,
        api_visibility="private",
    )

    @user_errors
    def pin(rid, at):
        if is_shared(ctx):  # which epoch a run serves is the owner's choice; a script calling the event is refused too
            raise gr.Error(
                "This studio is shared over a public link: only its owner can pin an epoch.", print_exception=False
            )
        if not rid or store.get_run(rid) is None:
            raise gr.Error("Choose a run first (click its row in the table).", print_exception=False)
        if at is not None and not epoch_file(run_dir(rid), int(at)).is_file():
            raise gr.Error(
                f"The weights of epoch {int(at)} were not kept (the run's weights budget); "
                f"pin one of the epochs listed as kept.",
                print_exception=False,
            )
        pin_epoch(run_dir(rid), None if at is None else int(at))
        return summary(rid, store.get_run(rid))

    @user_errors
    def pin_suggested(rid):
        if not rid or store.get_run(rid) is None:
            raise gr.Error("Choose a run first (click its row in the table).", print_exception=False)
        best = epoch_views.suggestion(run_dir(rid), store.get_run(rid).get("task"))["epoch"]
        if best is None:
            raise gr.Error("This run has no held-out scores to suggest an epoch from.", print_exception=False)
        return pin(rid, best)

    pinned_outputs = [suggested, loss_plot]
    pin_this.click(pin, [chosen, epoch], pinned_outputs, api_name="pin_epoch")
    pin_best.click(pin_suggested, chosen, pinned_outputs, api_visibility="private")
    unpin.click(lambda rid: pin(rid, None), chosen, pinned_outputs, api_visibility="private")
