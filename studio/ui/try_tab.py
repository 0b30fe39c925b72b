"""The Try tab: use a finished run, whatever its task.

classify: top-k with probabilities and a Grad-CAM heatmap; segment: the picture tinted by the
predicted classes, with a colour legend and an opacity slider; restore and gan: before and after,
side by side and on a slider; wgan: a grid drawn from a seed (same seed, same pictures); style:
an uploaded photo stylised. Choosing a run shows only the inputs and outputs of its task.
The views are plain functions of a loaded model, so they are tested without a browser."""
from types import SimpleNamespace

import gradio as gr
import torch
from PIL import Image

from studio import inspect as insp
from studio.ui.context import user_errors
from studio.ui.data_tab import legend_html
from studio.ui.inspect_tab import load, run_list
from studio.ui.pictures import PictureInput

TASKS = ("classify", "segment", "restore", "gan", "wgan", "style")
BUTTON = {"classify": "Predict", "segment": "Segment", "restore": "Restore", "gan": "Restore",
          "wgan": "Generate", "style": "Stylise"}
ABOUT = {
    "classify": "Upload a picture (or use the webcam): the most likely classes and where the model looked.",
    "segment": "Upload a picture: each pixel tinted by its predicted class.",
    "restore": "Upload a damaged or small picture: before and after.",
    "gan": "Upload a damaged or small picture: before and after, from the GAN's generator.",
    "wgan": "No picture needed: choose a seed and a count. The same seed always draws the same pictures.",
    "style": "Upload a photo: it comes back in the style this run learned.",
}


# --- the views: loaded model -> what the page shows ------------------------------------

def classify_view(loaded, image, k: int = 3) -> tuple:
    """({class: probability} for the top k, Grad-CAM overlay, note)."""
    top = loaded.probabilities(image)[:max(1, int(k))]
    with torch.inference_mode(False):  # Grad-CAM needs gradients; Gradio may call us in inference mode
        picture, index = insp.heatmap(loaded, image, "Grad-CAM", None, None, 0.5)
    return dict(top), picture, f"Grad-CAM heatmap for **{loaded.classes[index]}**."


def segment_view(loaded, image, opacity: float = 0.5) -> tuple:
    """(overlay, legend HTML with one colour chip per class)."""
    from trainers.tasks.segment import overlay
    labels = loaded.forward(loaded.preprocess(image)).argmax(1)[0]
    palette = [tuple(c) for c in loaded.info["palette"]]
    picture = overlay(loaded.shown(image), labels, palette, float(opacity))
    return picture, legend_html(loaded.info["codes"], palette)


def before_after_view(loaded, image) -> tuple:
    """((before, after) for the slider, the two side by side)."""
    from trainers.grid import side_by_side
    before, after = loaded.restored(image)
    return (before, after), side_by_side([[before, after]])


def generate_view(loaded, seed: int, count: int):
    """A grid of `count` pictures drawn from `seed`."""
    from trainers.grid import grid
    images = loaded.generate(int(seed), int(count))
    return grid(images, columns=min(8, len(images)))


def stylise_view(loaded, image):
    return loaded.stylise(image)


def shown_for(task: str) -> dict:
    """Which inputs and output groups a task uses (the rest are hidden)."""
    return {"picture": task != "wgan", "k": task == "classify", "opacity": task == "segment",
            "seed": task == "wgan", "count": task == "wgan",
            "classify": task == "classify", "segment": task == "segment",
            "before_after": task in ("restore", "gan"), "generate": task == "wgan", "style": task == "style"}


# --- the tab ------------------------------------------------------------------------------

DISPLAY_SIDE = 256  # small models give small pictures: shown enlarged, pixels kept sharp


def enlarged(value):
    """A picture (or a (before, after) pair) scaled up by a whole factor, nearest neighbour, until
    its longer side reaches DISPLAY_SIDE; larger pictures and other values pass unchanged."""
    if isinstance(value, tuple):
        return tuple(enlarged(v) for v in value)
    if not isinstance(value, Image.Image):
        return value
    factor = -(-DISPLAY_SIDE // max(value.size))
    return value if factor <= 1 else value.resize((value.width * factor, value.height * factor), Image.NEAREST)


def build(ctx):
    gr.Markdown("### Try a trained model")
    # The list is filled, and its newest run chosen, when the page loads (app.py): choosing it then
    # is a change, which shows that run's inputs; a value given here would not be.
    first = run_list(ctx, None, ("completed",))
    run = gr.Dropdown(label="Run", choices=first["choices"], value=None, info=first["info"],
                      elem_id="try-run")
    about = gr.Markdown("Choose a run.", elem_id="try-about")
    with gr.Row():
        with gr.Column():
            picture = PictureInput(type="pil", sources=["upload", "webcam"], label="Picture", height=300,
                                   elem_id="try-picture")
            k = gr.Slider(1, 10, 3, step=1, label="Top k", visible=False)
            opacity = gr.Slider(0, 1, 0.5, step=0.05, label="Opacity", visible=False)
            seed = gr.Slider(0, 9999, 0, step=1, label="Seed", visible=False)
            count = gr.Slider(1, 32, 8, step=1, label="How many", visible=False)
            go = gr.Button("Predict", variant="primary", elem_id="try-go", interactive=False)
        with gr.Column():
            with gr.Group(visible=False) as classify_box:
                label = gr.Label(label="Prediction", elem_id="try-label")
                heat = gr.Image(type="pil", label="Heatmap", height=300, interactive=False, alt_text="Where the model looked", elem_id="try-heatmap")
                heat_note = gr.Markdown(elem_id="try-heat-note")
            with gr.Group(visible=False) as segment_box:
                seg_picture = gr.Image(type="pil", label="Predicted classes", height=300, interactive=False, alt_text="The picture tinted by predicted class")
                seg_legend = gr.HTML()
            with gr.Group(visible=False) as before_after_box:
                slider = gr.ImageSlider(type="pil", label="Before / after (drag)", interactive=False)
                pair = gr.Image(type="pil", label="Before | after", height=300, interactive=False, alt_text="Before and after, side by side")
            with gr.Group(visible=False) as generate_box:
                drawn = gr.Image(type="pil", label="Drawn from the seed", height=360, interactive=False, alt_text="Pictures drawn from the seed")
            with gr.Group(visible=False) as style_box:
                styled = gr.Image(type="pil", label="Stylised", height=360, interactive=False, alt_text="The picture in the learned style")

    inputs = {"picture": picture, "k": k, "opacity": opacity, "seed": seed, "count": count}
    boxes = {"classify": classify_box, "segment": segment_box, "before_after": before_after_box,
             "generate": generate_box, "style": style_box}
    outputs = [label, heat, heat_note, seg_picture, seg_legend, slider, pair, drawn, styled]

    @user_errors
    def on_choose(run_id):
        """Show the chosen run's inputs and outputs only."""
        if not run_id:
            task, text = None, "Choose a run."
        else:
            task = load(ctx, run_id).task
            text = f"**{task}** run. {ABOUT.get(task, '')}"
        visible = shown_for(task) if task else {key: key == "picture" for key in {**inputs, **boxes}}
        return ([text, gr.update(value=BUTTON.get(task, "Predict"), interactive=bool(task))]
                + [gr.update(visible=visible[key]) for key in inputs]
                + [gr.update(visible=visible[key]) for key in boxes])

    @user_errors
    def on_try(run_id, image, top_k, alpha, seed_value, how_many):
        if not run_id:
            raise gr.Error("Choose a run first.", print_exception=False)
        loaded = load(ctx, run_id)
        values = [gr.update()] * len(outputs)
        if loaded.task == "wgan":
            values[7] = enlarged(generate_view(loaded, seed_value, how_many))
            return values
        if image is None:
            raise gr.Error("Upload a picture or take one with the webcam.", print_exception=False)
        if loaded.task == "classify":
            values[0:3] = classify_view(loaded, image, top_k)
        elif loaded.task == "segment":
            values[3:5] = segment_view(loaded, image, alpha)
        elif loaded.task in ("restore", "gan"):
            values[5:7] = before_after_view(loaded, image)
        elif loaded.task == "style":
            values[8] = stylise_view(loaded, image)
        else:
            raise gr.Error(f"Trying {loaded.task} models is not available.", print_exception=False)
        return [enlarged(v) for v in values]

    choose_outputs = [about, go] + list(inputs.values()) + list(boxes.values())
    run.change(on_choose, run, choose_outputs, api_name=False)
    try_inputs = [run, picture, k, opacity, seed, count]
    # Each try first clears what the last one showed, so a refused picture leaves no stale answer
    # (nor a heatmap note about the previous picture). Its refusal is the toast's one sentence:
    # show_progress="hidden" keeps Gradio's red "Error" badges off the outputs.
    cleared = [None, None, "", None, "", None, None, None, None]
    go.click(lambda: cleared, None, outputs, queue=False, api_visibility="private", show_progress="hidden").then(
        on_try, try_inputs, outputs, api_name="try_model", show_progress="hidden")
    picture.upload(lambda: cleared, None, outputs, queue=False, api_visibility="private",
                   show_progress="hidden").then(on_try, try_inputs, outputs, api_name=False, show_progress="hidden")
    seed.release(on_try, try_inputs, outputs, api_name=False)
    # the list is rebuilt whenever the tab is shown or the page loads (app.py)
    return SimpleNamespace(on_show=(lambda current: run_list(ctx, current, ("completed",)), [run], [run]))
