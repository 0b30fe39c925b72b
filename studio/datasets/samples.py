"""The bundled sample datasets (assets/), installed into a new workspace on first start."""
import shutil
from pathlib import Path

from PIL import Image

from .manifest import MANIFEST, new_dataset

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SAMPLES = ("digits", "photos", "shapes")


def install_samples(workspace, assets_dir=ASSETS) -> list:
    """Copy each bundled sample into datasets/ unless a dataset of that name exists already.
    Photos are stored as JPEG to keep the repository small; the workspace gets PNG, the format
    every dataset uses. Returns the names installed now."""
    installed = []
    for name in SAMPLES:
        src = Path(assets_dir) / name
        if not (src / MANIFEST).is_file() or (workspace.datasets_dir / name).exists():
            continue
        with new_dataset(workspace, name) as out:
            for f in sorted(src.rglob("*")):
                target = out / f.relative_to(src)
                if f.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                elif f.suffix.lower() in (".jpg", ".jpeg"):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with Image.open(f) as im:
                        im.convert("RGB").save(target.with_suffix(".png"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, target)
        installed.append(name)
    return installed
