"""A run's footprint on disk, and giving it back.

A restore run of a few minutes writes hundreds of MB, most of it `checkpoints/last.pt`: the
optimiser's state, which only a resume reads. A completed run cannot be resumed (jobs.RESUMABLE),
so its last.pt goes as soon as it completes, when a best.pt holds the weights Try, Inspect,
Share and a gan need. "Free the disk" removes a finished run's checkpoints altogether and keeps
its record: metrics, loss curves, sample grids, log and config stay, so the run can still be
compared, cloned and read, but no longer tried, inspected, shared or resumed."""
import shutil
from pathlib import Path

BULKY = ("checkpoints", "animations")  # what free_disk removes; everything else is the record


def folder_bytes(folder) -> int:
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def drop_resume_state(run_dir) -> int:
    """After a completed run: remove checkpoints/last.pt when best.pt is there. Returns bytes freed."""
    folder = Path(run_dir) / "checkpoints"
    last, best = folder / "last.pt", folder / "best.pt"
    if not (last.is_file() and best.is_file()):
        return 0
    freed = last.stat().st_size
    last.unlink()
    return freed


def free_disk(run_dir) -> int:
    """Remove a run's checkpoints and cached animations, keep its record. Returns bytes freed."""
    freed = 0
    for name in BULKY:
        folder = Path(run_dir) / name
        if folder.is_dir():
            freed += folder_bytes(folder)
            shutil.rmtree(folder)
    return freed
