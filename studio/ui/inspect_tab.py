"""The Inspect tab: look inside a finished run's checkpoint.

Summary, activation statistics over training and feature maps on a picture for every run;
CAM, Grad-CAM and Layer-CAM where the model has class scores (classify, segment); for
classifiers the confusion matrix, most-confused pairs and top losses. Parts a run cannot have
are hidden when it is opened. The work is in studio/inspect.py; this module wires it to components."""
from types import SimpleNamespace

import gradio as gr

from studio import inspect as insp
from studio.checkpoints import cached_checkpoint
from studio.ui.context import user_errors
from studio.ui.pictures import PictureInput

WITH_CHECKPOINT = ("completed", "stopped", "interrupted")


def finished_runs(ctx, statuses=WITH_CHECKPOINT) -> list:
    """[(label, run id)] of training runs that have a checkpoint, newest first."""
    choices = []
    for r in ctx.store.list_runs():
        if r.get("kind") == "train" and r.get("status") in statuses:
            if (ctx.workspace.run_dir(r["id"]) / "checkpoints").is_dir():
                choices.append((f"{r['name']} · {r['task']} · {r['status']} · {r['id']}", r["id"]))
    return choices


def load(ctx, run_id):
    """The checkpoint of a current training run of the store: the id is checked against the store,
    not against the choices a dropdown had when the page was built (a script may send any id;
    a run created since must work, an unknown one gets a sentence)."""
    if not run_id:
        raise gr.Error("Choose a run first.", print_exception=False)
    record = ctx.store.get_run(str(run_id))
    if record is None or record.get("kind") != "train" or record.get("status") not in WITH_CHECKPOINT:
        raise gr.Error(f"There is no finished training run {str(run_id)[:40]!r}; list_runs shows the runs there are.",
                       print_exception=False)
    return cached_checkpoint(ctx.workspace.run_dir(record["id"]))


NO_RUN = "No run with a checkpoint yet: train one first (Start here has one-click samples)."


def run_list(ctx, current=None, statuses=WITH_CHECKPOINT):
    """A Run dropdown's update for the runs there are now: keeps the chosen run, else chooses the
    newest; with none, says how to get one. Try and Share use it with their own statuses."""
    choices = finished_runs(ctx, statuses)
    ids = [rid for _, rid in choices]
    value = current if current in ids else (ids[0] if ids else None)
    return gr.update(choices=choices, value=value, info="Newest first." if choices else NO_RUN)


def build(ctx):
    gr.Markdown("### Inspect a trained model")
    first = run_list(ctx)
    with gr.Row(equal_height=True):
        run = gr.Dropdown(label="Run", choices=first["choices"], value=None, info=first["info"], scale=4,
                          elem_id="inspect-run", allow_custom_value=True)  # load() checks the id against the store
        open_button = gr.Button("Open", variant="primary", scale=1, interactive=False,
                                elem_id="inspect-open")
    summary = gr.Dataframe(headers=["layer", "type", "output shape", "parameters", "trainable"],
                           label="Model summary", max_height=300)
    with gr.Accordion("Activation statistics over training", open=False):
        stats_layer = gr.Dropdown(label="Layer for the histogram", choices=[])
        stats_lines = gr.Plot(label="Mean and std per layer")
        stats_hist = gr.Plot(label="Histogram over time")
        stats_note = gr.Markdown()
    gr.Markdown("#### Heatmaps and feature maps")
    with gr.Row():
        picture = PictureInput(type="pil", sources=["upload", "webcam"], label="Picture", height=260)
        result = gr.Image(type="pil", label="Heatmap", height=260, interactive=False)
        features = gr.Image(type="pil", label="Strongest feature maps", height=260, interactive=False)
    with gr.Row():
        method = gr.Radio(["Grad-CAM", "Layer-CAM", "CAM"], value="Grad-CAM", label="Method")
        target = gr.Dropdown(label="Class (empty: the predicted one)", choices=[])
        layer = gr.Dropdown(label="Layer (Grad-CAM, Layer-CAM, feature maps)", choices=[])
        opacity = gr.Slider(0, 1, 0.5, step=0.05, label="Opacity")
    with gr.Row():
        # usable once a run is open; until then the note says what to do
        heat_button = gr.Button("Heatmap", variant="primary", interactive=False)
        features_button = gr.Button("Feature maps", interactive=False)
    heat_note = gr.Markdown("Open a run first.")
    with gr.Accordion("Classifier: confusion matrix, most confused, top losses", open=False) as classifier_views:
        validate_button = gr.Button("Run on the validation set", interactive=False)
        confusion = gr.Plot(label="Confusion matrix")
        confused = gr.Dataframe(headers=["actual", "predicted", "count"], label="Most confused")
        losses = gr.Image(type="pil", label="Top losses: predicted/actual / loss / probability of actual",
                          interactive=False)

    @user_errors
    def on_open(run_id):
        loaded = load(ctx, run_id)
        layers = insp.layer_choices(loaded)
        default = insp.default_layer(loaded.model) if layers else None
        lines, hist, stat_layers = insp.activation_figures(ctx.workspace.run_dir(run_id))
        note = "" if lines else "This run recorded no activation statistics (runs from before this feature, or switched off)."
        methods = insp.heatmap_methods(loaded)
        heat_text = ("" if methods else f"A {loaded.task} model outputs pictures, not class scores: it has no heatmap. "
                     "Its feature maps are shown for any layer.")
        return (insp.model_summary(loaded), gr.update(choices=stat_layers, value=stat_layers[-1] if stat_layers else None),
                lines, hist, note,
                gr.update(choices=insp.heatmap_classes(loaded), value=None, visible=bool(methods)),
                gr.update(choices=layers, value=default),
                gr.update(choices=methods or ["Grad-CAM"], value="Grad-CAM", visible=bool(methods)),
                gr.update(visible=bool(methods)), gr.update(visible=bool(methods), interactive=True), None, heat_text,
                gr.update(visible=insp.is_classifier(loaded)), gr.update(interactive=True), gr.update(interactive=True))

    @user_errors
    def on_stats_layer(run_id, name):
        if not run_id:
            return None, None
        lines, hist, _ = insp.activation_figures(ctx.workspace.run_dir(run_id), name)
        return lines, hist

    def _class_index(loaded, name):
        names = insp.heatmap_classes(loaded)
        return names.index(name) if name and name in names else None

    @user_errors
    def on_heatmap(run_id, image, how, name, layer_name, alpha):
        loaded = load(ctx, run_id)
        if image is None:
            raise gr.Error("Upload a picture first.", print_exception=False)
        picture, index = insp.heatmap(loaded, image, how, _class_index(loaded, name), layer_name or None, alpha)
        where = "the body's last activations" if how == "CAM" else f"layer {layer_name or insp.default_layer(loaded.model)}"
        region = "" if insp.is_classifier(loaded) else " over the pixels predicted as it"
        return picture, f"{how} for **{insp.heatmap_classes(loaded)[index]}**{region} on {where}."

    @user_errors
    def on_features(run_id, image, layer_name):
        loaded = load(ctx, run_id)
        if image is None and loaded.kind.try_view != "drawn":  # a generator from noise needs no picture
            raise gr.Error("Upload a picture first.", print_exception=False)
        return insp.strongest_feature_maps(loaded, image, layer_name or insp.default_layer(loaded.model))

    @user_errors
    def on_validate(run_id):
        loaded = load(ctx, run_id)
        found = insp.validation_predictions(loaded)
        cm = insp.confusion_matrix(found["targets"], found["preds"], len(loaded.classes))
        pairs = [list(p) for p in insp.most_confused(cm, loaded.classes)]
        return insp.confusion_figure(cm, loaded.classes), pairs, insp.top_losses_grid(loaded, found)

    analysis = [heat_button, features_button, validate_button]

    def on_run(run_id):
        """A newly chosen run has to be opened before its views can be asked for."""
        return (gr.update(interactive=bool(run_id)), *[gr.update(interactive=False)] * len(analysis),
                "Open the run to look inside it." if run_id else "Choose a run first.")

    run.change(on_run, run, [open_button, *analysis, heat_note], api_visibility="private", show_progress="hidden")
    open_button.click(on_open, run, [summary, stats_layer, stats_lines, stats_hist, stats_note, target, layer,
                                     method, opacity, heat_button, result, heat_note, classifier_views,
                                     features_button, validate_button])
    stats_layer.change(on_stats_layer, [run, stats_layer], [stats_lines, stats_hist])
    # As in Try: each answer first clears the last one, so a refusal (a toast with one sentence)
    # leaves nothing stale, and no red badge covers the outputs.
    heat_button.click(lambda: (None, ""), None, [result, heat_note], queue=False, api_visibility="private",
                      show_progress="hidden").then(
        on_heatmap, [run, picture, method, target, layer, opacity], [result, heat_note], show_progress="hidden")
    features_button.click(lambda: None, None, features, queue=False, api_visibility="private",
                          show_progress="hidden").then(on_features, [run, picture, layer], features,
                                                       show_progress="hidden")
    validate_button.click(on_validate, run, [confusion, confused, losses])
    return SimpleNamespace(on_show=(lambda current: run_list(ctx, current), [run], [run]))
