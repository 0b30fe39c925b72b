"""Where a studio keeps its things: datasets, runs and the store, under one folder."""
import os
import re
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,79}$")


class WorkspaceError(ValueError):
    """A name or path that the workspace refuses; the message says why."""


def check_name(name: str, what: str = "name") -> str:
    """A dataset or run name is one plain folder name, never a path."""
    name = (name or "").strip()
    if not name:
        raise WorkspaceError(f"The {what} is empty.")
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name or not _NAME.match(name):
        raise WorkspaceError(
            f"The {what} {name!r} is not allowed: use letters, digits, spaces, '.', '_' or '-' "
            "(at most 80 characters), and no path separators."
        )
    return name


class Workspace:
    def __init__(self, root):
        self.root = Path(root).expanduser().resolve()

    @classmethod
    def open(cls, root=None):
        ws = cls(root or os.environ.get("DARKROOM_WORKSPACE") or "~/.darkroom")
        for d in (ws.datasets_dir, ws.runs_dir, ws.store_dir, ws.tmp_dir, ws.uploads_dir):
            d.mkdir(parents=True, exist_ok=True)
        return ws

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    @property
    def tmp_dir(self) -> Path:
        """Builders assemble here, then rename into place (same filesystem, so atomic)."""
        return self.root / "tmp"

    @property
    def uploads_dir(self) -> Path:
        """Single pictures a run names (a style image, a content photo), checked and kept as PNG."""
        return self.root / "uploads"

    @property
    def served_dir(self) -> Path:
        """Links to the files a page shows: the only workspace folder Gradio may serve (studio/served.py)."""
        return self.root / "served"

    def dataset_dir(self, name: str) -> Path:
        return self.datasets_dir / check_name(name, "dataset name")

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / check_name(run_id, "run id")

    def contains(self, path) -> bool:
        """True if `path` resolves inside the workspace (symlinks followed)."""
        try:
            Path(path).resolve().relative_to(self.root)
            return True
        except ValueError:
            return False
