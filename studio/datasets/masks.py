"""Masks for segmentation: import images + label PNGs + codes, or masks painted in the browser.

A label is an index image: pixel value = index into codes (the CamVid convention). Colour-coded
masks are accepted with a palette (one RGB colour per code). Every file that is wrong is named:
size differs from its image, values outside the codes, missing partner, unreadable."""
import re
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError
from .manifest import MANIFEST, checked_name, new_dataset, read_manifest, write_manifest
from .safe_io import MAX_PIXELS, UnreadableImage, open_image, open_mask, save_png
from .sources import image_files, source_folder

IMAGE_DIRS = ("images", "image", "imgs")
LABEL_DIRS = ("labels", "label", "masks", "mask")
LABEL_SUFFIXES = ("", "_P", "_mask", "_label", "_labels")  # CamVid writes NAME_P.png
# Distinct colours for up to 20 classes (background black); more classes cycle.
COLOURS = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
           (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0),
           (255, 215, 180), (0, 0, 128)]


def class_colours(n: int) -> list:
    return [COLOURS[i % len(COLOURS)] for i in range(n)]


MAX_CODE_CHARS = 100


def parse_codes(text) -> list:
    """codes.txt text (one code per line) or a list -> the list of codes, checked."""
    codes = [c.strip() for c in (text.splitlines() if isinstance(text, str) else text or []) if str(c).strip()]
    if len(codes) < 2:
        raise DatasetError("Give at least two codes (one per line, the first usually 'background').")
    if len(codes) > 256:  # checked first: the text may come from anyone, at any length
        raise DatasetError("At most 256 codes fit in an index PNG.")
    if any(len(str(c)) > MAX_CODE_CHARS for c in codes):
        raise DatasetError(f"A code is a short class name: at most {MAX_CODE_CHARS} characters.")
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise DatasetError(f"These codes appear twice: {', '.join(dupes)}.")
    return codes


def _find_dir(root: Path, names):
    for n in names:
        if (root / n).is_dir():
            return root / n
    return None


def label_indices(label: Image.Image, n_codes: int, palette=None):
    """(index array, problem or None). Palette masks: each colour looked up in `palette`."""
    if label.mode in ("RGB", "RGBA") or (palette and label.mode != "P"):
        rgb = np.asarray(label.convert("RGB"), dtype=np.int32)
        if palette is None:
            if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
                values = rgb[..., 0]
            else:
                return None, "is a colour mask, but no palette was given to read its colours"
        else:
            keys = rgb[..., 0] * 65536 + rgb[..., 1] * 256 + rgb[..., 2]
            lookup = {r * 65536 + g * 256 + b: i for i, (r, g, b) in enumerate(palette)}
            values = np.full(keys.shape, -1, np.int32)
            for k, i in lookup.items():
                values[keys == k] = i
            if (values < 0).any():
                stray = sorted({tuple(int(v) for v in rgb[y, x]) for y, x in zip(*np.nonzero(values < 0))})
                return None, f"has colours not in the palette: {', '.join(map(str, stray[:5]))}"
            return values.astype(np.uint8), None
    else:
        values = np.asarray(label).astype(np.int64)
    stray = np.unique(values[(values < 0) | (values >= n_codes)])
    if stray.size:
        shown = ", ".join(str(int(v)) for v in stray[:8]) + (" ..." if stray.size > 8 else "")
        return None, f"has values outside the {n_codes} codes (0-{n_codes - 1}): {shown}"
    return values.astype(np.uint8), None


def index_png(values: np.ndarray, n_codes: int) -> Image.Image:
    """An index mask as a palette PNG: the values are the codes, the palette makes it viewable."""
    im = Image.fromarray(values.astype(np.uint8), "P")
    im.putpalette([v for rgb in class_colours(max(n_codes, 1)) for v in rgb])
    return im


def _pair_up(images, labels):
    """{stem: (image, label or None)} and labels without an image."""
    by_stem = {}
    for f in labels:
        by_stem.setdefault(f.stem, f)
    pairs, used = {}, set()
    for img in images:
        label = next((by_stem[img.stem + s] for s in LABEL_SUFFIXES if img.stem + s in by_stem), None)
        pairs[img] = label
        if label is not None:
            used.add(label)
    return pairs, [f for f in labels if f not in used]


def import_masks(workspace, name, source, codes=None, void=None, palette=None, max_pixels=MAX_PIXELS) -> dict:
    """Build datasets/NAME (kind segment) from a folder or zip holding images/ and labels/
    (label stem = image stem, or with _P/_mask), and codes (given, or codes.txt in the source).
    Bad pairs are left out and named in the report's `skipped`."""
    name = checked_name(workspace, name)
    with source_folder(workspace, source) as root:
        if codes is None or (isinstance(codes, str) and not codes.strip()):
            codes_file = next((p for p in (root / "codes.txt", root.parent / "codes.txt") if p.is_file()), None)
            if codes_file is None:
                raise DatasetError("No codes given and no codes.txt in the source: list the classes, one per line.")
            codes = codes_file.read_text(encoding="utf-8", errors="replace")
        codes = parse_codes(codes)
        if void and void not in codes:
            raise DatasetError(f"The void code '{void}' is not one of the codes ({', '.join(codes)}).")
        if palette is not None:
            palette = [tuple(int(v) for v in c) for c in palette]
            if len(palette) != len(codes):
                raise DatasetError(f"The palette has {len(palette)} colours but there are {len(codes)} codes.")
        img_dir, lbl_dir = _find_dir(root, IMAGE_DIRS), _find_dir(root, LABEL_DIRS)
        if not img_dir or not lbl_dir:
            raise DatasetError("The source needs an images/ folder and a labels/ folder (label files named like their images).")
        pairs, orphans = _pair_up(image_files(img_dir), image_files(lbl_dir))
        skipped = [{"file": str(f.relative_to(root)), "reason": "label without an image"} for f in orphans]
        with new_dataset(workspace, name) as out:
            writer = _SegmentWriter(out, codes)
            for img, lbl in pairs.items():
                rel = str(img.relative_to(root))
                if lbl is None:
                    skipped.append({"file": rel, "reason": "image without a label"})
                    continue
                try:
                    picture, mask = open_image(img, max_pixels), open_mask(lbl, max_pixels)
                except UnreadableImage as e:
                    skipped.append({"file": rel, "reason": str(e)})
                    continue
                lrel = str(lbl.relative_to(root))
                if mask.size != picture.size:
                    skipped.append({"file": lrel, "reason": f"is {mask.width}x{mask.height} but its image is "
                                                            f"{picture.width}x{picture.height}"})
                    continue
                values, problem = label_indices(mask, len(codes), palette)
                if problem:
                    skipped.append({"file": lrel, "reason": problem})
                    continue
                writer.add(picture, values, img.stem)
            if not writer.n:
                first = f" First problem: {skipped[0]['file']} {skipped[0]['reason']}." if skipped else ""
                raise DatasetError("No valid image and label pairs were found, so nothing was made." + first)
            counts = writer.finish(void, Path(str(source)).name, {"name": "import_masks", "palette": palette})
    return _report(workspace, name, codes, counts, skipped)


class _SegmentWriter:
    """Writes images/STEM.png and labels/STEM.png (index PNG) pair by pair, counting pixels."""

    def __init__(self, out: Path, codes):
        self.out, self.codes, self.n, self.used = out, codes, 0, set()
        self.pixels = np.zeros(len(codes), np.int64)
        (out / "images").mkdir()
        (out / "labels").mkdir()

    def add(self, picture, values, stem):
        stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", stem).strip(" .")[:100] or "image"
        base, k = stem, 1
        while stem in self.used:
            k += 1
            stem = f"{base}-{k}"
        self.used.add(stem)
        save_png(picture, self.out / "images" / f"{stem}.png")
        save_png(index_png(values, len(self.codes)), self.out / "labels" / f"{stem}.png")
        self.pixels += np.bincount(values.ravel(), minlength=len(self.codes))[: len(self.codes)]
        self.n += 1

    def finish(self, void, source, builder) -> dict:
        (self.out / "codes.txt").write_text("\n".join(self.codes) + "\n", encoding="utf-8")
        counts = {"images": self.n, "pixels": dict(zip(self.codes, self.pixels.tolist()))}
        write_manifest(self.out, {"kind": "segment", "codes": self.codes, "void": void or None, "counts": counts,
                                  "source": source, "builder": builder})
        return counts


def _report(workspace, name, codes, counts, skipped) -> dict:
    return {"name": name, "kind": "segment", "path": str(workspace.datasets_dir / name), "codes": codes,
            "counts": counts, "images": counts["images"], "skipped": skipped, "notes": []}


def painted_indices(layer, colours, size=None) -> np.ndarray:
    """An ImageEditor layer (RGBA, transparent where unpainted) -> index array: unpainted is
    code 0, painted pixels take the class whose colour is nearest (brush edges blend)."""
    rgba = np.asarray(layer.convert("RGBA") if isinstance(layer, Image.Image) else layer)
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise DatasetError("The painted layer is not an RGBA image.")
    rgb = rgba[..., :3].astype(np.int32)
    palette = np.asarray(colours, np.int32)
    distance = ((rgb[:, :, None, :] - palette[None, None]) ** 2).sum(-1)
    values = distance.argmin(-1).astype(np.uint8)
    values[rgba[..., 3] < 128] = 0
    if size is not None and (values.shape[1], values.shape[0]) != tuple(size):
        values = np.asarray(Image.fromarray(values).resize(tuple(size), Image.NEAREST))
    return values


def build_painted(workspace, name, images: dict, masks: dict, codes, void=None) -> dict:
    """A segment dataset from painted masks: images {stem: path}, masks {stem: index array};
    only images that have a mask are included."""
    name = checked_name(workspace, name)
    codes = parse_codes(codes)
    if void and void not in codes:
        raise DatasetError(f"The void code '{void}' is not one of the codes ({', '.join(codes)}).")
    skipped = []
    with new_dataset(workspace, name) as out:
        writer = _SegmentWriter(out, codes)
        for stem in sorted(masks):
            if stem not in images:
                continue
            picture = open_image(images[stem])
            values = np.asarray(masks[stem], np.uint8)
            if values.shape != (picture.height, picture.width):
                skipped.append({"file": stem, "reason": f"the painted mask is {values.shape[1]}x{values.shape[0]} "
                                                        f"but the image is {picture.width}x{picture.height}"})
                continue
            if values.max(initial=0) >= len(codes):
                skipped.append({"file": stem, "reason": "the mask uses a class that is not in the codes"})
                continue
            writer.add(picture, values, stem)
        if not writer.n:
            raise DatasetError("No masks have been painted yet: paint at least one picture and press Keep mask.")
        counts = writer.finish(void, "painted in the browser", {"name": "paint"})
    return _report(workspace, name, codes, counts, skipped)


def overlay(image: Image.Image, values: np.ndarray, colours, opacity: float = 0.5) -> Image.Image:
    """The picture with each class painted over it in its colour; background (code 0) left clear."""
    base = image.convert("RGB")
    colour = np.asarray(colours, np.uint8)[values]
    alpha = np.where(values > 0, float(opacity), 0.0)[..., None]
    mixed = np.asarray(base, np.float32) * (1 - alpha) + colour.astype(np.float32) * alpha
    return Image.fromarray(np.clip(np.rint(mixed), 0, 255).astype(np.uint8))


def pixel_frequencies(dataset_dir) -> dict:
    """{code: fraction of all label pixels}, from the labels themselves."""
    dataset_dir = Path(dataset_dir)
    codes = read_manifest(dataset_dir).get("codes") or parse_codes((dataset_dir / "codes.txt").read_text())
    counts = np.zeros(len(codes), np.int64)
    for p in sorted((dataset_dir / "labels").glob("*.png")):
        counts += np.bincount(np.asarray(open_mask(p)).ravel().astype(np.int64), minlength=len(codes))[: len(codes)]
    total = max(int(counts.sum()), 1)
    return {c: int(n) / total for c, n in zip(codes, counts)}


def segment_sample(dataset_dir, index: int):
    """(image, index array, codes) of the index-th pair of a segment dataset."""
    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / MANIFEST).is_file():
        raise DatasetError(f"{dataset_dir.name} is not a dataset.")
    codes = read_manifest(dataset_dir).get("codes") or []
    images = sorted((dataset_dir / "images").glob("*.png"))
    if not images:
        raise DatasetError(f"{dataset_dir.name} has no images.")
    img = images[int(index) % len(images)]
    return open_image(img), np.asarray(open_mask(dataset_dir / "labels" / img.name)), codes
