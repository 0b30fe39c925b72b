"""The same epoch of several runs, side by side: how a person compares what generators make."""
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

MIN_RUNS, MAX_RUNS = 2, 4


class CompareError(ValueError):
    """A comparison that cannot be made; the message says why."""


def grid_at(samples, epoch: int) -> tuple:
    """(epoch shown, path, note) for one run: the grid of `epoch`, else the latest before it; a run
    that has not reached `epoch` shows its last grid and says so."""
    if not samples:
        raise CompareError("no sample grids")
    samples = sorted((int(e), p) for e, p in samples)
    last_epoch, last_path = samples[-1]
    if epoch >= last_epoch:
        note = "" if epoch == last_epoch else f" (its last; it has no epoch {epoch})"
        return last_epoch, last_path, note
    earlier = [(e, p) for e, p in samples if e <= epoch]
    if not earlier:
        first_epoch, first_path = samples[0]
        return first_epoch, first_path, f" (its first; it has no epoch {epoch})"
    shown, path = earlier[-1]
    return shown, path, "" if shown == epoch else f" (nearest before epoch {epoch})"


def side_by_side(runs, epoch: int) -> list:
    """runs: [(name, [(epoch, path)])] -> [(path, caption)] for a gallery, one per run."""
    if not MIN_RUNS <= len(runs) <= MAX_RUNS:
        raise CompareError(f"Choose {MIN_RUNS} to {MAX_RUNS} runs to compare (you chose {len(runs)}).")
    missing = [name for name, samples in runs if not samples]
    if missing:
        raise CompareError(f"{', '.join(missing)} has no sample grids yet: choose runs that have finished an epoch.")
    items = []
    for name, samples in runs:
        shown, path, note = grid_at(samples, int(epoch))
        if not Path(path).is_file():
            raise CompareError(f"The sample grid of {name} for epoch {shown} is missing from its run folder.")
        items.append((str(path), f"{name} · epoch {shown}{note}"))
    return items


def epoch_at_step(step: int, batches_per_epoch, epochs) -> int | None:
    """The last of `epochs` that had ended by optimiser step `step` (epoch e ends at step
    e x batches per epoch), or the first epoch when none had."""
    epochs = sorted(int(e) for e in epochs)
    if not epochs:
        return None
    per_epoch = max(int(batches_per_epoch or 1), 1)
    done = [e for e in epochs if e * per_epoch <= step]
    return done[-1] if done else epochs[0]


def side_by_side_at_step(runs, step: int) -> list:
    """runs: [(name, [(epoch, path)], batches per epoch)] -> [(path, caption)]: each run's grid at
    the same optimiser step, for runs whose epochs hold different numbers of batches."""
    if not MIN_RUNS <= len(runs) <= MAX_RUNS:
        raise CompareError(f"Choose {MIN_RUNS} to {MAX_RUNS} runs to compare (you chose {len(runs)}).")
    items = []
    for name, samples, batches in runs:
        if not samples:
            raise CompareError(f"{name} has no sample grids yet: choose runs that have finished an epoch.")
        epoch = epoch_at_step(int(step), batches, [e for e, _ in samples])
        shown, path, note = grid_at(samples, epoch)
        if not Path(path).is_file():
            raise CompareError(f"The sample grid of {name} for epoch {shown} is missing from its run folder.")
        items.append((str(path), f"{name} · epoch {shown} (ended at step {shown * max(int(batches or 1), 1)}){note}"))
    return items


def headed(path, caption: str) -> Image.Image:
    """The grid at `path` under a heading that names its run and epoch, a thirtieth of the grid's
    width high (at least 18 px): the gallery's own caption is a 10 px corner label, and a grid
    downloaded or shown full screen would not say which run it is."""
    with Image.open(path) as opened:
        grid = opened.convert("RGB")
    size = max(18, grid.width // 30)
    font = ImageFont.load_default(size=size)
    # a narrow grid (a small wgan square) gets its heading on several lines, not cut off
    lines = textwrap.wrap(caption, width=max(8, int(grid.width / (0.55 * size)))) or [""]
    top = len(lines) * (size + 4) + 8
    page = Image.new("RGB", (grid.width, grid.height + top), (24, 24, 24))
    ImageDraw.Draw(page).multiline_text((6, 5), "\n".join(lines), fill=(240, 240, 240), font=font, spacing=4)
    page.paste(grid, (0, top))
    return page
