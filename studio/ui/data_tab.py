"""The Data tab: folder labels, crappify, masks and augmentation preview.

build(ctx) is called by the app shell inside `with gr.Tab("Data"):`; ctx.workspace is the
Workspace. In a shared studio (ctx.shared) the "folder on this machine" fields are hidden and
refused: a visitor must not make the server read its own folders; uploads still work. Every
builder lives in studio/datasets; this module only wires it to components and turns a
DatasetError (or anything unexpected) into a gr.Error sentence, never a traceback."""

import html
from pathlib import Path

import gradio as gr
import plotly.graph_objects as go
from PIL import Image

from studio.datasets.augment_preview import preview_augmentations as _preview_augmentations
from studio.datasets.crappify import RESAMPLE, CrappifyParams, crappify_dataset, preview as crappify_preview
from studio.datasets.errors import DatasetError
from studio.datasets.folder_labels import class_thumbnails, import_folder as _import_folder
from studio.datasets.manifest import dataset_names, existing_dataset, read_manifest
from studio.datasets.masks import (
    build_painted,
    class_colours,
    import_masks as _import_masks,
    overlay,
    painted_indices,
    parse_codes,
    pixel_frequencies,
    segment_sample,
)
from studio.datasets.safe_io import open_image
from studio.datasets.samples import ASSETS
from trainers.grid import enlarged

from .context import click_said_and_api, is_shared, user_errors
from .pictures import PictureEditor, PictureInput

PREVIEW_PICTURE = ASSETS / "photos" / "chelsea.jpg"
SHARED_NO_FOLDERS = (
    "This studio is shared over a public link, so it does not read folders on the machine it runs "
    "on: upload a zip archive instead."
)


def _source(folder, upload, shared=False):
    """An uploaded zip wins over a typed folder path; a shared studio takes uploads only."""
    typed = bool(folder and str(folder).strip())
    if shared and typed:
        raise DatasetError(SHARED_NO_FOLDERS)
    if upload:
        return upload if isinstance(upload, str) else getattr(upload, "name", upload)
    if typed:
        return str(folder).strip()
    if shared:
        raise DatasetError("Upload a zip archive first.")
    raise DatasetError("Give a folder path on this machine or upload a zip archive.")


def _skipped_rows(report):
    return [[s["file"], s["reason"]] for s in report.get("skipped", [])]


def named_summary(report) -> dict:
    """A builder's report as a script reads it (its endpoint's last output): name, kind, counts,
    classes or codes, skipped [{file, reason}], notes...; everything but the folder on the host."""
    return {key: value for key, value in report.items() if key != "path"}


def _summary(report, what):
    lines = [f"**{report['name']}** ({report['kind']}): {what}."]
    if report.get("skipped"):
        lines.append(f"{len(report['skipped'])} file(s) skipped; see the table below.")
    lines += [f"- {n}" for n in report.get("notes", [])]
    return "\n\n".join(lines)


def class_count_figure(counts: dict):
    fig = go.Figure()
    for part in ("train", "valid"):
        per_class = counts.get(part, {})
        fig.add_bar(name=part, x=list(per_class), y=list(per_class.values()))
    fig.update_layout(
        barmode="stack",
        title="Images per class",
        xaxis_title="class",
        yaxis_title="images",
        height=320,
        margin=dict(l=40, r=10, t=40, b=40),
    )
    return fig


def frequency_figure(freq: dict, colours):
    fig = go.Figure(
        go.Bar(
            x=list(freq),
            y=[100 * v for v in freq.values()],
            marker_color=[f"rgb{tuple(c)}" for c in colours[: len(freq)]],
        )
    )
    fig.update_layout(
        title="Pixels per class (%)", yaxis_title="% of pixels", height=300, margin=dict(l=40, r=10, t=40, b=40)
    )
    return fig


def legend_html(codes, colours):
    chips = "".join(
        f'<span style="display:inline-block;margin:2px 10px 2px 0"><span style="display:inline-block;'
        f'width:14px;height:14px;background:rgb{tuple(c)};border:1px solid #888;vertical-align:middle">'
        f"</span> {html.escape(str(code))}</span>"
        for code, c in zip(codes, colours)
    )
    return f"<div>{chips}</div>"


def _thumbs(paths_and_captions, limit=48):
    out = []
    for path, caption in paths_and_captions[:limit]:
        with Image.open(path) as im:
            out.append((im.convert("RGB"), caption))
    return out


# The crappify recipe's fields as the tab asks for them; sizes and opacity are percentages there.
FROM_PERCENT = ("text_size", "text_opacity")


def crappify_params(values: dict) -> CrappifyParams:
    """The recipe from the form's values, by recipe field name (crappify_controls' keys)."""
    recipe = {key: float(value) / 100.0 if key in FROM_PERCENT else value for key, value in values.items()}
    recipe["max_side"] = int(recipe.get("max_side") or 0)
    return CrappifyParams.from_dict(recipe)


def crappify_controls() -> dict:
    """{recipe field: component} of the degradation settings, laid out in one column; the dict's
    order is the order /crappify takes them in (docs/API.md)."""
    c = {}
    c["scale"] = gr.Slider(1, 8, value=4, step=1, label="Downscale factor (1 = off)")
    c["resample"] = gr.Dropdown(list(RESAMPLE), value="bilinear", label="Resample filter")
    super_res = gr.Checkbox(False, label="Super-resolution: keep the input at 1/N size")
    c["jpeg"] = gr.Checkbox(True, label="JPEG re-save")
    c["jpeg_min"] = gr.Slider(1, 100, value=10, step=1, label="JPEG quality, lowest")
    c["jpeg_max"] = gr.Slider(1, 100, value=70, step=1, label="JPEG quality, highest")
    c["text"] = gr.Checkbox(True, label="Draw a number or word")
    c["text_kind"] = gr.Radio(["number", "word"], value="number", label="Text")
    c["text_size"] = gr.Slider(5, 100, value=30, step=1, label="Text size (% of height, largest)")
    c["text_opacity"] = gr.Slider(0, 100, value=100, step=1, label="Text opacity %")
    c["noise"] = gr.Slider(0, 80, value=0, step=1, label="Gaussian noise (grey levels)")
    c["blur"] = gr.Slider(0, 5, value=0, step=0.1, label="Blur radius (px)")
    c["grayscale"] = gr.Checkbox(False, label="Grayscale (for colourisation)")
    c["super_res"] = super_res  # shown under the downscale factor, taken after grayscale (the API's order)
    c["max_side"] = gr.Number(0, precision=0, label="Shrink targets to this longest side (0 = keep)")
    return c


def pick(ws, kinds):
    """A dataset list for the datasets there are now: keeps the chosen one, else chooses the only
    one there is (a list with one choice need not wait for a click)."""

    def update(current):
        choices = dataset_names(ws, kinds)
        value = current if current in choices else (choices[0] if len(choices) == 1 else None)
        return gr.update(choices=choices, value=value)

    return update


def source_fields(shared, folder_label="Folder on this machine", placeholder=None):
    """(folder textbox, zip upload) in a row; a shared studio hides the folder."""
    with gr.Row():
        folder = gr.Textbox(label=folder_label, placeholder=placeholder, visible=not shared)
        upload = gr.File(label="...or upload a zip", file_types=[".zip"], type="filepath")
    return folder, upload


def skipped_table():
    return gr.Dataframe(headers=["file", "reason"], label="Skipped", wrap=True, interactive=False)


def summary_json():
    """The builder's summary by name (named_summary), in a closed accordion: what scripts read."""
    with gr.Accordion("The summary as a script reads it (JSON)", open=False):
        return gr.JSON(label="Summary")


# ---------------- the panels: one function each (handlers' api names are part of docs/API.md) ----
def folder_labels_panel(ws, shared):
    @user_errors
    def import_folder(name, folder, upload, split, valid_percent, seed):
        report = _import_folder(
            ws,
            name,
            _source(folder, upload, shared),
            split=split or "random",
            valid_pct=float(valid_percent) / 100.0,
            seed=int(seed or 0),
        )
        total = sum(sum(v.values()) for v in report["counts"].values())
        summary = _summary(report, f"{total} images in {len(report['classes'])} classes")
        thumbs = _thumbs(class_thumbnails(report["path"], per_class=6))
        return summary, class_count_figure(report["counts"]), thumbs, _skipped_rows(report), named_summary(report)

    gr.Markdown(
        "One folder per class (optionally inside `train/` and `valid/`), "
        + ("in an uploaded zip." if shared else "from a folder on this machine or a zip.")
    )
    folder, upload = source_fields(shared, placeholder="/path/to/pictures")
    with gr.Row():
        name = gr.Textbox(label="New dataset name", placeholder="pets")
        split = gr.Radio(
            ["random", "folder"],
            value="random",
            label="Split",
            info="random: seeded, per class; folder: keep train/ and valid/",
        )
        pct = gr.Slider(5, 50, value=20, step=1, label="Validation %")
        seed = gr.Number(42, precision=0, label="Seed")
    button = gr.Button("Import", variant="primary")
    summary = gr.Markdown()
    chart = gr.Plot(label="Class counts")
    gallery = gr.Gallery(label="Thumbnails per class", columns=8, height=300)
    skipped = skipped_table()
    named = summary_json()
    click_said_and_api(
        button,
        import_folder,
        [name, folder, upload, split, pct, seed],
        [summary, chart, gallery, skipped, named],
        "import_folder",
    )


def crappify_panel(ws, shared, tab):
    @user_errors
    def live_preview(picture, seed, *settings):
        if picture is None:
            return None
        return crappify_preview(picture, crappify_params(dict(zip(controls, settings))), seed=int(seed or 0))

    @user_errors
    def crappify(name, dataset, folder, upload, seed, *settings, progress=gr.Progress()):
        if upload or (folder and str(folder).strip()):
            source = _source(folder, upload, shared)
        elif dataset:
            source = existing_dataset(ws, dataset)
        else:
            raise DatasetError("Choose a dataset of pictures, a folder, or upload a zip.")
        report = crappify_dataset(
            ws,
            name,
            source,
            crappify_params(dict(zip(controls, settings))),
            seed=int(seed or 0),
            progress=lambda done, total: progress((done, total), desc="crappifying", unit="images"),
        )
        out = Path(report["path"])
        stems = sorted(p.stem for p in (out / "clean").glob("*.png"))[:8]
        pairs = []
        for s in stems:
            crappy, clean = Image.open(out / "crappy" / f"{s}.png"), Image.open(out / "clean" / f"{s}.png")
            pairs += [(crappy.convert("RGB"), f"{s}: input"), (clean.convert("RGB"), f"{s}: target")]
        scale = f", inputs at 1/{report['scale']} size" if report["scale"] > 1 else ""
        return _summary(report, f"{report['pairs']} pairs{scale}"), pairs, _skipped_rows(report), named_summary(report)

    gr.Markdown("Make (crappy input, clean target) pairs from good pictures, for restoration or super-resolution.")
    with gr.Row():
        dataset = gr.Dropdown(
            dataset_names(ws, ["images"]), label="Pictures from a dataset", value=None, allow_custom_value=True
        )
        folder = gr.Textbox(label="...or a folder on this machine", visible=not shared)
        upload = gr.File(label="...or upload a zip", file_types=[".zip"], type="filepath")
    with gr.Row():
        with gr.Column():
            controls = crappify_controls()
        with gr.Column():
            start = Image.open(PREVIEW_PICTURE).convert("RGB") if PREVIEW_PICTURE.is_file() else None
            picture = PictureInput(value=start, type="pil", label="Preview picture (drop your own)")
            preview = gr.ImageSlider(label="Before / after", type="pil")
            seed = gr.Number(0, precision=0, label="Dataset seed (same seed, same pairs)")
    settings = list(controls.values())
    for control in settings + [picture, seed]:
        control.change(live_preview, [picture, seed] + settings, preview, show_progress="hidden", api_name=False)
    name = gr.Textbox(label="New dataset name", placeholder="photos-crappy")
    button = gr.Button("Make pairs", variant="primary")
    summary = gr.Markdown()
    gallery = gr.Gallery(label="Some pairs", columns=8, height=260)
    skipped = skipped_table()
    named = summary_json()
    click_said_and_api(
        button,
        crappify,
        [name, dataset, folder, upload, seed] + settings,
        [summary, gallery, skipped, named],
        "crappify",
    )
    # Opening Crappify shows the preview at once (it used to wait for a setting to move).
    tab.select(pick(ws, ["images"]), dataset, dataset, api_name=False).then(
        live_preview, [picture, seed] + settings, preview, show_progress="hidden", api_name=False
    )


def overlay_view(ws, dataset, index, opacity):
    """(overlay enlarged, legend, pixel-frequency chart) of a segmentation dataset's pair."""
    folder = existing_dataset(ws, dataset)
    image, values, codes = segment_sample(folder, int(index or 0))
    colours = class_colours(max(len(codes), 2))
    # enlarged (whole factor, sharp pixels): a 64 px sample is unreadable at its own size
    return (
        enlarged(overlay(image, values, colours, float(opacity) / 100.0), 256),
        legend_html(codes, colours),
        frequency_figure(pixel_frequencies(folder), colours),
    )


def overlay_outputs():
    """(overlay picture, legend, pixel-frequency chart) side by side."""
    with gr.Row():
        view = gr.Image(label="Overlay", type="pil", height=320, interactive=False)
        with gr.Column():
            legend = gr.HTML()
            freq = gr.Plot(label="Pixel frequencies")
    return [view, legend, freq]


def import_masks_panel(ws, shared):
    @user_errors
    def import_masks(name, folder, upload, codes, void, palette_text):
        palette = None
        if palette_text and palette_text.strip():
            try:
                palette = [
                    tuple(int(v) for v in line.replace(",", " ").split())
                    for line in palette_text.splitlines()
                    if line.strip()
                ]
            except ValueError:
                raise DatasetError("Write the palette as one 'R G B' colour per line, in the order of the codes.")
        report = _import_masks(
            ws,
            name,
            _source(folder, upload, shared),
            codes=codes or None,
            void=(void or "").strip() or None,
            palette=palette,
        )
        view, legend, freq = overlay_view(ws, report["name"], 0, 50)
        summary = _summary(report, f"{report['images']} image and mask pairs")
        return summary, view, legend, freq, _skipped_rows(report), named_summary(report)

    gr.Markdown(
        "A folder or zip with `images/` and `labels/` (same file names; CamVid's `_P` suffix works) "
        "and `codes.txt` (pixel value = line number from 0)."
    )
    folder, upload = source_fields(shared)
    with gr.Row():
        name = gr.Textbox(label="New dataset name")
        codes = gr.Textbox(label="Codes, one per line (empty: use codes.txt)", lines=4)
        void = gr.Textbox(label="Void code (ignored in metrics, optional)")
        palette = gr.Textbox(label="Palette for colour masks: 'R G B' per code (optional)", lines=4)
    button = gr.Button("Import masks", variant="primary")
    summary = gr.Markdown()
    shown = overlay_outputs()
    skipped = skipped_table()
    named = summary_json()
    click_said_and_api(
        button,
        import_masks,
        [name, folder, upload, codes, void, palette],
        [summary, *shown, skipped, named],
        "import_masks",
    )


def brush(codes_text):
    """(codes, a fixed-colour brush with one colour per class but the first)."""
    codes = parse_codes(codes_text)
    hexes = ["#%02x%02x%02x" % c for c in class_colours(len(codes))]
    return codes, gr.Brush(
        colors=hexes[1:] or hexes, default_color=hexes[1] if len(hexes) > 1 else hexes[0], color_mode="fixed"
    )


def paint_panel(ws):
    """Returns the dataset list, refreshed when the Masks tab opens."""

    def paint_images(dataset):
        folder = existing_dataset(ws, dataset)
        kind = read_manifest(folder).get("kind")
        pattern = {"images": "*.png", "segment": "images/*.png", "classify": "train/*/*.png", "restore": "clean/*.png"}[
            kind
        ]
        return sorted(folder.glob(pattern))

    @user_errors
    def load_for_painting(dataset, index, codes_text):
        files = paint_images(dataset)
        if not files:
            raise DatasetError(f"The dataset '{dataset}' has no pictures to paint.")
        at = int(index or 0) % len(files)
        codes, chosen = brush(codes_text)
        legend = legend_html(codes, class_colours(len(codes)))
        return (
            gr.update(value={"background": open_image(files[at]), "layers": [], "composite": None}, brush=chosen),
            f"Painting **{files[at].name}** ({at + 1} of {len(files)}). Unpainted = {codes[0]}.",
            legend,
        )

    @user_errors
    def keep_mask(dataset, index, codes_text, editor, painted):
        files = paint_images(dataset)
        path = files[int(index or 0) % len(files)]
        codes = parse_codes(codes_text)
        layers = [l for l in (editor or {}).get("layers") or [] if l is not None]
        if not layers:
            raise DatasetError("Nothing is painted yet: paint over the picture with the class colours first.")
        merged = Image.new("RGBA", layers[0].size, (0, 0, 0, 0))
        for layer in layers:
            merged = Image.alpha_composite(merged, layer.convert("RGBA").resize(merged.size))
        with Image.open(path) as im:
            size = im.size
        painted = dict(painted or {})
        painted[str(path)] = painted_indices(merged, class_colours(len(codes)), size=size)
        return painted, f"{len(painted)} mask(s) kept; press Save when done."

    @user_errors
    def save_painted(name, codes_text, void, painted):
        painted = painted or {}
        images = {Path(p).stem: p for p in painted}
        masks = {Path(p).stem: v for p, v in painted.items()}
        report = build_painted(ws, name, images, masks, codes_text, void=(void or "").strip() or None)
        return _summary(report, f"{report['images']} painted masks"), {}

    gr.Markdown(
        "Paint each class in its colour; what stays unpainted is the first code. "
        "Keep each mask, then save them all as a new dataset."
    )
    painted = gr.State({})
    with gr.Row():
        dataset = gr.Dropdown(dataset_names(ws, PAINTABLE), label="Pictures from dataset", allow_custom_value=True)
        index = gr.Number(0, precision=0, label="Picture number")
        codes = gr.Textbox("background\nobject", label="Codes, one per line", lines=3)
    load = gr.Button("Load picture")
    info = gr.Markdown()
    legend = gr.HTML()
    editor = PictureEditor(
        type="pil", image_mode="RGBA", sources=(), layers=False, brush=brush("background\nobject")[1], label="Paint"
    )
    with gr.Row():
        keep = gr.Button("Keep mask")
        name = gr.Textbox(label="New dataset name")
        void = gr.Textbox(label="Void code (optional)")
        save = gr.Button("Save painted dataset", variant="primary")
    status = gr.Markdown()
    # quick steps: a refusal is the toast's sentence alone, with no "Error" badge on the outputs
    quiet = dict(api_name=False, show_progress="hidden")
    load.click(load_for_painting, [dataset, index, codes], [editor, info, legend], **quiet)
    keep.click(keep_mask, [dataset, index, codes, editor, painted], [painted, status], **quiet)
    save.click(save_painted, [name, codes, void, painted], [status, painted], **quiet)
    return dataset


def overlay_panel(ws, tab):
    """Returns the dataset list, refreshed when the Masks tab opens."""

    @user_errors
    def show_overlay(dataset, index, opacity):
        if not dataset:
            return None, "", None
        return overlay_view(ws, dataset, index, opacity)

    with gr.Row():
        dataset = gr.Dropdown(dataset_names(ws, ["segment"]), label="Segmentation dataset", allow_custom_value=True)
        index = gr.Number(0, precision=0, label="Picture number")
        opacity = gr.Slider(0, 100, value=50, step=1, label="Opacity %")
    shown = overlay_outputs()
    for control in (dataset, index, opacity):
        control.change(show_overlay, [dataset, index, opacity], shown, api_name=False, show_progress="hidden")
    # Opening Overlay lists the segmentation datasets there are now (a mask set imported a moment
    # ago included) and shows the chosen one's first pair instead of a blank box.
    tab.select(pick(ws, ["segment"]), dataset, dataset, api_name=False).then(
        show_overlay, [dataset, index, opacity], shown, api_name=False, show_progress="hidden"
    )
    return dataset


def augment_panel(ws, tab):
    @user_errors
    def preview_augmentations(dataset, index, n, seed):
        folder = existing_dataset(ws, dataset)
        pictures = _preview_augmentations(folder, int(index or 0), int(n or 8), int(seed or 0))
        # pairs are two pictures side by side: say which is which
        partner = {"segment": "input | mask", "restore": "input | target"}.get(read_manifest(folder).get("kind"))
        return [(im, f"{k + 1}: {partner}" if partner else f"{k + 1}") for k, im in enumerate(pictures)]

    gr.Markdown(
        "What training will see: random zoom, flips, rotation, warp and lighting; masks and targets move "
        "with their picture."
    )
    with gr.Row():
        dataset = gr.Dropdown(dataset_names(ws), label="Dataset", allow_custom_value=True)
        index = gr.Number(0, precision=0, label="Sample number")
        n = gr.Slider(1, 32, value=8, step=1, label="How many")
        seed = gr.Number(0, precision=0, label="Seed")
    button = gr.Button("Preview", variant="primary")
    # "contain": a pair (twice as wide as tall) is shown whole, not cropped to a square
    gallery = gr.Gallery(label="Augmented", columns=4, height=420, object_fit="contain")
    # a refusal is the toast's sentence alone: no "Error" badge over the gallery
    button.click(
        preview_augmentations,
        [dataset, index, n, seed],
        gallery,
        api_name="preview_augmentations",
        show_progress="hidden",
    )
    tab.select(lambda: gr.update(choices=dataset_names(ws)), None, dataset, api_name=False)


PAINTABLE = ["images", "segment", "classify"]


def build(ctx):
    """The Data tab: one sub-tab per builder, each built by its panel function. Dataset lists
    change as datasets are built (here or elsewhere): each refreshes when its sub-tab opens; API
    callers may name a dataset made later (allow_custom_value; the handlers check the name)."""
    ws, shared = ctx.workspace, is_shared(ctx)
    gr.Markdown(
        "Turn your own pictures into a training set. Builders never change your files: each one makes a new "
        "dataset in the workspace."
    )
    with gr.Tabs():
        with gr.Tab("Folder labels"):
            folder_labels_panel(ws, shared)
        with gr.Tab("Crappify") as crappify_tab:
            crappify_panel(ws, shared, crappify_tab)
        with gr.Tab("Masks") as masks_tab:
            with gr.Tab("Import"):
                import_masks_panel(ws, shared)
            with gr.Tab("Paint"):
                paint_list = paint_panel(ws)
            with gr.Tab("Overlay") as overlay_tab:
                overlay_list = overlay_panel(ws, overlay_tab)
        with gr.Tab("Augmentation preview") as augment_tab:
            augment_panel(ws, augment_tab)
    masks_tab.select(
        lambda: (gr.update(choices=dataset_names(ws, PAINTABLE)), gr.update(choices=dataset_names(ws, ["segment"]))),
        None,
        [paint_list, overlay_list],
        api_name=False,
    )
