"""Looking inside a trained model: summary, activation statistics, heatmaps, feature maps, and
for classifiers the confusion matrix, the most-confused pairs and the top losses.

Summary, statistics and feature maps work for any run studio.checkpoints can load. Heatmaps
need class scores: a classifier's (CAM and Grad-CAM) or a segmenter's per-pixel ones
(Grad-CAM of a class over the region painted with it); `heatmap_classes` says which.

Every function takes a LoadedModel (studio.checkpoints) and uses its lock; every hook is a
self-removing one from trainers.hooks, so no inspection leaves anything on the model.
"""
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from PIL import Image

from trainers.cam import cam, class_indices, conv_layers, default_layer, find_layer, grad_cam, layer_cam, overlay
from trainers.data import open_rgb, scan_labelled_folder
from trainers.grid import captioned, grid
from trainers.hooks import Hooks, hook_output, load_activation_stats

from .checkpoints import LoadedModel


class InspectError(ValueError):
    """An inspection that cannot be made; the message says why."""


def model_summary(loaded: LoadedModel) -> list:
    """[[layer, type, output shape, parameters, trainable]] for every leaf layer, on one input
    of the model's size."""
    model = loaded.model
    # Leaves, and containers that hold parameters of their own (self-attention's gamma), so that
    # the parameter column adds up to the model's total.
    leaves = [(n, m) for n, m in model.named_modules()
              if n and (not list(m.children()) or list(m.parameters(recurse=False)))]
    shapes = {}

    def record(hook, module, inputs, output):
        shapes[id(module)] = list(output.shape) if isinstance(output, torch.Tensor) else "-"

    with loaded.lock, Hooks([m for _, m in leaves], record), torch.no_grad():
        model(loaded.model_input())
    rows = []
    for name, m in leaves:
        params = list(m.parameters(recurse=False))
        count = sum(p.numel() for p in params)
        trainable = any(p.requires_grad for p in params) if params else False
        shape = shapes.get(id(m), "-")
        rows.append([name, type(m).__name__, "x".join(map(str, shape[1:])) if isinstance(shape, list) else shape,
                     count, "yes" if trainable else ("-" if not params else "no")])
    return rows


def layer_choices(loaded: LoadedModel) -> list:
    return [name for name, _ in conv_layers(loaded.model)]


def is_classifier(loaded: LoadedModel) -> bool:
    """Runs with a labelled validation set: confusion matrix, most confused and top losses
    (the task lists "interpretation" among its inspections)."""
    return "interpretation" in loaded.kind.inspections


def _interpreted_tasks() -> list:
    from trainers.tasks import TASKS
    return [name for name, task in TASKS.items() if "interpretation" in task.inspections]


def heatmap_classes(loaded: LoadedModel) -> list:
    """Names of the classes a heatmap can explain: a classifier's classes, a segmenter's codes;
    [] for models that output pictures (restore, gan, style), which have no class score."""
    return list(loaded.info.get("classes") or loaded.info.get("codes") or [])


def heatmap_methods(loaded: LoadedModel) -> list:
    """Grad-CAM and Layer-CAM for any model with class scores; CAM only for a body + pooled head."""
    if not heatmap_classes(loaded):
        return []
    has_head = hasattr(loaded.model, "body") and hasattr(loaded.model, "head")
    return ["Grad-CAM", "Layer-CAM"] + (["CAM"] if has_head else [])


def heatmap(loaded: LoadedModel, image: Image.Image, method: str = "Grad-CAM", class_index=None,
            layer: str | None = None, opacity: float = 0.5) -> tuple:
    """(overlay picture, class index used). method: "CAM" (the course's: body activations
    weighted by the head), "Grad-CAM" or "Layer-CAM" (any convolutional layer; Layer-CAM keeps
    where the gradient is, which localises better at coarse layers). For a segmenter the class
    is explained over the pixels predicted as that class (default: the one on most pixels)."""
    methods = heatmap_methods(loaded)
    if method not in methods:
        if not methods:
            raise InspectError(f"Heatmaps explain a class score, and this {loaded.task} model outputs pictures, "
                               f"not classes. Its summary, feature maps and activation statistics are shown.")
        raise InspectError(f"{method} is not available for this {loaded.task} model; use {' or '.join(methods)}.")
    x = loaded.preprocess(image)
    with loaded.lock:
        if method == "CAM":
            maps = cam(loaded.model, x, class_index)
        else:
            explain = layer_cam if method == "Layer-CAM" else grad_cam
            maps = explain(loaded.model, x, class_index, layer or default_layer(loaded.model))
        if class_index is None:
            with torch.no_grad():
                class_index = int(class_indices(loaded.model(x))[0])
    return overlay(loaded.shown(image), maps[0].numpy(), opacity), class_index


def strongest_feature_maps(loaded: LoadedModel, image: Image.Image, layer: str, k: int = 8) -> Image.Image:
    """The k channels of `layer` with the largest mean activation on this picture, each
    scaled to [0, 1] and captioned with its channel number. A wgan generator ignores the picture
    and draws from seed 0's noise."""
    module = find_layer(loaded.model, layer)
    with loaded.lock, hook_output(module) as h, torch.no_grad():
        loaded.model(loaded.model_input(image))
    acts = h.stored
    if acts is None or acts.dim() != 4:
        raise InspectError(f"Layer {layer!r} does not give feature maps; pick a convolutional layer.")
    acts = acts[0]
    strongest = acts.mean((1, 2)).argsort(descending=True)[:k].tolist()
    tiles = []
    for c in strongest:
        a = acts[c]
        a = (a - a.min()) / (a.max() - a.min()).clamp_min(1e-12)
        a = F.interpolate(a[None, None], size=(96, 96), mode="nearest")[0, 0]
        pixels = (a.numpy() * 255).astype(np.uint8)
        tiles.append(captioned(Image.fromarray(pixels).convert("RGB"), f"channel {c}"))
    return grid(tiles, columns=min(4, len(tiles)))


# --- classifiers on their validation set ----------------------------------------------

def validation_predictions(loaded: LoadedModel, limit: int = 2000) -> dict:
    """Predictions on the run's validation items: items, targets, preds, probs (N, C), losses."""
    if not is_classifier(loaded):
        raise InspectError(f"The confusion matrix and top losses are for {' and '.join(_interpreted_tasks())} runs; "
                           f"this is a {loaded.task} run.")
    config = loaded.config
    data = config.get("data", "")
    if not data or not Path(data).is_dir():
        raise InspectError(f"The run's dataset is no longer at {data!r}; the validation set cannot be read.")
    try:
        _, _, valid = scan_labelled_folder(data, config.get("valid_pct", 0.2), config.get("seed", 42))
    except ValueError as e:
        raise InspectError(f"Cannot read the run's validation set: {e}")
    valid = valid[:limit]
    probs = []
    for start in range(0, len(valid), 64):
        xs = torch.cat([loaded.preprocess(open_rgb(p)) for p, _ in valid[start:start + 64]])
        probs.append(loaded.forward(xs).softmax(1))
    probs = torch.cat(probs)
    targets = torch.tensor([t for _, t in valid])
    losses = -probs[torch.arange(len(valid)), targets].clamp_min(1e-12).log()
    return {"items": valid, "targets": targets, "preds": probs.argmax(1), "probs": probs, "losses": losses}


def confusion_matrix(targets, preds, n_classes: int) -> np.ndarray:
    """cm[actual, predicted] = count."""
    cm = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(cm, (np.asarray(targets), np.asarray(preds)), 1)
    return cm


def most_confused(cm: np.ndarray, classes, min_count: int = 1) -> list:
    """[(actual, predicted, count)] off the diagonal, most frequent first."""
    pairs = [(classes[a], classes[p], int(cm[a, p])) for a in range(len(classes)) for p in range(len(classes))
             if a != p and cm[a, p] >= min_count]
    return sorted(pairs, key=lambda r: (-r[2], r[0], r[1]))


def confusion_figure(cm: np.ndarray, classes) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=cm, x=list(classes), y=list(classes), colorscale="Blues", text=cm,
                               texttemplate="%{text}", hovertemplate="actual %{y}<br>predicted %{x}: %{z}<extra></extra>"))
    fig.update_layout(xaxis_title="predicted", yaxis_title="actual", yaxis_autorange="reversed",
                      height=max(300, 40 * len(classes) + 120), margin=dict(l=10, r=10, t=30, b=10))
    return fig


def top_losses_grid(loaded: LoadedModel, predictions: dict, k: int = 9) -> Image.Image:
    """The k validation images the model got most wrong: predicted / actual / loss / probability."""
    order = predictions["losses"].argsort(descending=True)[:k].tolist()
    classes = loaded.classes
    tiles = []
    for i in order:
        path, target = predictions["items"][i]
        pred = int(predictions["preds"][i])
        picture = loaded.shown(open_rgb(path)).resize((128, 128))
        caption = (f"{classes[pred]}/{classes[target]} / {float(predictions['losses'][i]):.2f} / "
                   f"{float(predictions['probs'][i, target]):.2f}")
        tiles.append(captioned(picture, caption, (240, 80, 80) if pred != target else (90, 220, 110)))
    if not tiles:
        raise InspectError("The validation set is empty.")
    return grid(tiles, columns=min(3, len(tiles)))


# --- activation statistics --------------------------------------------------------------

def activation_figures(run_dir, layer: str | None = None) -> tuple:
    """(means and stds per layer over training batches, histogram-over-time heatmap of one
    layer, layer names); None figures when the run recorded no statistics."""
    stats = load_activation_stats(Path(run_dir) / "activation_stats.pt")
    if stats is None:
        return None, None, []
    layers = list(stats["layers"])
    steps = list(range(len(stats["epoch"])))
    lines = go.Figure()
    for j, name in enumerate(layers):
        lines.add_trace(go.Scatter(x=steps, y=stats["mean"][:, j].tolist(), name=f"{name} mean", legendgroup=name))
        lines.add_trace(go.Scatter(x=steps, y=stats["std"][:, j].tolist(), name=f"{name} std", legendgroup=name,
                                   line=dict(dash="dot"), visible="legendonly"))
    lines.update_layout(xaxis_title="recorded training batch", yaxis_title="activation mean (std: click legend)",
                        height=380, margin=dict(l=10, r=10, t=30, b=10))
    layer = layer if layer in layers else layers[-1]
    j = layers.index(layer)
    hist = stats["hist"][:, j, :].float()
    lo, hi = stats["hist_range"].tolist()
    bins = hist.shape[1]
    edges = [lo + (hi - lo) * (b + 0.5) / bins for b in range(bins)]
    picture = go.Figure(go.Heatmap(z=hist.add(1).log().T.tolist(), x=steps, y=edges, colorscale="Viridis",
                                   colorbar=dict(title="log count")))
    near = stats["near_zero"][:, j].mean().item()
    picture.update_layout(title=f"{layer}: |activation| histogram over training ({near:.0%} near zero on average)",
                          xaxis_title="recorded training batch", yaxis_title="|activation|", height=380,
                          margin=dict(l=10, r=10, t=40, b=10))
    return lines, picture, layers
