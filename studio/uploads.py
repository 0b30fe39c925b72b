"""Single pictures uploaded for a run's settings (a style image, a Gatys content photo).

An upload is opened the way a dataset builder opens a picture (studio.datasets.safe_io: corrupt,
mislabelled and decompression-bomb files are refused with a sentence), made RGB and upright, and
kept in the workspace's uploads/ folder as PNG under its content's hash: the same picture
uploaded twice is one file, and a run's config can name it, since jobs only accept paths
inside the workspace.
"""
import hashlib
from pathlib import Path

from studio.datasets.safe_io import MAX_PIXELS, open_image, save_png
from trainers.atomic import replace_atomically

def keep_picture(workspace, source, max_pixels: int = MAX_PIXELS) -> Path:
    """Check the picture at `source` and keep it in uploads/; its path there. Raises
    studio.datasets.errors.DatasetError (UnreadableImage) with the reason when it is refused
    (the pixel limit is every entry point's: safe_io.MAX_PIXELS)."""
    im = open_image(source, max_pixels=max_pixels)
    digest = hashlib.sha256(im.tobytes() + repr(im.size).encode()).hexdigest()[:16]
    target = workspace.uploads_dir / f"{digest}.png"
    if not target.is_file():
        workspace.uploads_dir.mkdir(parents=True, exist_ok=True)
        replace_atomically(target, lambda tmp: save_png(im, tmp))  # two uploads of one picture may race
    return target
