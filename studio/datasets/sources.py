"""Where a builder reads from: a folder on this machine or an uploaded zip, never modified."""
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

from .errors import DatasetError
from .safe_io import extract_zip, is_image_name


@contextmanager
def source_folder(workspace, source):
    """Yield a folder to read: the folder itself, or a zip extracted (with every check in
    safe_io.extract_zip) into the workspace's tmp folder and removed afterwards."""
    if not source or not str(source).strip():
        raise DatasetError("Choose a folder or upload a zip archive first.")
    path = Path(str(source).strip()).expanduser()
    if path.is_dir():
        yield unwrap(path)
        return
    if not path.is_file():
        raise DatasetError(f"{path} does not exist.")
    if path.suffix.lower() != ".zip" and not zipfile.is_zipfile(path):
        raise DatasetError(f"{path.name} is neither a folder nor a zip archive.")
    workspace.tmp_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="unzip-", dir=workspace.tmp_dir))
    try:
        yield unwrap(extract_zip(path, scratch / "contents"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def visible_children(folder: Path):
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX")


def unwrap(folder: Path) -> Path:
    """Step into a lone wrapper folder (a zip of 'pets/' holding 'pets/cat', 'pets/dog'), but
    not into a folder that itself holds images (that one is a class or the images)."""
    for _ in range(8):
        children = visible_children(folder)
        if len(children) != 1 or not children[0].is_dir():
            break
        if any(p.is_file() and is_image_name(p) for p in children[0].iterdir()):
            break
        folder = children[0]
    return folder


def image_files(folder: Path) -> list:
    """All image-named files under a folder, recursively, in a stable order; hidden ones left out."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and is_image_name(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def other_files(folder: Path) -> list:
    """Visible files that are not named like images (reported as skipped)."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not is_image_name(p) and not any(part.startswith(".") or part == "__MACOSX"
                                                                      for part in p.relative_to(folder).parts))
