"""The Try tab: use a finished run on a picture (upload or webcam).

classify: top-k with probabilities and a Grad-CAM heatmap; segment: the picture tinted by the
predicted classes; restore: before and after. Other tasks get a plain "not yet" message."""
import gradio as gr
import torch

from studio import inspect as insp
from studio.ui.context import user_errors
from studio.ui.inspect_tab import finished_runs, load


def predict(loaded, image, k: int = 3, opacity: float = 0.5):
    """-> (label dict or None, picture, note) for one picture."""
    if loaded.task == "classify":
        top = loaded.probabilities(image)[:max(1, int(k))]
        picture, index = insp.heatmap(loaded, image, "Grad-CAM", None, None, opacity)
        return dict(top), picture, f"Grad-CAM heatmap for **{loaded.classes[index]}**."
    if loaded.task == "segment":
        from trainers.tasks.segment import overlay
        labels = loaded.forward(loaded.preprocess(image)).argmax(1)[0]
        picture = overlay(loaded.shown(image), labels, loaded.info["palette"], opacity)
        legend = ", ".join(f"{c} {tuple(p)}" for c, p in zip(loaded.info["codes"], loaded.info["palette"]))
        return None, picture, f"Classes (RGB): {legend}"
    if loaded.task == "restore":
        from trainers.grid import side_by_side, to_pil
        out = loaded.forward(loaded.preprocess(image))[0].clamp(0, 1)
        before = loaded.shown(image).resize(out.shape[-1:-3:-1])
        return None, side_by_side([[before, to_pil(out)]]), "Before | after."
    return None, None, f"Trying {loaded.task} models here is not available yet."


def build(ctx):
    gr.Markdown("### Try a trained model")
    with gr.Row():
        run = gr.Dropdown(label="Run", choices=finished_runs(ctx, ("completed",)), value=None, scale=4)
        refresh = gr.Button("Refresh list", scale=1)
    with gr.Row():
        picture = gr.Image(type="pil", sources=["upload", "webcam"], label="Picture", height=300)
        with gr.Column():
            label = gr.Label(label="Prediction")
            result = gr.Image(type="pil", label="Heatmap / result", height=300, interactive=False)
            note = gr.Markdown()
    with gr.Row():
        k = gr.Slider(1, 10, 3, step=1, label="Top k")
        opacity = gr.Slider(0, 1, 0.5, step=0.05, label="Opacity")
        go = gr.Button("Predict", variant="primary")

    @user_errors
    def on_predict(run_id, image, top_k, alpha):
        if not run_id:
            raise gr.Error("Choose a run first.", print_exception=False)
        if image is None:
            raise gr.Error("Upload a picture or take one with the webcam.", print_exception=False)
        with torch.inference_mode(False):
            found, shown, text = predict(load(ctx, run_id), image, top_k, alpha)
        return found, shown, text

    refresh.click(lambda: gr.update(choices=finished_runs(ctx, ("completed",))), outputs=run)
    go.click(on_predict, [run, picture, k, opacity], [label, result, note])
    picture.upload(on_predict, [run, picture, k, opacity], [label, result, note])
