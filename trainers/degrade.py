"""Crappify's recipe: the damage that turns a good picture into a restoration input (fast.ai
lesson 7): downscale, text overlay, blur, noise, grayscale, JPEG, upscale back.

The one copy of the image-degradation core. The studio's crappify builder
(studio/datasets/crappify.py) makes a dataset's fixed pairs with it and records the recipe in
crappify.json; a restore run re-applies the same recipe to the clean pictures on the fly
(paired_data.CrappifyPairs), with fresh seeded randomness for every crop.
"""

import io
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

RESAMPLE = {
    "nearest": Image.NEAREST,
    "box": Image.BOX,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}
WORDS = ("photo", "sample", "draft", "copy", "proof", "studio", "image", "preview", "hello", "demo")


class RecipeError(ValueError):
    """A crappify setting that cannot work; the message is a sentence for the person."""


@dataclass
class CrappifyParams:
    scale: int = 4  # downscale by this factor, then back up (1 = no downscale)
    resample: str = "bilinear"  # filter for both resizes
    jpeg: bool = True
    jpeg_min: int = 10  # JPEG quality drawn at random in [jpeg_min, jpeg_max]
    jpeg_max: int = 70
    text: bool = True
    text_kind: str = "number"  # "number" (0-99) or "word"
    text_size: float = 0.3  # largest text height, as a fraction of the image height
    text_opacity: float = 1.0
    noise: float = 0.0  # Gaussian noise, standard deviation in grey levels (0-255)
    blur: float = 0.0  # Gaussian blur radius in pixels of the small image
    grayscale: bool = False  # for colourisation
    super_res: bool = False  # keep the input at 1/scale size instead of scaling it back
    max_side: int = 0  # shrink clean images so the longest side is at most this (0 = keep)

    @classmethod
    def from_dict(cls, values: dict) -> "CrappifyParams":
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise RecipeError(f"Unknown crappify setting(s): {', '.join(unknown)}.")
        p = cls()
        for k, v in values.items():
            default = getattr(p, k)
            try:
                setattr(p, k, type(default)(v) if not isinstance(default, bool) else bool(v))
            except (TypeError, ValueError):
                raise RecipeError(f"The crappify setting '{k}' must be a {type(default).__name__} (got {v!r}).")
        return p.checked()

    def checked(self) -> "CrappifyParams":
        if not 1 <= self.scale <= 16:
            raise RecipeError(f"The downscale factor must be between 1 and 16 (got {self.scale}).")
        if self.resample not in RESAMPLE:
            raise RecipeError(f"Unknown resample filter '{self.resample}': choose one of {', '.join(RESAMPLE)}.")
        if not 1 <= self.jpeg_min <= self.jpeg_max <= 100:
            raise RecipeError(
                f"The JPEG quality range must satisfy 1 <= low <= high <= 100 (got {self.jpeg_min}-{self.jpeg_max})."
            )
        if self.text_kind not in ("number", "word"):
            raise RecipeError("The text kind must be 'number' or 'word'.")
        if not 0 < self.text_size <= 1 or not 0 <= self.text_opacity <= 1:
            raise RecipeError("Text size must be in (0, 1] of the image height and opacity in [0, 1].")
        if self.noise < 0 or self.blur < 0 or self.max_side < 0:
            raise RecipeError("Noise, blur and the size limit cannot be negative.")
        if self.super_res and self.scale < 2:
            raise RecipeError("Super-resolution needs a downscale factor of at least 2.")
        return self


def draw_text(im: Image.Image, p: CrappifyParams, rng, height: int | None = None) -> Image.Image:
    """A number or word at a random place. `height` is the picture's height the text size is a
    fraction of: a crop of a larger picture passes the whole picture's (small) height, so the
    text keeps its pixel size."""
    label = str(int(rng.integers(0, 100))) if p.text_kind == "number" else WORDS[int(rng.integers(len(WORDS)))]
    size = max(6, int((height or im.height) * p.text_size * rng.uniform(0.5, 1.0)))
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(label)
    x = int(rng.integers(0, max(1, im.width - (right - left)))) - left
    y = int(rng.integers(0, max(1, im.height - (bottom - top)))) - top
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    overlay = Image.new("RGBA", im.size, (0, 0, 0, 0))
    ImageDraw.Draw(overlay).text((x, y), label, font=font, fill=colour + (round(255 * p.text_opacity),))
    return Image.alpha_composite(im.convert("RGBA"), overlay).convert("RGB")


def crappify_image(clean: Image.Image, p: CrappifyParams, seed: int, text_height: int | None = None) -> Image.Image:
    """One crappy input from a prepared clean image; the same seed gives the same bytes.
    text_height: the height (in clean pixels) the text size refers to, when `clean` is a crop."""
    rng = np.random.default_rng(seed)
    w, h = clean.size
    resample = RESAMPLE[p.resample]
    im = clean.resize((max(1, w // p.scale), max(1, h // p.scale)), resample) if p.scale > 1 else clean.copy()
    if p.text:
        im = draw_text(im, p, rng, text_height // p.scale if text_height else None)
    if p.blur > 0:
        im = im.filter(ImageFilter.GaussianBlur(p.blur))
    if p.noise > 0:
        a = np.asarray(im, np.float32) + rng.normal(0, p.noise, (im.height, im.width, 3)).astype(np.float32)
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    if p.grayscale:
        im = im.convert("L").convert("RGB")
    if p.jpeg:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(rng.integers(p.jpeg_min, p.jpeg_max + 1)))
        buf.seek(0)
        with Image.open(buf) as j:
            im = j.convert("RGB")
    if p.scale > 1 and not p.super_res:
        im = im.resize((w, h), resample)
    return im
