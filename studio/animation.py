"""A run's per-epoch sample grids as one animated GIF, to download and watch a generator learn.

Built with PIL alone (GIF is all it needs). The file is kept in the run folder and named after
the epochs it holds, so a new epoch's grid makes a new file and an unchanged run reuses its own.
"""
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from trainers.atomic import replace_atomically

MAX_SIDE = 768      # frames are scaled down to this; a GIF of full-size grids gets heavy fast
FRAME_MS = 700
LAST_FRAME_MS = 2000  # linger on the last epoch before the loop starts again
CAPTION_H = 20


class AnimationError(ValueError):
    """Nothing to animate; the message says why."""


def _frame(path, epoch: int, scale: float, size: tuple) -> Image.Image:
    with Image.open(path) as grid:
        grid = grid.convert("RGB")
        if scale < 1:
            grid = grid.resize((max(1, round(grid.width * scale)), max(1, round(grid.height * scale))),
                               Image.LANCZOS)
    frame = Image.new("RGB", (size[0], size[1] + CAPTION_H), (24, 24, 24))
    frame.paste(grid, (0, CAPTION_H))
    ImageDraw.Draw(frame).text((4, 3), f"epoch {epoch}", fill=(230, 230, 230),
                               font=ImageFont.load_default(size=14))
    return frame


def epochs_gif(samples, run_dir, max_side: int = MAX_SIDE) -> Path:
    """samples: [(epoch, grid path)] in epoch order -> the GIF's path (RUN/animations/...)."""
    samples = [(int(e), Path(p)) for e, p in samples if Path(p).is_file()]
    if not samples:
        raise AnimationError("This run has no sample grids yet: they appear after each epoch.")
    folder = Path(run_dir) / "animations"
    out = folder / f"epochs_{samples[0][0]:03d}-{samples[-1][0]:03d}_{len(samples)}.gif"
    newest = max(p.stat().st_mtime_ns for _, p in samples)
    if out.is_file() and out.stat().st_mtime_ns >= newest:
        return out
    sizes = []
    for _, path in samples:
        with Image.open(path) as im:
            sizes.append(im.size)
    width, height = max(w for w, _ in sizes), max(h for _, h in sizes)
    scale = min(1.0, max_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    frames = [_frame(path, epoch, scale, size) for epoch, path in samples]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("epochs_*.gif"):
        old.unlink(missing_ok=True)
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    # a page never downloads half a file
    replace_atomically(out, lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                                       duration=durations, loop=0, disposal=1))
    return out
