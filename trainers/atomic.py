"""Files a reader may open while a run writes them (the studio's pages, a resume): written to a
temporary name beside the target and renamed over it, so a reader sees the old file or the new
one, never half of one."""

import json
import os
from pathlib import Path


def replace_atomically(path, write) -> None:
    """write(tmp) fills a temporary file beside `path`, which then replaces `path` in one step.
    The temporary name keeps the suffix (PIL picks the format from it) and the process id."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
    write(tmp)
    tmp.replace(path)


def write_json(data, path, indent=None) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=indent), encoding="utf-8"))


def save_image(image, path) -> None:
    """A PIL image, in the format its suffix names."""
    replace_atomically(path, image.save)
