"""A dataset at a glance, for the first page: its kind, how many pictures, its size on disk and
a small mosaic of its pictures. Mosaics are kept in memory per folder and remade when the
manifest changes (a rebuilt dataset gets a new one)."""
from pathlib import Path

from PIL import Image, ImageOps

from ..run_disk import folder_bytes
from .errors import DatasetError
from .manifest import MANIFEST, dataset_names, read_manifest
from .sources import image_files

THUMB = 128          # the mosaic's side in pixels
_mosaics: dict = {}  # folder -> (manifest mtime, mosaic)


def picture_count(manifest: dict) -> int:
    """Pictures in a dataset by its manifest's counts (per split and class, or a plain total);
    segmentation's per-class pixel counts are not pictures."""
    total = 0
    for key, value in (manifest.get("counts") or {}).items():
        if key == "pixels":
            continue
        if isinstance(value, dict):
            total += sum(v for v in value.values() if isinstance(v, (int, float)))
        elif isinstance(value, (int, float)):
            total += value
    return int(total)


def mosaic(folder: Path, side: int = THUMB) -> Image.Image:
    """Four of the dataset's pictures, evenly spread over its files (so a classifier's mosaic
    shows several classes), in a 2 x 2 square; a grey square when it has none."""
    folder = Path(folder)
    stamp = (folder / MANIFEST).stat().st_mtime
    cached = _mosaics.get(folder)
    if cached and cached[0] == stamp:
        return cached[1]
    files = [p for p in image_files(folder) if "crappy" not in p.relative_to(folder).parts
             and "labels" not in p.relative_to(folder).parts]  # the pictures a person recognises
    canvas = Image.new("RGB", (side, side), (60, 60, 60))
    if files:
        picks = [files[i * len(files) // 4] for i in range(min(4, len(files)))]
        cell = side // 2 if len(picks) > 1 else side
        for i, path in enumerate(picks):
            try:
                with Image.open(path) as im:
                    tile = ImageOps.fit(im.convert("RGB"), (cell, cell), Image.BILINEAR)
            except OSError:
                continue
            canvas.paste(tile, ((i % 2) * cell, (i // 2) * cell))
    _mosaics[folder] = (stamp, canvas)
    return canvas


def dataset_cards(workspace) -> list:
    """[{name, kind, pictures, bytes, mosaic}] for each readable dataset of the workspace, by name."""
    cards = []
    for name in dataset_names(workspace):
        folder = workspace.dataset_dir(name)
        try:
            manifest = read_manifest(folder)
        except (DatasetError, ValueError):
            continue
        cards.append({"name": name, "kind": manifest.get("kind", "?"), "pictures": picture_count(manifest),
                      "bytes": folder_bytes(folder), "mosaic": mosaic(folder)})
    return cards
