"""Crappify: good pictures -> (crappy input, clean target) pairs for restoration and
super-resolution (fast.ai lesson 7, part 2 lesson 14).

Each image gets its own seed, derived from the dataset seed and the image's name, so the same
settings give byte-identical pairs however the work is split over processes."""
import hashlib
import io
import json
import multiprocessing
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .errors import DatasetError
from .manifest import checked_name, new_dataset, write_manifest
from .safe_io import MAX_PIXELS, UnreadableImage, open_image, save_png
from .sources import image_files, other_files, source_folder

RESAMPLE = {"nearest": Image.NEAREST, "box": Image.BOX, "bilinear": Image.BILINEAR,
            "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
WORDS = ("photo", "sample", "draft", "copy", "proof", "studio", "image", "preview", "hello", "demo")


@dataclass
class CrappifyParams:
    scale: int = 4              # downscale by this factor, then back up (1 = no downscale)
    resample: str = "bilinear"  # filter for both resizes
    jpeg: bool = True
    jpeg_min: int = 10          # JPEG quality drawn at random in [jpeg_min, jpeg_max]
    jpeg_max: int = 70
    text: bool = True
    text_kind: str = "number"   # "number" (0-99) or "word"
    text_size: float = 0.3      # largest text height, as a fraction of the image height
    text_opacity: float = 1.0
    noise: float = 0.0          # Gaussian noise, standard deviation in grey levels (0-255)
    blur: float = 0.0           # Gaussian blur radius in pixels of the small image
    grayscale: bool = False     # for colourisation
    super_res: bool = False     # keep the input at 1/scale size instead of scaling it back
    max_side: int = 0           # shrink clean images so the longest side is at most this (0 = keep)

    @classmethod
    def from_dict(cls, values: dict) -> "CrappifyParams":
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise DatasetError(f"Unknown crappify setting(s): {', '.join(unknown)}.")
        p = cls()
        for k, v in values.items():
            default = getattr(p, k)
            try:
                setattr(p, k, type(default)(v) if not isinstance(default, bool) else bool(v))
            except (TypeError, ValueError):
                raise DatasetError(f"The crappify setting '{k}' must be a {type(default).__name__} (got {v!r}).")
        return p.checked()

    def checked(self) -> "CrappifyParams":
        if not 1 <= self.scale <= 16:
            raise DatasetError(f"The downscale factor must be between 1 and 16 (got {self.scale}).")
        if self.resample not in RESAMPLE:
            raise DatasetError(f"Unknown resample filter '{self.resample}': choose one of {', '.join(RESAMPLE)}.")
        if not 1 <= self.jpeg_min <= self.jpeg_max <= 100:
            raise DatasetError(f"The JPEG quality range must satisfy 1 <= low <= high <= 100 (got {self.jpeg_min}-{self.jpeg_max}).")
        if self.text_kind not in ("number", "word"):
            raise DatasetError("The text kind must be 'number' or 'word'.")
        if not 0 < self.text_size <= 1 or not 0 <= self.text_opacity <= 1:
            raise DatasetError("Text size must be in (0, 1] of the image height and opacity in [0, 1].")
        if self.noise < 0 or self.blur < 0 or self.max_side < 0:
            raise DatasetError("Noise, blur and the size limit cannot be negative.")
        if self.super_res and self.scale < 2:
            raise DatasetError("Super-resolution needs a downscale factor of at least 2.")
        return self


def image_seed(dataset_seed: int, stem: str) -> int:
    digest = hashlib.sha256(f"{int(dataset_seed)}/{stem}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def prepare_clean(image: Image.Image, p: CrappifyParams) -> Image.Image:
    """The target: limited in size, and cropped to a multiple of the scale for super-resolution
    so that the input is exactly 1/scale of it."""
    image = image.convert("RGB")
    if p.max_side and max(image.size) > p.max_side:
        image = image.copy()
        image.thumbnail((p.max_side, p.max_side), Image.LANCZOS)
    if p.super_res:
        w, h = image.width - image.width % p.scale, image.height - image.height % p.scale
        if w == 0 or h == 0:
            raise UnreadableImage(f"the image is smaller than the downscale factor {p.scale}")
        image = image.crop((0, 0, w, h))
    return image


def _draw_text(im: Image.Image, p: CrappifyParams, rng) -> Image.Image:
    label = str(int(rng.integers(0, 100))) if p.text_kind == "number" else WORDS[int(rng.integers(len(WORDS)))]
    size = max(6, int(im.height * p.text_size * rng.uniform(0.5, 1.0)))
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(label)
    x = int(rng.integers(0, max(1, im.width - (right - left)))) - left
    y = int(rng.integers(0, max(1, im.height - (bottom - top)))) - top
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    overlay = Image.new("RGBA", im.size, (0, 0, 0, 0))
    ImageDraw.Draw(overlay).text((x, y), label, font=font, fill=colour + (round(255 * p.text_opacity),))
    return Image.alpha_composite(im.convert("RGBA"), overlay).convert("RGB")


def crappify_image(clean: Image.Image, p: CrappifyParams, seed: int) -> Image.Image:
    """One crappy input from a prepared clean image; the same seed gives the same bytes."""
    rng = np.random.default_rng(seed)
    w, h = clean.size
    resample = RESAMPLE[p.resample]
    im = clean.resize((max(1, w // p.scale), max(1, h // p.scale)), resample) if p.scale > 1 else clean.copy()
    if p.text:
        im = _draw_text(im, p, rng)
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


def preview(image, params, seed: int = 0, max_side: int = 384):
    """(before, after) for the live preview; a super-resolution input is shown enlarged with
    nearest-neighbour so its pixels stay visible."""
    if image is None:
        raise DatasetError("Choose a picture to preview.")
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    elif isinstance(image, (str, Path)):
        image = open_image(image)
    p = params if isinstance(params, CrappifyParams) else CrappifyParams.from_dict(params)
    before = image.convert("RGB")
    if max(before.size) > max_side:
        before = before.copy()
        before.thumbnail((max_side, max_side), Image.LANCZOS)
    before = prepare_clean(before, p)
    after = crappify_image(before, p, seed)
    if after.size != before.size:
        after = after.resize(before.size, Image.NEAREST)
    return before, after


def _work(job):
    """One pair, in a worker process: -> (stem, error or None)."""
    src, stem, seed, params, out, max_pixels = job
    p = CrappifyParams(**params)
    try:
        clean = prepare_clean(open_image(src, max_pixels), p)
    except UnreadableImage as e:
        return stem, str(e)
    crappy = crappify_image(clean, p, seed)
    save_png(clean, Path(out) / "clean" / f"{stem}.png")
    save_png(crappy, Path(out) / "crappy" / f"{stem}.png")
    return stem, None


def _unique_stems(files) -> list:
    used, stems = set(), []
    for f in files:
        base = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", f.stem).strip(" .")[:100] or "image"
        stem, k = base, 1
        while stem in used:
            k += 1
            stem = f"{base}-{k}"
        used.add(stem)
        stems.append(stem)
    return stems


def run_jobs(jobs, processes, progress=None) -> list:
    """Results of _work over jobs, across `processes` worker processes (1: in this process)."""
    total, results = len(jobs), []
    if progress:
        progress(0, total)
    if processes <= 1 or total <= 1:
        for job in jobs:
            results.append(_work(job))
            if progress:
                progress(len(results), total)
        return results
    # spawn, not fork: the studio runs threads (Gradio, torch) that a fork would copy mid-flight.
    with multiprocessing.get_context("spawn").Pool(min(processes, total)) as pool:
        for r in pool.imap_unordered(_work, jobs, chunksize=1):
            results.append(r)
            if progress:
                progress(len(results), total)
    return results


def crappify_dataset(workspace, name, source, params=None, seed: int = 0, progress=None, processes=None,
                     max_pixels=MAX_PIXELS) -> dict:
    """Build datasets/NAME (kind restore): clean/*.png and crappy/*.png with the same stems,
    crappify.json with the parameters and each image's seed. `progress(done, total)`."""
    p = params if isinstance(params, CrappifyParams) else CrappifyParams.from_dict(params or {})
    p.checked()
    name = checked_name(workspace, name)
    seed = int(seed)
    processes = processes or os.cpu_count() or 1
    with source_folder(workspace, source) as root, new_dataset(workspace, name) as out:
        skipped = [{"file": str(f.relative_to(root)), "reason": "not an image file"}
                   for f in other_files(root) if f.name != "dataset.json"]
        files = image_files(root)
        if not files:
            raise DatasetError("No pictures were found in the source: give a folder or zip of images.")
        (out / "clean").mkdir()
        (out / "crappy").mkdir()
        stems = _unique_stems(files)
        seeds = {s: image_seed(seed, s) for s in stems}
        jobs = [(str(f), s, seeds[s], asdict(p), str(out), max_pixels) for f, s in zip(files, stems)]
        results = dict(run_jobs(jobs, processes, progress))
        sources = {s: str(f.relative_to(root)) for f, s in zip(files, stems)}
        skipped += [{"file": sources[s], "reason": results[s]} for s in stems if results[s]]
        made = [s for s in stems if not results[s]]
        if not made:
            raise DatasetError("None of the pictures could be read, so no pairs were made: " + skipped[0]["reason"])
        record = {"params": asdict(p), "seed": seed,
                  "images": {s: {"source": sources[s], "seed": seeds[s]} for s in made}}
        (out / "crappify.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        write_manifest(out, {"kind": "restore", "scale": p.scale if p.super_res else 1,
                             "counts": {"pairs": len(made)}, "source": Path(str(source)).name,
                             "builder": {"name": "crappify", "seed": seed, **asdict(p)}})
    return {"name": name, "kind": "restore", "path": str(workspace.datasets_dir / name), "pairs": len(made),
            "counts": {"pairs": len(made)}, "scale": p.scale if p.super_res else 1, "skipped": skipped, "notes": []}
