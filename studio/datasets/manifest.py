"""dataset.json, and the atomic way every builder creates a dataset folder."""
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from studio.workspace import WorkspaceError, check_name

from .errors import DatasetError

MANIFEST = "dataset.json"


def checked_name(workspace, name: str) -> str:
    """A new dataset's name: one plain folder name that no dataset uses yet."""
    try:
        name = check_name(name, "dataset name")
    except WorkspaceError as e:
        raise DatasetError(str(e)) from None
    if (workspace.datasets_dir / name).exists():
        raise DatasetError(f"A dataset named '{name}' already exists; choose another name (nothing was changed).")
    return name


@contextmanager
def new_dataset(workspace, name: str):
    """Yield an empty folder to build in; on success it becomes datasets/NAME in one rename,
    on any failure it is removed, so a half-made dataset is never visible."""
    name = checked_name(workspace, name)
    workspace.tmp_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="build-", dir=workspace.tmp_dir))
    try:
        yield building
        final = workspace.datasets_dir / name
        if final.exists():  # someone else finished a dataset of that name meanwhile
            raise DatasetError(f"A dataset named '{name}' appeared while this one was being built; nothing was changed.")
        os.rename(building, final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def write_manifest(folder, manifest: dict) -> None:
    Path(folder, MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_manifest(folder) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{Path(folder).name} has no {MANIFEST}; it is not a dataset built by the studio.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DatasetError(f"{path} is not valid JSON; rebuild the dataset.")


def dataset_names(workspace, kinds=None) -> list:
    """Names of the workspace's datasets, optionally only those of the given kinds."""
    names = []
    if not workspace.datasets_dir.is_dir():
        return names
    for d in sorted(workspace.datasets_dir.iterdir()):
        if not (d / MANIFEST).is_file():
            continue
        if kinds is not None:
            try:
                if read_manifest(d).get("kind") not in kinds:
                    continue
            except DatasetError:
                continue
        names.append(d.name)
    return names


def existing_dataset(workspace, name: str) -> Path:
    """The folder of an existing dataset, by name (never a path)."""
    try:
        folder = workspace.dataset_dir(name)
    except WorkspaceError as e:
        raise DatasetError(str(e)) from None
    if not (folder / MANIFEST).is_file():
        raise DatasetError(f"There is no dataset named '{name}'.")
    return folder
