"""Labelled image folders (torchvision's ImageFolder layout) and their statistics.

Layouts accepted:
  DATA/train/CLASS/*.png and DATA/valid/CLASS/*.png  -> split by folder
  DATA/train/CLASS/*.png only, or DATA/CLASS/*.png    -> seeded random split, per class
"""
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from .constants import IMAGE_EXTS
from .errors import ConfigError


def list_images(folder: Path) -> list:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _class_folders(root: Path) -> dict:
    return {d.name: list_images(d) for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")}


def read_manifest(data_dir) -> dict:
    """dataset.json if the folder has one (the studio's builders write it), else {}."""
    path = Path(data_dir) / "dataset.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ConfigError(f"{path} is not valid JSON; rebuild the dataset or fix the file.")
    return {}


def scan_labelled_folder(data_dir, valid_pct: float = 0.2, seed: int = 42):
    """-> (classes, train_items, valid_items); items are (path, class_index)."""
    root = Path(data_dir)
    train_root = root / "train" if (root / "train").is_dir() else root
    train = _class_folders(train_root)
    train.pop("valid", None)
    if not train:
        raise ConfigError(f"No class folders found in {train_root}: put each class's images in a folder named after the class.")
    empty = [c for c, files in train.items() if not files]
    if empty:
        raise ConfigError(f"These classes have no images: {', '.join(empty)} (in {train_root}).")
    if len(train) < 2:
        raise ConfigError(f"Only one class ({next(iter(train))}) found; a classifier needs at least two.")
    classes = sorted(train)
    index = {c: i for i, c in enumerate(classes)}

    valid_root = root / "valid"
    if valid_root.is_dir():
        valid = _class_folders(valid_root)
        extra = sorted(set(valid) - set(classes))
        if extra:
            raise ConfigError(f"valid/ has classes that train/ lacks: {', '.join(extra)}.")
        train_items = [(p, index[c]) for c in classes for p in train[c]]
        valid_items = [(p, index[c]) for c in sorted(valid) for p in valid[c]]
    else:
        # Split each class on its own so small classes still appear in validation.
        rng = random.Random(seed)
        train_items, valid_items = [], []
        for c in classes:
            files = list(train[c])
            rng.shuffle(files)
            n_valid = max(1, round(len(files) * valid_pct)) if len(files) > 1 else 0
            valid_items += [(p, index[c]) for p in files[:n_valid]]
            train_items += [(p, index[c]) for p in files[n_valid:]]
    if not valid_items:
        raise ConfigError("The validation set is empty: add images to valid/ or to the classes.")
    return classes, train_items, valid_items


def open_rgb(path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as e:
        raise ConfigError(f"Cannot read image {path}: {type(e).__name__}: {e}")


class LabelledImages(Dataset):
    """(image tensor, class index) pairs. Decoded images are kept in memory when the set is
    small, because decoding dominates an epoch on tiny images."""

    CACHE_LIMIT = 20_000

    def __init__(self, items, transform):
        self.items = list(items)
        self.transform = transform
        self._cache = {} if len(self.items) <= self.CACHE_LIMIT else None

    def __len__(self):
        return len(self.items)

    def image(self, i) -> Image.Image:
        if self._cache is None:
            return open_rgb(self.items[i][0])
        if i not in self._cache:
            self._cache[i] = open_rgb(self.items[i][0])
        return self._cache[i]

    def __getitem__(self, i):
        return self.transform(self.image(i)), self.items[i][1]


def image_stats(paths, size: int, n: int = 256, seed: int = 0):
    """Per-channel mean and std over up to `n` images resized to `size`."""
    paths = list(paths)
    rng = random.Random(seed)
    if len(paths) > n:
        paths = rng.sample(paths, n)
    pixels = []
    for p in paths:
        im = open_rgb(p).resize((size, size), Image.BILINEAR)
        pixels.append(np.asarray(im, dtype=np.float32).reshape(-1, 3) / 255.0)
    allpix = np.concatenate(pixels)
    std = np.maximum(allpix.std(0), 1e-3)  # a constant channel must not divide by zero
    return tuple(float(v) for v in allpix.mean(0)), tuple(float(v) for v in std)
