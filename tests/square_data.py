"""Pictures of dark noise with one bright square, for heatmap tests and bench/heatmap_localisation.py."""
import numpy as np
from PIL import Image

# 96 px: layer4, the default layer, is a 3x3 grid there (at 48 px it was 2x2, one cell per
# quadrant, too coarse to point at anything).
SIZE, SQUARE = 96, 36
# "none" (no square) matters: with only left and right, "the right half is empty" is as good
# evidence for "left" as the square itself, and a trained model used it; its heatmaps then
# peaked on the empty half. Against "none", only the square tells "left" apart.
CLASSES = ("left", "right", "none")


def square_image(rng, where: str) -> tuple:
    """Dark noise with one bright square in the half named by `where` ("left" or "right"),
    or none at all ("none"); returns the picture and the square's (top, left) or None."""
    pixels = rng.normal(50, 20, (SIZE, SIZE, 3))
    box = None
    if where != "none":
        top = int(rng.integers(0, SIZE - SQUARE + 1))
        col = int(rng.integers(0, SIZE // 2 - SQUARE + 1)) + (0 if where == "left" else SIZE // 2)
        pixels[top:top + SQUARE, col:col + SQUARE] = rng.normal(230, 15, (SQUARE, SQUARE, 3))
        box = (top, col)
    return Image.fromarray(np.clip(pixels, 0, 255).astype("uint8")), box


def write_square_classes(root, per_class=32, valid_per_class=12, seed=0, classes=CLASSES) -> dict:
    """train/ and valid/ of `classes`; returns {valid file name: (top, left)} of the squares."""
    rng = np.random.default_rng(seed)
    where = {}
    for split, n in (("train", per_class), ("valid", valid_per_class)):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image, box = square_image(rng, name)
                image.save(folder / f"{i:03d}.png")
                if split == "valid" and box is not None:
                    where[f"{name}/{i:03d}.png"] = box
    return where


def hit_fraction(where, names, heat, peak) -> float:
    """The share of pictures whose heatmap peaks inside their square."""
    hits = 0
    for name, h in zip(names, heat):
        (top, left), (row, col) = where[name], peak(h)
        hits += int(top <= row < top + SQUARE and left <= col < left + SQUARE)
    return hits / len(names)
