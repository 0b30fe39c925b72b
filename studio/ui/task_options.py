"""The Train tab's settings that only some tasks have, shown for those tasks alone.

gan: the restore run whose generator it starts from. style: the mode (train a network, or Gatys:
optimise one picture), the style image, and for Gatys the content photo and the number of steps.
Pictures are chosen from the chosen dataset or uploaded (studio.uploads keeps them in the
workspace, since a run may only name files inside it). The values become the config's `extra`.
"""
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from studio import uploads
from studio.datasets.errors import DatasetError
from studio.datasets.sources import image_files

from .context import user_errors

STYLE_MODES = [("Train a network (Johnson): stylises any photo in one pass", "network"),
               ("Optimise one picture (Gatys): a short job, no network", "gatys")]
GATYS_STEPS = 100


class OptionsError(ValueError):
    """A task setting the form cannot turn into a config; said to the user as it is."""


def generator_runs(store, workspace) -> list:
    """(label, run id) of the completed restore runs with a checkpoint: those a gan may start from
    (studio.jobs accepts no other)."""
    choices = []
    for r in store.list_runs():
        if r["kind"] != "train" or r["task"] != "restore" or r["status"] != "completed":
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


def task_extra(task, generator_run, style_mode, style_image, content_image, steps) -> dict:
    """The config's `extra` for these form values; an OptionsError when a needed one is missing."""
    if task == "gan":
        if not generator_run:
            raise OptionsError("A gan run starts from a restore run's generator: choose one under 'Generator' "
                               "(train a restore run first if there is none).")
        return {"generator_run": generator_run}
    if task == "style":
        if not style_image:
            raise OptionsError("Choose the style image (a picture of the dataset, or upload one).")
        extra = {"mode": style_mode or "network", "style_image": style_image}
        if extra["mode"] == "gatys":
            if content_image:
                extra["content_image"] = content_image
            if steps in (None, ""):
                raise OptionsError("'Steps' is empty: give how many optimisation steps Gatys takes, e.g. 100.")
            if float(steps) != int(float(steps)) or int(float(steps)) < 1:
                raise OptionsError(f"'Steps' must be a whole number of at least 1, not {steps}.")
            extra["steps"] = int(float(steps))
        return extra
    return {}


def build(ctx, dataset, task):
    """The options' components (inside the caller's layout) and their wiring to `dataset` and
    `task`. Returns .inputs (in task_extra's order after the task) and .refresh(task, dataset)."""
    ws, store = ctx.workspace, ctx.store
    with gr.Group(visible=False) as gan_box:
        generator = gr.Dropdown([], value=None, label="Generator", elem_id="train-generator-run",
                                info="The finished restore run whose U-Net the GAN starts from and keeps improving.")
    with gr.Group(visible=False) as style_box:
        mode = gr.Radio(STYLE_MODES, value="network", label="Style transfer", elem_id="train-style-mode")
        style_image = gr.Dropdown([], value=None, label="Style image", elem_id="train-style-image",
                                  info="The picture whose style is copied.")
        upload = gr.UploadButton("Upload a style image", file_types=["image"], type="filepath", size="sm",
                                 elem_id="train-style-upload")
        with gr.Row(visible=False) as gatys_row:
            content_image = gr.Dropdown([], value=None, label="Content photo", elem_id="train-content-image",
                                        info="The photo repainted in the style (blank: the dataset's first).")
            steps = gr.Number(GATYS_STEPS, label="Steps", precision=0, minimum=1, info="Adam steps on the pixels.")
        upload_note = gr.Markdown("")

    def refresh(task_name, dataset_name, style_value=None, content_value=None):
        pictures = picture_choices(ws, dataset_name)
        paths = [p for _, p in pictures]
        runs = generator_runs(store, ws) if task_name == "gan" else []
        return (gr.update(visible=task_name == "gan"),
                gr.update(choices=runs, value=runs[0][1] if runs else None),
                gr.update(visible=task_name == "style"),
                gr.update(choices=pictures, value=style_value if style_value in paths else None),
                gr.update(choices=pictures, value=content_value if content_value in paths else None))

    outputs = [gan_box, generator, style_box, style_image, content_image]
    task.change(refresh, [task, dataset, style_image, content_image], outputs, api_visibility="private")
    dataset.change(refresh, [task, dataset, style_image, content_image], outputs, api_visibility="private")
    mode.change(lambda m: gr.update(visible=m == "gatys"), mode, gatys_row, api_visibility="private")

    @user_errors
    def on_upload(path, dataset_name):
        try:
            kept = uploads.keep_picture(ws, path)
        except DatasetError as e:
            return gr.skip(), f"⚠ {e}"
        return (gr.update(choices=picture_choices(ws, dataset_name), value=str(kept)),
                f"Kept as {Path(kept).name} in the workspace's uploads.")

    upload.upload(on_upload, [upload, dataset], [style_image, upload_note], api_visibility="private")
    return SimpleNamespace(inputs=[generator, mode, style_image, content_image, steps], refresh=refresh,
                           outputs=outputs)
