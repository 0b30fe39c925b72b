"""Crappify: good pictures -> (crappy input, clean target) pairs for restoration and
super-resolution (fast.ai lesson 7, part 2 lesson 14). The damage itself is trainers/degrade.py,
so that a restore run can re-apply the recipe recorded in crappify.json to the clean pictures.

Each image gets its own seed, derived from the dataset seed and the image's name, so the same
settings give byte-identical pairs however the work is split over processes."""
import hashlib
import json
import multiprocessing
import os
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from trainers import degrade
from trainers.degrade import RESAMPLE, RecipeError, crappify_image  # noqa: F401  (the builders' names)

from .errors import DatasetError
from .manifest import checked_name, new_dataset, write_manifest
from .safe_io import MAX_PIXELS, UnreadableImage, open_image, save_png
from .sources import image_files, other_files, source_folder


class CrappifyParams(degrade.CrappifyParams):
    """trainers.degrade's recipe, whose refusals are the builders' DatasetError."""

    @classmethod
    def from_dict(cls, values: dict) -> "CrappifyParams":
        try:
            return super().from_dict(values)
        except RecipeError as e:
            raise DatasetError(str(e)) from None

    def checked(self) -> "CrappifyParams":
        try:
            return super().checked()
        except RecipeError as e:
            raise DatasetError(str(e)) from None


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
