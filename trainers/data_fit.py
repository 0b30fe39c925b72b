"""Settings that fit a dataset: image size from the pictures' own resolution, batch from its size.

A form asks before Start (`settings_for_data`); each task says which of these apply to it
(`Task.sized_from_data`). The pictures are never upsampled by default: a 32 px digit at 128 px
costs 16 times the pixels and adds no detail (issue 14: 7:45 for two epochs instead of seconds).
"""
import statistics

from PIL import Image

MAX_SIDE = 224     # ImageNet's size: beyond it a default run on a CPU is slow for little gain
SAMPLE = 64        # pictures whose headers are read to find the dataset's resolution


def native_side(paths, sample: int = SAMPLE) -> int | None:
    """The median shorter side of up to `sample` pictures (headers only, nothing decoded)."""
    paths = list(paths)
    step = max(1, len(paths) // sample)
    sides = []
    for p in paths[::step][:sample]:
        try:
            with Image.open(p) as im:
                sides.append(min(im.size))
        except Exception:
            continue  # an unreadable file is the dataset check's to report
    return int(statistics.median(sides)) if sides else None


def fitted_size(native: int | None, fallback: int, multiple: int = 1, smallest: int = 16) -> int:
    """The largest size up to MAX_SIDE that does not upsample, as a multiple of `multiple`."""
    if not native:
        return fallback
    size = min(native, MAX_SIDE)
    size -= size % multiple
    return max(size, smallest)


def fitted_batch(n_train: int, preferred: int) -> int:
    """The task's batch, smaller for a small dataset: at least eight steps an epoch."""
    batch = preferred
    while batch > 4 and batch * 8 > n_train:
        batch //= 2
    return max(1, min(batch, n_train))
