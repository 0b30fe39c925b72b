"""The studio's plotly figures, built from the shapes of data the store returns."""
import math

import pytest

from studio import plots


def losses(epochs=2, batches=5, start=2.0):
    rows, step = [], 0
    for epoch in range(1, epochs + 1):
        for batch in range(1, batches + 1):
            step += 1
            rows.append({"epoch": epoch, "batch": batch, "step": step, "loss": start / step, "lr": 1e-3})
    return rows


def epoch_rows(epochs=2):
    return [{"epoch": e, "train_loss": 1.0 / e, "valid_loss": 1.2 / e, "accuracy": 0.5 + 0.2 * e,
             "error_rate": 0.5 - 0.2 * e, "seconds": 3.0} for e in range(1, epochs + 1)]


def by_name(fig):
    return {trace.name: trace for trace in fig.data}


def says_no_data(fig):
    return any("no data yet" in a.text for a in fig.layout.annotations) and not fig.data


def test_loss_figure_has_a_faint_raw_trace_a_smoothed_one_and_valid_at_epoch_ends():
    fig = plots.loss_figure(losses(), epoch_rows())
    traces = by_name(fig)
    assert set(traces) == {"train (raw)", "train (smoothed)", "valid"}
    raw, smooth, valid = traces["train (raw)"], traces["train (smoothed)"], traces["valid"]
    assert raw.opacity < 0.5 and len(raw.x) == len(smooth.x) == 10
    assert list(raw.y) == [2.0 / s for s in range(1, 11)]
    assert list(smooth.y) != list(raw.y) and smooth.y[0] == pytest.approx(raw.y[0])  # debiased EMA
    assert list(valid.x) == [5, 10] and list(valid.y) == [1.2, 0.6]
    assert fig.layout.yaxis.type != "log"


def test_loss_figure_log_scale_and_non_finite_losses_dropped():
    rows = losses()
    rows[3]["loss"] = float("nan")
    fig = plots.loss_figure(rows, epoch_rows(), log_y=True)
    assert fig.layout.yaxis.type == "log"
    assert len(by_name(fig)["train (raw)"].x) == 9


def test_valid_points_use_batches_per_epoch_when_no_batch_losses_remain():
    fig = plots.loss_figure([], epoch_rows(), batches_per_epoch=4)
    assert list(by_name(fig)["valid"].x) == [4, 8]


def test_empty_figures_say_no_data_yet():
    assert says_no_data(plots.loss_figure([], []))
    assert says_no_data(plots.metric_figure([]))
    assert says_no_data(plots.lr_figure([], [], None))
    assert says_no_data(plots.overlay_figure([]))


def test_metric_figure_has_one_line_per_metric_and_no_losses():
    fig = plots.metric_figure(epoch_rows(3))
    traces = by_name(fig)
    assert set(traces) == {"accuracy", "error_rate"}
    assert list(traces["accuracy"].x) == [1, 2, 3]
    assert plots.metric_names(epoch_rows()) == ["accuracy", "error_rate"]


def test_lr_figure_is_on_a_log_axis_with_the_suggestion_marked():
    lrs = [10 ** (-7 + i * 0.1) for i in range(60)]
    curve = [3 - math.exp(-((math.log10(lr) + 3) ** 2)) for lr in lrs]
    fig = plots.lr_figure(lrs, curve, suggestion=1e-4)
    assert fig.layout.xaxis.type == "log"
    marker = [t for t in fig.data if t.name and t.name.startswith("suggestion")]
    assert len(marker) == 1 and list(marker[0].x) == [1e-4]
    nearest = min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i]) - math.log(1e-4)))
    assert marker[0].y[0] == pytest.approx(curve[nearest])
    assert marker[0].name == "suggestion 0.0001"


def test_overlay_gives_each_run_its_own_colour():
    runs = [("run a", losses(), epoch_rows()), ("run b", losses(start=3.0), epoch_rows()),
            ("empty", [], [])]
    fig = plots.overlay_figure(runs, log_y=True)
    traces = by_name(fig)
    assert set(traces) == {"run a train", "run a valid", "run b train", "run b valid"}
    assert traces["run a train"].line.color == traces["run a valid"].line.color
    assert traces["run a train"].line.color != traces["run b train"].line.color
    assert fig.layout.yaxis.type == "log"


def test_ema_debiased_constant_stays_constant():
    assert plots.ema([2.0] * 5) == pytest.approx([2.0] * 5)
