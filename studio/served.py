"""What the page may fetch: links to the files it shows, in WORKSPACE/served.

Gradio's file route serves whatever lies under launch()'s allowed_paths to anyone who asks
for it by path. Allowing the workspace would serve the run store, checkpoints, configs, logs
and upload scratch (and Gradio opening the store's SQLite file in the studio's process drops
the studio's own locks on it). So only this folder (and the bundled assets) is allowed, every
other workspace folder is blocked, and a handler that shows a workspace file (a sample grid, an
animation) hands Gradio `served(path)`: a hard link (a copy across filesystems) named by a hash
of the file's place and version plus its own name (epoch_004.png), never the original path.
"""
import hashlib
import os
import shutil
from pathlib import Path

from trainers.atomic import replace_atomically


def served(workspace, path) -> str:
    """The path of a servable link to `path`, a file inside the workspace (any other is refused)."""
    source = Path(path).resolve()
    if not workspace.contains(source) or not source.is_file():
        raise ValueError("That file cannot be shown.")
    stat = source.stat()
    relative = source.relative_to(workspace.root).as_posix()
    tag = hashlib.sha256(f"{relative}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:16]
    target = workspace.served_dir / f"{tag}-{source.name}"  # the name kept: pages and tests read it
    if not target.is_file():
        workspace.served_dir.mkdir(parents=True, exist_ok=True)
        # A temporary name of its own: Gradio's handlers run in threads, and two pages showing
        # one run ask for the same file at once.
        replace_atomically(target, lambda tmp: _link_or_copy(source, tmp))
    return str(target)


def _link_or_copy(source: Path, tmp: Path) -> None:
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)


def clear_served(workspace) -> None:
    """Start each studio with an empty served folder: pages served earlier kept Gradio's own copies."""
    shutil.rmtree(workspace.served_dir, ignore_errors=True)
    workspace.served_dir.mkdir(parents=True, exist_ok=True)


def private_folders(workspace) -> list:
    """Every workspace folder that the file route must never reach (launch's blocked_paths)."""
    return [str(p) for p in (workspace.store_dir, workspace.tmp_dir, workspace.uploads_dir, workspace.runs_dir,
                             workspace.datasets_dir, workspace.root / "exports")]
