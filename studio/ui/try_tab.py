"""The Try tab: use a finished run, whatever its task.

Each task names its view in the registry (Task.try_view) and the inputs it reads
(Task.try_inputs); this tab has one answer group per view: "classes" (top-k with probabilities
and a Grad-CAM heatmap), "overlay" (the picture tinted by the predicted classes, with a colour
legend and an opacity slider), "before_after" (side by side and on a slider), "drawn" (a grid
drawn from a seed: same seed, same pictures), "stylised" (an uploaded photo stylised).
Choosing a run shows only the inputs and outputs of its task. The views are plain functions of
a loaded model, so they are tested without a browser. Each view also answers in numbers and words
by name (ANSWERS: the top classes, the share of pixels per code, the sizes, the seed...): the
last output of /try_model, a JSON object a script reads instead of counting outputs."""
from types import SimpleNamespace

import gradio as gr
import torch
from PIL import Image

from studio import inspect as insp
from studio.ui.context import user_errors
from studio.ui.data_tab import legend_html
from studio.ui.inspect_tab import load, run_list
from studio.ui.pictures import PictureInput

INPUTS = ("picture", "k", "opacity", "seed", "count")


def task_of(name):
    from trainers.tasks import get_task
    return get_task(name)


# --- the views: loaded model -> what the page shows ------------------------------------

def classify_view(loaded, image, k: int = 3) -> tuple:
    """({class: probability} for the top k, Grad-CAM overlay, note)."""
    shown, _ = classes_answer(loaded, {"picture": image, "k": k})
    return shown["label"], shown["heat"], shown["heat_note"]


def _segment(loaded, image, opacity: float) -> tuple:
    """(overlay, legend HTML, {code: share of the picture's pixels predicted as it})."""
    from trainers.tasks.segment import overlay

    labels = loaded.forward(loaded.preprocess(image)).argmax(1)[0]
    palette = [tuple(c) for c in loaded.info["palette"]]
    picture = overlay(loaded.shown(image), labels, palette, float(opacity))
    codes = list(loaded.info["codes"])
    counts = torch.bincount(labels.flatten(), minlength=len(codes)).tolist()
    share = {str(code): round(n / labels.numel(), 6) for code, n in zip(codes, counts)}
    return picture, legend_html(codes, palette), share


def segment_view(loaded, image, opacity: float = 0.5) -> tuple:
    """(overlay, legend HTML with one colour chip per class)."""
    picture, legend, _ = _segment(loaded, image, opacity)
    return picture, legend


def before_after_view(loaded, image) -> tuple:
    """((before, after) for the slider, the two side by side)."""
    from trainers.grid import side_by_side

    before, after = loaded.restored(image)
    return (before, after), side_by_side([[before, after]])


def _grid(pictures: list):
    from trainers.grid import grid

    return grid(pictures, columns=min(8, len(pictures)))


def generate_view(loaded, seed: int, count: int):
    """A grid of `count` pictures drawn from `seed`."""
    return _grid(loaded.generate(int(seed), int(count)))


def stylise_view(loaded, image):
    return loaded.stylise(image)


# --- the answers by view: (what the page shows, by answer name; the same in numbers and words) --
# Each takes the loaded model and the Try inputs by name (INPUTS); pictures stay in the page's
# image outputs, the facts go to the named JSON a script reads.


def _size(picture) -> list:
    return list(picture.size)


def classes_answer(loaded, given: dict) -> tuple:
    image = given["picture"]
    top = loaded.probabilities(image)[: max(1, int(given["k"]))]
    with torch.inference_mode(False):  # Grad-CAM needs gradients; Gradio may call us in inference mode
        picture, index = insp.heatmap(loaded, image, "Grad-CAM", None, None, 0.5)
    explained = loaded.classes[index]
    shown = {"label": dict(top), "heat": picture, "heat_note": f"Grad-CAM heatmap for **{explained}**."}
    facts = {
        "top": [{"label": label, "probability": round(p, 6)} for label, p in top],
        "heatmap": {"method": "Grad-CAM", "class": explained},
        "note": f"Grad-CAM heatmap for {explained}.",
    }
    return shown, facts


def overlay_answer(loaded, given: dict) -> tuple:
    picture, legend, share = _segment(loaded, given["picture"], given["opacity"])
    facts = {"codes": list(share), "pixel_share": share, "size": _size(picture), "opacity": float(given["opacity"])}
    return {"seg_picture": picture, "seg_legend": legend}, facts


def before_after_answer(loaded, given: dict) -> tuple:
    (before, after), both = before_after_view(loaded, given["picture"])
    # size: the restored picture (the centre of a very large one; larger for super-resolution)
    facts = {"size": _size(after), "input_size": _size(given["picture"])}
    return {"slider": (before, after), "pair": both}, facts


def drawn_answer(loaded, given: dict) -> tuple:
    seed, count = int(given["seed"]), int(given["count"])
    pictures = loaded.generate(seed, count)
    return {"drawn": _grid(pictures)}, {"seed": seed, "count": len(pictures), "size": _size(pictures[0])}


def stylised_answer(loaded, given: dict) -> tuple:
    picture = stylise_view(loaded, given["picture"])
    return {"styled": picture}, {"size": _size(picture), "input_size": _size(given["picture"])}


ANSWERS = {
    "classes": classes_answer,
    "overlay": overlay_answer,
    "before_after": before_after_answer,
    "drawn": drawn_answer,
    "stylised": stylised_answer,
}
VIEWS = tuple(ANSWERS)  # the page has one answer group per view


def answer(loaded, run_id: str, given: dict) -> tuple:
    """(the page's values by answer name, the named JSON) for a loaded run and the Try inputs by
    name, in the view its task names (Task.try_view); the JSON always has run_id, task and view."""
    view = loaded.kind.try_view
    if view not in ANSWERS:
        raise gr.Error(f"Trying {loaded.task} models is not available.", print_exception=False)
    if "picture" in loaded.kind.try_inputs and given.get("picture") is None:
        raise gr.Error("Upload a picture or take one with the webcam.", print_exception=False)
    shown, facts = ANSWERS[view](loaded, given)
    return shown, {"run_id": run_id, "task": loaded.task, "view": view, **facts}


def shown_for(task: str) -> dict:
    """Which inputs and answer views a task uses (the rest are hidden), from the registry."""
    found = task_of(task)
    return {**{key: key in found.try_inputs for key in INPUTS}, **{view: view == found.try_view for view in VIEWS}}


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
                      elem_id="try-run", allow_custom_value=True)  # load() checks the id against the store
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
            # The answer in numbers and words, by name: what /try_model's scripts read (docs/API.md).
            with gr.Accordion("The answer as a script reads it (JSON)", open=False):
                facts = gr.JSON(label="Answer", elem_id="try-answer")

    inputs = {"picture": picture, "k": k, "opacity": opacity, "seed": seed, "count": count}
    boxes = {"classes": classify_box, "overlay": segment_box, "before_after": before_after_box,
             "drawn": generate_box, "stylised": style_box}
    # Every answer by name; on_try fills those of the run's view and leaves the rest as they are.
    answers = {"label": label, "heat": heat, "heat_note": heat_note, "seg_picture": seg_picture,
               "seg_legend": seg_legend, "slider": slider, "pair": pair, "drawn": drawn, "styled": styled}
    # The named JSON comes last, so scripts that read the nine pictures by index keep working.
    outputs = list(answers.values()) + [facts]

    @user_errors
    def on_choose(run_id):
        """Show the chosen run's inputs and outputs only."""
        if not run_id:
            found, text = None, "Choose a run."
        else:
            task = load(ctx, run_id).task
            found = task_of(task)
            text = f"**{task}** run. {found.try_about}"
        visible = shown_for(found.name) if found else {key: key == "picture" for key in {**inputs, **boxes}}
        return {about: text, go: gr.update(value=found.try_button if found else "Predict", interactive=bool(found)),
                **{component: gr.update(visible=visible[key]) for key, component in {**inputs, **boxes}.items()}}

    @user_errors
    def on_try(run_id, image, top_k, alpha, seed_value, how_many):
        if not run_id:
            raise gr.Error("Choose a run first.", print_exception=False)
        loaded = load(ctx, run_id)
        given = {"picture": image, "k": top_k, "opacity": alpha, "seed": seed_value, "count": how_many}
        shown, named = answer(loaded, run_id, given)
        return {facts: named, **{answers[key]: enlarged(value) for key, value in shown.items()}}

    choose_outputs = [about, go] + list(inputs.values()) + list(boxes.values())
    run.change(on_choose, run, choose_outputs, api_name=False)
    try_inputs = [run, picture, k, opacity, seed, count]
    # Each try first clears what the last one showed, so a refused picture leaves no stale answer
    # (nor a heatmap note about the previous picture). Its refusal is the toast's one sentence:
    # show_progress="hidden" keeps Gradio's red "Error" badges off the outputs.
    cleared = {component: "" if component in (heat_note, seg_legend) else None for component in outputs}
    go.click(lambda: cleared, None, outputs, queue=False, api_visibility="private", show_progress="hidden").then(
        on_try, try_inputs, outputs, api_name="try_model", show_progress="hidden")
    picture.upload(lambda: cleared, None, outputs, queue=False, api_visibility="private",
                   show_progress="hidden").then(on_try, try_inputs, outputs, api_name=False, show_progress="hidden")
    seed.release(on_try, try_inputs, outputs, api_name=False)
    # the list is rebuilt whenever the tab is shown or the page loads (app.py)
    return SimpleNamespace(on_show=(lambda current: run_list(ctx, current, ("completed",)), [run], [run]))
