"""Files a reader may open while a run writes them (the studio's pages, a resume): written to a
temporary name beside the target and renamed over it, so a reader sees the old file or the new
one, never half of one. Every file a run writes goes through here (checkpoints, cached
activations, JSON, pictures), so a write that fails says why in one sentence, and the file
written before it stays whole."""

import json
import os
import shutil
import uuid
from pathlib import Path

from .errors import WriteFailed

# Below this much free room a failed write is called a full disk (a checkpoint of the smallest
# network is a few MB; torch's zip writer reports ENOSPC only as "unexpected pos").
FULL_BELOW_MB = 64


def replace_atomically(path, write) -> None:
    """write(tmp) fills a temporary file beside `path`, which then replaces `path` in one step.
    The temporary name is unique to this call (processes of a sweep or of DDP may write the same
    file at once, on one machine or several sharing a disk) and keeps the suffix (PIL picks the
    format from it)."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        tmp.replace(path)
        # rename() between two hard links of one file succeeds and leaves both (POSIX):
        # a served link made twice at once.
        tmp.unlink(missing_ok=True)
    except (OSError, RuntimeError) as error:  # RuntimeError: torch.save's zip writer
        tmp.unlink(missing_ok=True)
        raise WriteFailed(write_failed_message(path, error)) from error


def write_failed_message(path: Path, error: BaseException) -> str:
    try:
        free_mb = shutil.disk_usage(path.parent).free / 2**20
    except OSError:
        free_mb = None
    reason = _reason(error)
    if free_mb is not None and free_mb < FULL_BELOW_MB:
        return (
            f"Could not write {path.name}: the disk is full ({free_mb:.0f} MB free). The previous "
            f"{path.name} is kept. Free disk (Runs tab: Free disk, or delete runs), then resume the run."
        )
    room = f" ({free_mb:.0f} MB free on its disk)" if free_mb is not None else ""
    return f"Could not write {path.name}{room}: {reason}. The previous {path.name} is kept."


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()  # "no space left on device", "file too large"
    text = " ".join(str(error).split())
    # torch's zip writer says only "unexpected pos 6470528 vs 6470424" or "file write failed"
    if "unexpected pos" in text or "PytorchStreamWriter" in text:
        return "the system accepted only part of it (a full disk, or a limit on file size)"
    return text[:160] or type(error).__name__


def write_json(data, path, indent=None) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(data, indent=indent), encoding="utf-8"))


def save_image(image, path) -> None:
    """A PIL image, in the format its suffix names."""
    replace_atomically(path, image.save)


def save_torch(obj, path) -> None:
    """A torch.save of `obj` (tensors, numbers, strings, containers: what weights_only reads)."""
    import torch

    replace_atomically(path, lambda tmp: torch.save(obj, tmp))


def write_bytes(data: bytes, path) -> None:
    replace_atomically(path, lambda tmp: tmp.write_bytes(data))
