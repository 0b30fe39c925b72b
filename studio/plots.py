"""Plotly figures for the studio: loss curves, metric curves, the LR finder, runs overlaid.

Each function takes plain lists and dicts as the store returns them (see studio/store.py) and
returns a `plotly.graph_objects.Figure`; nothing here reads the store or knows about Gradio.
A figure without data says "no data yet" instead of showing empty axes.
"""
import math

import plotly.graph_objects as go

# One colour per run when several are overlaid (plotly's default qualitative palette).
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a",
           "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52")
TRAIN_COLOUR, VALID_COLOUR = PALETTE[0], PALETTE[1]
NOT_METRICS = {"epoch", "train_loss", "valid_loss", "seconds", "lr"}
HEIGHT = 340


def _layout(fig, title, x_title, y_title, log_y=False, log_x=False):
    fig.update_layout(title=title, height=HEIGHT, margin=dict(l=50, r=10, t=40, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"),
                      xaxis_title=x_title, yaxis_title=y_title, uirevision="keep")
    if log_y:
        fig.update_yaxes(type="log")
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def empty_figure(title: str, message: str = "no data yet"):
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=16, color="#888"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=HEIGHT, margin=dict(l=50, r=10, t=40, b=40))
    return fig


def ema(values, beta: float = 0.9) -> list:
    """Exponential moving average with fastai's debiasing, so the first points are not
    dragged towards zero."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** i))
    return out


def _finite(rows, key):
    return [r for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]


def _epoch_ends(batch_losses) -> dict:
    """Step at which each epoch ended, as far as the batch losses show it."""
    ends = {}
    for p in batch_losses:
        ends[p["epoch"]] = max(ends.get(p["epoch"], 0), p["step"])
    return ends


def _valid_xy(batch_losses, epoch_metrics, batches_per_epoch=None):
    """Valid loss per epoch, placed at the step where that epoch ended (so it lines up with
    the train curve); by epoch number times batches when the losses do not say."""
    ends = _epoch_ends(batch_losses)
    if not batches_per_epoch and batch_losses:
        batches_per_epoch = max(p["batch"] for p in batch_losses)
    xs, ys = [], []
    for row in _finite(epoch_metrics, "valid_loss"):
        epoch = row.get("epoch")
        if epoch is None:
            continue
        x = ends.get(epoch) or (epoch * batches_per_epoch if batches_per_epoch else None)
        if x is not None:
            xs.append(x)
            ys.append(row["valid_loss"])
    return xs, ys


def loss_figure(batch_losses, epoch_metrics=(), log_y: bool = False, batches_per_epoch=None,
                smoothing: float = 0.9, title: str = "Loss"):
    """Train loss per batch (raw and faint, plus its smoothed curve) and valid loss per epoch,
    against the number of batches seen."""
    batch_losses = _finite(list(batch_losses or []), "loss")
    epoch_metrics = list(epoch_metrics or [])
    vx, vy = _valid_xy(batch_losses, epoch_metrics, batches_per_epoch)
    if not batch_losses and not vx:
        return empty_figure(title)
    fig = go.Figure()
    if batch_losses:
        steps = [p["step"] for p in batch_losses]
        losses = [p["loss"] for p in batch_losses]
        fig.add_scatter(x=steps, y=losses, mode="lines", name="train (raw)", opacity=0.3,
                        line=dict(color=TRAIN_COLOUR, width=1), hoverinfo="skip")
        fig.add_scatter(x=steps, y=ema(losses, smoothing), mode="lines", name="train (smoothed)",
                        line=dict(color=TRAIN_COLOUR, width=2))
    if vx:
        fig.add_scatter(x=vx, y=vy, mode="lines+markers", name="valid",
                        line=dict(color=VALID_COLOUR, width=2), marker=dict(size=8))
    return _layout(fig, title, "batches", "loss", log_y=log_y)


def metric_names(epoch_metrics) -> list:
    names = []
    for row in epoch_metrics or []:
        for key, value in row.items():
            if key not in NOT_METRICS and key not in names and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                names.append(key)
    return names


def metric_figure(epoch_metrics, names=None, title: str = "Metrics"):
    """One line per metric (accuracy, error_rate, dice...) against the epoch."""
    epoch_metrics = [r for r in (epoch_metrics or []) if r.get("epoch") is not None]
    names = list(names) if names else metric_names(epoch_metrics)
    fig = go.Figure()
    for i, name in enumerate(names):
        rows = _finite(epoch_metrics, name)
        if rows:
            fig.add_scatter(x=[r["epoch"] for r in rows], y=[r[name] for r in rows], mode="lines+markers",
                            name=name, line=dict(color=PALETTE[i % len(PALETTE)], width=2))
    if not fig.data:
        return empty_figure(title)
    fig.update_xaxes(dtick=1)
    return _layout(fig, title, "epoch", "value")


def lr_figure(lrs, losses, suggestion=None, title: str = "Learning-rate finder"):
    """Loss against learning rate on a log axis, the suggested rate marked."""
    points = [(lr, loss) for lr, loss in zip(lrs or [], losses or [])
              if isinstance(lr, (int, float)) and lr > 0 and isinstance(loss, (int, float)) and math.isfinite(loss)]
    if not points:
        return empty_figure(title)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    fig = go.Figure()
    fig.add_scatter(x=xs, y=ys, mode="lines", name="loss", line=dict(color=TRAIN_COLOUR, width=2))
    if suggestion:
        # The loss at the suggestion: the recorded point nearest to it on the log scale.
        nearest = min(points, key=lambda p: abs(math.log(p[0]) - math.log(suggestion)))
        fig.add_scatter(x=[suggestion], y=[nearest[1]], mode="markers", name=f"suggestion {suggestion:.2g}",
                        marker=dict(color=VALID_COLOUR, size=12, symbol="circle"))
        fig.add_scatter(x=[suggestion, suggestion], y=[min(ys), max(ys)], mode="lines", showlegend=False,
                        hoverinfo="skip", line=dict(color=VALID_COLOUR, width=1, dash="dot"))
    return _layout(fig, title, "learning rate", "loss", log_x=True)


def overlay_figure(runs, log_y: bool = False, smoothing: float = 0.9, title: str = "Loss, runs compared"):
    """Several runs' losses on one plot, one colour per run: smoothed train loss as a line,
    valid loss as dashed markers. `runs` is a list of (label, batch_losses, epoch_metrics)."""
    fig = go.Figure()
    for i, (label, batch_losses, epoch_metrics) in enumerate(runs or []):
        colour = PALETTE[i % len(PALETTE)]
        batch_losses = _finite(list(batch_losses or []), "loss")
        if batch_losses:
            fig.add_scatter(x=[p["step"] for p in batch_losses], y=ema([p["loss"] for p in batch_losses], smoothing),
                            mode="lines", name=f"{label} train", legendgroup=label, line=dict(color=colour, width=2))
        vx, vy = _valid_xy(batch_losses, list(epoch_metrics or []))
        if vx:
            fig.add_scatter(x=vx, y=vy, mode="lines+markers", name=f"{label} valid", legendgroup=label,
                            line=dict(color=colour, width=1, dash="dash"), marker=dict(size=7))
    if not fig.data:
        return empty_figure(title, "no data yet: choose runs that have trained")
    return _layout(fig, title, "batches", "loss", log_y=log_y)


def mark_epoch(fig, epoch, batch_losses=(), batches_per_epoch=None, label: str = "suggested epoch",
               colour: str = "#2ca02c"):
    """A dashed vertical line at the step where `epoch` ended, labelled (the suggested or
    pinned epoch on a loss plot)."""
    if epoch is None:
        return fig
    ends = _epoch_ends(_finite(list(batch_losses or []), "loss"))
    x = ends.get(epoch) or (epoch * batches_per_epoch if batches_per_epoch else None)
    if x is None:
        return fig
    fig.add_vline(x=x, line=dict(color=colour, dash="dash", width=2),
                  annotation=dict(text=f"{label}: {epoch}", font=dict(color=colour)), annotation_position="top left")
    return fig
