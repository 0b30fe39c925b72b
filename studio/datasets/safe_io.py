"""Opening pictures and archives that may be hostile: truncated, mislabelled, enormous, or
built to write outside their folder. Everything here refuses with a DatasetError sentence."""
import hashlib
import shutil
import stat
import threading
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DatasetError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Our own decompression-bomb limit, checked from the header before any pixel is decoded.
MAX_PIXELS = 40_000_000
# Archives: refuse before extracting if the declared contents are bigger than this.
MAX_ZIP_BYTES = 2 * 1024**3
MAX_ZIP_ENTRIES = 200_000
# Pictures barely compress (PNG and JPEG are compressed already; a flat BMP or TIFF mask may reach
# a few hundred to one). A zip bomb is thousands to one: 2 GiB of zeros deflate to 2 MB (1000:1).
# An entry above this ratio is refused, before extraction from its header and again from the
# bytes really written; entries under RATIO_FREE_BYTES are too small to matter.
MAX_RATIO = 200
RATIO_FREE_BYTES = 4 * 1024**2
# All imports at once: the scratch folder never holds more than this (three 2 GiB uploads at
# once would otherwise fill a small disk); an import that would go over waits for none, it is refused.
MAX_SCRATCH_BYTES = 4 * 1024**3

_scratch_lock = threading.Lock()
_scratch_used = 0


class UnreadableImage(DatasetError):
    """One file that cannot be used; builders list it in their report and carry on."""


class TooManyPixels(UnreadableImage):
    """A picture whose header claims more than the pixel limit (a possible decompression bomb)."""


def is_image_name(path) -> bool:
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTS


def file_hash(path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB: 16-bit and float are rescaled (not clipped), transparency is
    composited on white, CMYK/palette/grayscale are converted."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16") or a.max(initial=0) > 255:
            a = a / 257.0 if a.max(initial=0) <= 65535 else a * (255.0 / a.max())
        elif im.mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB") if im.mode != "RGB" else im


def check_pixels(source, name: str = "The picture", max_pixels: int = MAX_PIXELS) -> tuple:
    """(width, height) read from the header of `source` (a path or a binary file), or
    UnreadableImage when it is not a picture or has more than `max_pixels` pixels. Nothing is
    decoded: every image entry point asks this first (Try, Inspect, the demo, uploads, builders)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise TooManyPixels(f"{name} has more than {max_pixels:,} pixels, the limit; it was refused unopened.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UnreadableImage(f"{name} is not a picture in a format we can read.") from None
    if width * height > max_pixels:
        raise TooManyPixels(f"{name} is {width}x{height} pixels, over the limit of {max_pixels:,}; "
                            "it was refused as a possible decompression bomb.")
    return width, height


def open_image(path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open, fully decode, turn upright (EXIF orientation) and convert to RGB, or raise
    UnreadableImage saying why."""
    name = Path(path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except UnidentifiedImageError:
        raise UnreadableImage(f"{name} is not an image (its contents are not a picture format we can read).")
    except Image.DecompressionBombError:
        raise UnreadableImage(f"{name} is too large to open safely (over {max_pixels:,} pixels).")
    except OSError as e:
        raise UnreadableImage(f"{name} cannot be read: {e}.")
    with im:
        if im.width * im.height > max_pixels:
            raise UnreadableImage(f"{name} is {im.width}x{im.height} pixels, over the limit of {max_pixels:,}; "
                                  "it was refused as a possible decompression bomb.")
        try:
            im.load()
            upright = ImageOps.exif_transpose(im)
            return _to_rgb(upright)
        except (OSError, ValueError, SyntaxError) as e:
            raise UnreadableImage(f"{name} is damaged or truncated ({e}).")


def open_mask(path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A label image exactly as stored (mode kept, so index values survive), fully decoded."""
    name = Path(path).name
    try:
        im = Image.open(path)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise UnreadableImage(f"{name} is not a readable image.")
    with im:
        if im.width * im.height > max_pixels:
            raise UnreadableImage(f"{name} is over the limit of {max_pixels:,} pixels.")
        try:
            im.load()
            return im.copy()
        except (OSError, ValueError, SyntaxError) as e:
            raise UnreadableImage(f"{name} is damaged or truncated ({e}).")


def _entry_problem(info: zipfile.ZipInfo):
    """Why an archive entry is refused, or None when it is a plain file or folder inside."""
    raw = info.filename
    name = raw.replace("\\", "/")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return f"'{raw}' is a symbolic link"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"'{raw}' has an absolute path"
    if ".." in PurePosixPath(name).parts:
        return f"'{raw}' points outside the archive's folder (it contains '..')"
    if "\x00" in name:
        return f"'{raw}' has a forbidden character in its name"
    if info.flag_bits & 0x1:
        return f"'{raw}' is encrypted"
    return None


def _ignored(name: str) -> bool:
    """Operating-system clutter that is never data (macOS resource forks, hidden files)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _size(n: int) -> str:
    """Bytes for a person: exact when small, so a limit missed by one byte does not read as equal."""
    if n < 1024**2:
        return f"{n:,} byte{'' if n == 1 else 's'}"
    return f"{n / 1024**2:,.1f} MB"


def _ratio_problem(info: zipfile.ZipInfo, size: int):
    if size > RATIO_FREE_BYTES and size > MAX_RATIO * max(info.compress_size, 1):
        return (f"'{info.filename}' expands {size / max(info.compress_size, 1):,.0f} times "
                f"(the limit is {MAX_RATIO} times, pictures come nowhere near it)")
    return None


class _ScratchBudget:
    """Reserve an import's declared bytes out of MAX_SCRATCH_BYTES for as long as it is extracted."""

    def __init__(self, nbytes: int, zip_name: str, limit: int):
        self.nbytes, self.zip_name, self.limit = nbytes, zip_name, limit

    def __enter__(self):
        global _scratch_used
        with _scratch_lock:
            if _scratch_used + self.nbytes > self.limit:
                raise DatasetError(f"{self.zip_name} was refused: other imports in progress are using the scratch "
                                   f"space ({_size(self.limit)} in all); try again when they have finished.")
            _scratch_used += self.nbytes
        return self

    def __exit__(self, *exc):
        global _scratch_used
        with _scratch_lock:
            _scratch_used -= self.nbytes


def extract_zip(zip_path, dest, max_bytes: int = MAX_ZIP_BYTES, max_entries: int = MAX_ZIP_ENTRIES,
                max_scratch: int = MAX_SCRATCH_BYTES) -> Path:
    """Extract an uploaded archive into `dest` (a new folder) after checking every entry.
    The whole archive is refused, before anything is written, if any entry is a link, is
    absolute, climbs out with '..', expands more than MAX_RATIO times, if the declared total
    is over `max_bytes`, or if it would take the scratch space of all imports over `max_scratch`.
    While writing, the bytes really written are counted against the same limits."""
    zip_name = Path(zip_path).name
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DatasetError(f"{zip_name} is not a readable zip archive ({e}).")
    with zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise DatasetError(f"{zip_name} has {len(infos):,} entries, more than the limit of {max_entries:,}.")
        problems = [p for p in map(_entry_problem, infos) if p]
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise DatasetError(f"{zip_name} was refused and nothing was extracted: {'; '.join(problems[:3])}{more}.")
        declared = sum(i.file_size for i in infos)
        if declared > max_bytes:
            raise DatasetError(f"{zip_name} would unpack to {_size(declared)}, {_size(declared - max_bytes)} over "
                               f"the limit of {_size(max_bytes)}; it was refused before extraction.")
        bombs = [p for p in (_ratio_problem(i, i.file_size) for i in infos) if p]
        if bombs:
            raise DatasetError(f"{zip_name} looks like a zip bomb and was refused before extraction: {bombs[0]}.")
        dest = Path(dest)
        with _ScratchBudget(declared, zip_name, max_scratch):
            dest.mkdir(parents=True, exist_ok=False)
            try:
                _write_entries(zf, infos, dest.resolve(), zip_name, declared)
            except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, zlib.error) as e:
                shutil.rmtree(dest, ignore_errors=True)
                raise DatasetError(f"{zip_name} is damaged ({e}); nothing was imported.")
            except FileExistsError as e:
                shutil.rmtree(dest, ignore_errors=True)
                raise DatasetError(f"{zip_name} holds the same file twice ({Path(e.filename).name}); nothing was imported.")
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
    return dest


def _write_entries(zf, infos, root: Path, zip_name: str, declared: int) -> None:
    written = 0
    for info in infos:
        name = info.filename.replace("\\", "/")
        if _ignored(name):
            continue
        target = (root / name).resolve()
        if target != root and root not in target.parents:  # belt and braces after the checks above
            raise DatasetError(f"{zip_name} was refused: '{info.filename}' would land outside the target folder.")
        if info.is_dir() or name.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        entry = 0
        with zf.open(info) as src, open(target, "xb") as out:
            while block := src.read(1 << 20):
                entry += len(block)
                written += len(block)
                # What is really written, whatever the headers said.
                if written > declared or entry > info.file_size or _ratio_problem(info, entry):
                    raise DatasetError(f"{zip_name} unpacks to more than it declares, or expands like a zip "
                                       f"bomb; it was refused.")
                out.write(block)


def save_png(im: Image.Image, path) -> None:
    """PNG at zlib level 3: about three times faster than the default level 6 for ~1% more bytes."""
    im.save(path, "PNG", compress_level=3)
