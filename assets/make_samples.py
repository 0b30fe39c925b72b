"""Generate the bundled sample datasets in assets/ (run once by a developer; the output is
committed, so neither scikit-learn nor scikit-image is needed at run time).

    .venv/bin/pip install scikit-image      # scikit-learn is already in the dev venv
    .venv/bin/python assets/make_samples.py

digits/  sklearn's 1,797 8x8 handwritten digits, upscaled to 32x32 (bilinear), seeded 80/20 split
photos/  twelve public-domain / CC0 / CC-BY photos, longest side <= 384 px, JPEG quality 85
shapes/  120 procedurally drawn 64x64 scenes (red circles, green squares, blue triangles) with index masks
"""
import colorsys
import json
import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
DIGITS_SEED, SHAPES_SEED = 0, 0
PHOTO_SIDE, PHOTO_QUALITY = 384, 85
# (file name, loader) for the photos; licences are listed in assets/README.md.
SKIMAGE_PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina",
                  "camera", "coins", "brick", "grass"]
SKLEARN_PHOTOS = ["china.jpg", "flower.jpg"]
CODES = ["background", "circle", "square", "triangle"]
PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200)]


def fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def make_digits(out: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = list(range(len(digits.images)))
    random.Random(DIGITS_SEED).shuffle(order)
    n_valid = round(len(order) * 0.2)
    classes = [str(d) for d in range(10)]
    counts = {"train": dict.fromkeys(classes, 0), "valid": dict.fromkeys(classes, 0)}
    for rank, i in enumerate(order):
        split, cls = ("valid" if rank < n_valid else "train"), str(digits.target[i])
        folder = out / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] / 16.0 * 255).astype(np.uint8)
        Image.fromarray(pixels, "L").resize((32, 32), Image.BILINEAR).save(folder / f"{i:04d}.png", optimize=True)
        counts[split][cls] += 1
    # flip: false because a mirrored 2 is not a 2.
    write_json(out / "dataset.json", {"kind": "classify", "classes": classes, "counts": counts, "flip": False,
                                      "source": "sklearn.datasets.load_digits (UCI optical digits)",
                                      "builder": {"name": "assets/make_samples.py", "split": "random",
                                                  "valid_pct": 0.2, "seed": DIGITS_SEED, "size": 32}})


def make_photos(out: Path) -> None:
    import skimage.data
    from sklearn.datasets import load_sample_image

    arrays = [(n, getattr(skimage.data, n)()) for n in SKIMAGE_PHOTOS]
    arrays += [(Path(n).stem, load_sample_image(n)) for n in SKLEARN_PHOTOS]
    for name, a in arrays:
        im = Image.fromarray(a).convert("RGB")
        im.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.LANCZOS)
        im.save(out / f"{name}.jpg", quality=PHOTO_QUALITY, optimize=True)
    write_json(out / "dataset.json", {"kind": "images", "counts": {"images": len(arrays)},
                                      "source": "scikit-image and scikit-learn sample images (see assets/README.md)"})


def _hsv(h, s, v) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v)) * 255


def _background(rng, size) -> np.ndarray:
    """A smooth linear gradient between two muted colours (clipped, never wrapped: a wrap is a
    sharp edge that looks like the side of a square or a triangle)."""
    y, x = np.mgrid[0:size, 0:size] / size
    c0, c1 = (_hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.2, 0.9)) for _ in range(2))
    a, b = rng.uniform(-1, 1, 2)
    t = x * a + y * b
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    return c0 + (c1 - c0) * t[..., None]


# Each class has its own band of vivid hues, as real classes have a typical look (sky, road,
# car): a from-scratch resnet18 U-Net then passes a held-out Dice of 0.95 in about 100 steps,
# where with shape alone (random colours) it was still near 0.4 after 100 steps.
HUES = {1: (-0.08, 0.08), 2: (0.25, 0.42), 3: (0.55, 0.72)}  # circle red, square green, triangle blue


def _shape_colour(rng, code, near, min_distance=90.0) -> tuple:
    """A colour of the class's hue band at least `min_distance` (RGB) from the background
    under the shape: a shape of its background's colour cannot be seen, nor its label learnt."""
    while True:
        colour = _hsv(rng.uniform(*HUES[code]), rng.uniform(0.6, 1.0), rng.uniform(0.45, 1.0))
        if np.linalg.norm(colour - near) >= min_distance:
            return tuple(int(v) for v in colour)


def make_shapes(out: Path, n: int = 120, size: int = 64) -> None:
    """One to three circles, squares and triangles per picture. Shapes do not overlap: a shape
    half hidden by another is a fragment whose class the picture no longer shows."""
    rng = np.random.default_rng(SHAPES_SEED)
    (out / "images").mkdir()
    (out / "labels").mkdir()
    pixels = np.zeros(len(CODES), np.int64)
    for i in range(n):
        background = _background(rng, size)
        image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
        mask = Image.new("P", (size, size), 0)
        mask.putpalette([v for rgb in PALETTE for v in rgb])
        draw_im, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
        placed = []  # (cx, cy, r) of the shapes drawn so far
        for _ in range(rng.integers(1, 4)):
            for _attempt in range(50):
                r = int(rng.integers(7, 16))
                cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
                # Bounding circles (radius r*sqrt2 covers a square) at least 2 px apart.
                if all(np.hypot(cx - x, cy - y) > 1.42 * (r + q) + 2 for x, y, q in placed):
                    break
            else:
                continue  # no room left in this picture
            placed.append((cx, cy, r))
            code = int(rng.integers(1, 4))
            colour = _shape_colour(rng, code, background[cy, cx])
            if code == 1:
                shape = ("ellipse", [cx - r, cy - r, cx + r, cy + r])
            elif code == 2:
                shape = ("rectangle", [cx - r, cy - r, cx + r, cy + r])
            else:
                shape = ("polygon", [(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)])
            # The same primitive, unantialiased, on both: the mask matches the picture exactly.
            getattr(draw_im, shape[0])(shape[1], fill=colour)
            getattr(draw_mask, shape[0])(shape[1], fill=code)
        # The same grain over shapes and background, so texture does not tell them apart.
        grain = rng.normal(0, 8, (size, size, 3))
        image = Image.fromarray(np.clip(np.asarray(image, np.float64) + grain, 0, 255).astype(np.uint8))
        image.save(out / "images" / f"shape_{i:03d}.png", optimize=True)
        mask.save(out / "labels" / f"shape_{i:03d}.png", optimize=True)
        pixels += np.bincount(np.asarray(mask).ravel(), minlength=len(CODES))
    (out / "codes.txt").write_text("\n".join(CODES) + "\n", encoding="utf-8")
    write_json(out / "dataset.json", {"kind": "segment", "codes": CODES, "void": None,
                                      "counts": {"images": n, "pixels": dict(zip(CODES, pixels.tolist()))},
                                      "source": "procedurally drawn by assets/make_samples.py",
                                      "builder": {"name": "assets/make_samples.py", "seed": SHAPES_SEED, "size": size}})


if __name__ == "__main__":
    make_digits(fresh(HERE / "digits"))
    make_photos(fresh(HERE / "photos"))
    make_shapes(fresh(HERE / "shapes"))
    for d in ("digits", "photos", "shapes"):
        files = [p for p in (HERE / d).rglob("*") if p.is_file()]
        print(f"{d}: {len(files)} files, {sum(p.stat().st_size for p in files) / 1024:.0f} KiB")
