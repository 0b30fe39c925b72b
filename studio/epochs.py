"""What a run learned epoch by epoch, for the Runs tab: the suggested epoch, the per-picture score
table, two (run, epoch) outputs of one held-out picture with their difference map, and the
epoch of each run at one optimiser step. Files come from trainers/heldout.py,
trainers/epoch_weights.py and trainers/internals.py; nothing here trains or loads a model."""

from pathlib import Path

import numpy as np
from PIL import Image

from trainers.epoch_weights import kept_epochs, pinned_epoch
from trainers.tasks import TASKS
from trainers.tasks.base import Task
from trainers.heldout import mean_scores, output_path, picture_table, read_scores

DIFF_GAIN = 4.0  # differences of a few levels become visible; 64 levels or more show white


class EpochsError(ValueError):
    """A comparison that cannot be made; the message says why."""


def suggestion(run_dir, task: str | None = None) -> dict:
    """{epoch, rule, scores (epoch -> mean), pinned, kept}: the epoch the run's task suggests from
    its held-out scores (Task.suggest_epoch: the argmax; a GAN's stopping rule)."""
    record = read_scores(run_dir)
    epoch, rule = TASKS.get(task, Task()).suggest_epoch(record)  # a task no longer registered: the argmax
    return {
        "epoch": epoch,
        "rule": rule,
        "scores": mean_scores(record),
        "pinned": pinned_epoch(run_dir),
        "kept": kept_epochs(run_dir),
    }


def suggestion_text(info: dict) -> str:
    if info["epoch"] is None:
        return "No held-out scores yet: this run's task makes no pictures to score, or no epoch has ended."
    mean = info["scores"].get(info["epoch"])
    text = f"Suggested epoch: **{info['epoch']}** ({info['rule']}" + (f": {mean:.2f} dB)" if mean is not None else ")")
    if info["pinned"] is not None:
        text += f" · pinned for Try, Export and Share: **epoch {info['pinned']}**"
    else:
        text += " · Try, Export and Share use the best checkpoint (no epoch pinned)"
    if info["kept"]:
        text += f" · weights kept for epochs {_ranges(info['kept'])}"
    return text


def _ranges(epochs) -> str:
    parts, start = [], None
    for i, e in enumerate(epochs):
        if start is None:
            start = e
        if i + 1 == len(epochs) or epochs[i + 1] != e + 1:
            parts.append(str(start) if start == e else f"{start}-{e}")
            start = None
    return ", ".join(parts)


def score_table(run_dir) -> tuple:
    """(headers, rows) of the held-out pictures' scores by epoch, each marked + / - / =."""
    return picture_table(read_scores(run_dir))


def picture_names(run_dir) -> list:
    return list(read_scores(run_dir).get("pictures", []))


def held_out_output(run_dir, epoch: int, picture: str) -> Image.Image:
    """The run's output for a held-out picture (by name) at an epoch, as saved (PNG, lossless)."""
    names = picture_names(run_dir)
    if picture not in names:
        raise EpochsError(
            f"This run has no held-out picture named {picture!r}; its pictures: {', '.join(names) or 'none'}."
        )
    path = output_path(run_dir, epoch, names.index(picture))
    if not path.is_file():
        raise EpochsError(f"There is no output of epoch {epoch} for {picture!r} (the run has not reached it).")
    with Image.open(path) as im:
        return im.convert("RGB")


def difference_map(a: Image.Image, b: Image.Image, gain: float = DIFF_GAIN) -> Image.Image:
    """|a - b| per pixel, the largest channel, amplified `gain` times: black where equal."""
    if a.size != b.size:
        raise EpochsError(
            f"The two pictures differ in size ({a.size[0]}x{a.size[1]} and {b.size[0]}x{b.size[1]}): "
            "compare runs made at the same size."
        )
    diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max(axis=2)
    return Image.fromarray(np.clip(diff * gain, 0, 255).astype(np.uint8), "L").convert("RGB")


def wipe(run_a, epoch_a: int, run_b, epoch_b: int, picture: str) -> tuple:
    """(picture A, picture B, difference map, note): two (run, epoch) outputs of one held-out picture."""
    a = held_out_output(run_a, epoch_a, picture)
    b = held_out_output(run_b, epoch_b, picture)
    diff = difference_map(a, b)
    changed = np.asarray(diff)[..., 0] > 0
    note = (
        "identical: the difference map is black"
        if not changed.any()
        else f"{changed.mean():.1%} of the pixels differ (map amplified {DIFF_GAIN:g}x)"
    )
    return a, b, diff, note


def internals_image(run_dir, epoch: int) -> str | None:
    """The heatmaps of the fixed validation pictures at an epoch (classify, segment), if saved."""
    path = Path(run_dir) / "internals" / f"epoch_{int(epoch):03d}.png"
    return str(path) if path.is_file() else None
