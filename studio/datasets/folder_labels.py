"""Folder labels: class folders (optionally already in train/ and valid/) -> a classify dataset."""
import random
import re
from pathlib import Path

from .errors import DatasetError
from .manifest import checked_name, new_dataset, write_manifest
from .safe_io import MAX_PIXELS, UnreadableImage, file_hash, open_image, save_png
from .sources import image_files, other_files, source_folder, visible_children

SPLITS = ("random", "folder")
TRAIN_NAMES = ("train", "training")
VALID_NAMES = ("valid", "val", "validation")


def _find(root: Path, names):
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def _safe_stem(stem: str) -> str:
    """Keep the original name (non-ASCII included) but nothing a filesystem dislikes."""
    stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", stem).strip(" .")
    return stem[:100] or "image"


def import_folder(workspace, name, source, split="random", valid_pct=0.2, seed=42, min_size=16,
                  max_pixels=MAX_PIXELS) -> dict:
    """Build datasets/NAME (kind classify) from a folder or zip of class folders.
    split='random': each class split on its own with `seed`, `valid_pct` of it to valid/.
    split='folder': keep the source's own train/ and valid/ folders.
    Every picture is decoded, made upright and RGB, and saved as PNG; unreadable, non-image,
    duplicate (same bytes) and too-small files are skipped and listed in the report."""
    if split not in SPLITS:
        raise DatasetError(f"Unknown split '{split}': choose 'random' or 'folder'.")
    valid_pct = float(valid_pct)
    if split == "random" and not 0 < valid_pct < 1:
        raise DatasetError(f"The validation percentage must be between 0 and 100 (got {valid_pct * 100:g}).")
    name = checked_name(workspace, name)
    seed, min_size = int(seed), int(min_size)
    skipped, notes = [], []
    with source_folder(workspace, source) as root, new_dataset(workspace, name) as out:
        train_root, valid_root = _find(root, TRAIN_NAMES), _find(root, VALID_NAMES)
        if split == "folder" and not (train_root and valid_root):
            raise DatasetError("Split by folder needs a train/ and a valid/ folder in the source; "
                               "this one has none, so choose a random split instead.")
        groups = [("train", train_root)] + ([("valid", valid_root)] if valid_root else []) if train_root else [(None, root)]

        items, seen, used, class_folders = [], {}, {}, set()
        pool = out / ".pool"
        for origin, group_root in groups:
            for f in other_files(group_root):
                if f.parent == group_root and group_root == root and f.name == "dataset.json":
                    continue
                skipped.append({"file": str(f.relative_to(root)), "reason": "not an image file"})
            for f in image_files(group_root):
                if f.parent == group_root:
                    skipped.append({"file": str(f.relative_to(root)), "reason": "not inside a class folder"})
            for cls_dir in visible_children(group_root):
                if not cls_dir.is_dir() or (group_root == root and cls_dir in (train_root, valid_root)):
                    continue
                cls = cls_dir.name
                class_folders.add(cls)
                for f in image_files(cls_dir):
                    rel = str(f.relative_to(root))
                    digest = file_hash(f)
                    if digest in seen:
                        skipped.append({"file": rel, "reason": f"duplicate of {seen[digest]}"})
                        continue
                    seen[digest] = rel
                    try:
                        im = open_image(f, max_pixels)
                    except UnreadableImage as e:
                        skipped.append({"file": rel, "reason": str(e)})
                        continue
                    if min(im.size) < min_size:
                        skipped.append({"file": rel, "reason": f"too small ({im.width}x{im.height}, under {min_size} px)"})
                        continue
                    # File names must be unique where they will land: per class, and per
                    # origin too when the source's own split is kept.
                    shelf = pool / (origin if split == "folder" else "all") / cls
                    names = used.setdefault(shelf, set())
                    stem, k = _safe_stem(f.stem), 1
                    while f"{stem}.png" in names:
                        k += 1
                        stem = f"{_safe_stem(f.stem)}-{k}"
                    names.add(f"{stem}.png")
                    shelf.mkdir(parents=True, exist_ok=True)
                    save_png(im, shelf / f"{stem}.png")
                    items.append((cls, origin, shelf / f"{stem}.png"))

        classes = sorted({c for c, _, _ in items})
        for c in sorted(class_folders - set(classes)):
            notes.append(f"The class folder '{c}' has no usable images and was left out.")
        if not items:
            raise DatasetError("No usable images were found: put each class's pictures in a folder named after the class.")
        if len(classes) < 2:
            raise DatasetError(f"Only one class ('{classes[0]}') was found; a classifier needs at least two class folders, "
                               "one per kind of picture.")

        assignment = _assign(items, classes, split, valid_pct, seed)
        counts = {"train": {c: 0 for c in classes}, "valid": {c: 0 for c in classes}}
        for (cls, _, pooled), part in zip(items, assignment):
            (out / part / cls).mkdir(parents=True, exist_ok=True)
            pooled.rename(out / part / cls / pooled.name)
            counts[part][cls] += 1
        pool_dirs = sorted(pool.rglob("*"), reverse=True)
        for d in pool_dirs + [pool]:
            d.rmdir()
        for c in classes:
            if counts["valid"][c] == 0:
                notes.append(f"The class '{c}' has no validation images.")
        manifest = {"kind": "classify", "classes": classes, "counts": counts, "source": Path(str(source)).name,
                    "builder": {"name": "folder_labels", "split": split, "valid_pct": valid_pct, "seed": seed,
                                "min_size": min_size}}
        write_manifest(out, manifest)
    return {"name": name, "kind": "classify", "path": str(workspace.datasets_dir / name), "classes": classes,
            "counts": counts, "images": len(items), "skipped": skipped, "notes": notes}


def _assign(items, classes, split, valid_pct, seed) -> list:
    """'train' or 'valid' for each item, in the items' order."""
    if split == "folder":
        return [origin for _, origin, _ in items]
    rng = random.Random(seed)
    chosen = set()
    for c in classes:  # each class on its own, so small classes still reach validation
        idx = sorted((i for i, it in enumerate(items) if it[0] == c), key=lambda i: items[i][2].name)
        rng.shuffle(idx)
        n_valid = min(len(idx) - 1, max(1, round(len(idx) * valid_pct))) if len(idx) > 1 else 0
        chosen.update(idx[:n_valid])
    return ["valid" if i in chosen else "train" for i in range(len(items))]


def class_thumbnails(dataset_dir, per_class: int = 6) -> list:
    """(path, caption) for the first few training images of each class, for a gallery."""
    dataset_dir = Path(dataset_dir)
    out = []
    for cls_dir in sorted((dataset_dir / "train").iterdir()) if (dataset_dir / "train").is_dir() else []:
        for p in sorted(cls_dir.glob("*.png"))[:per_class]:
            out.append((str(p), cls_dir.name))
    return out
