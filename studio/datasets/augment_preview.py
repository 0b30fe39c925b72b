"""Augmentation preview: N random augmentations of one sample, with the same geometric
transform applied to its mask (nearest-neighbour, so class values survive) or to its target
image (fastai's TfmType.CLASS / TfmType.PIXEL), so a person sees what training will see."""
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import DatasetError
from .manifest import read_manifest
from .masks import class_colours
from .safe_io import open_image, open_mask


def sample_files(dataset_dir: Path, kind: str) -> list:
    """The dataset's samples in a stable order: a path, or (input, partner) for pairs."""
    if kind == "classify":
        return sorted(dataset_dir.glob("train/*/*.png")) + sorted(dataset_dir.glob("valid/*/*.png"))
    if kind == "images":
        return sorted(p for p in dataset_dir.iterdir() if p.suffix.lower() == ".png")
    if kind == "segment":
        return [(p, dataset_dir / "labels" / p.name) for p in sorted((dataset_dir / "images").glob("*.png"))]
    if kind == "restore":
        return [(dataset_dir / "crappy" / p.name, p) for p in sorted((dataset_dir / "clean").glob("*.png"))]
    raise DatasetError(f"Unknown dataset kind '{kind}'.")


def augmentations(flip: bool = True, dihedral: bool = False):
    """Zoom/crop, flips (or all eight dihedral turns), small rotation, warp, lighting.
    Geometric steps move masks and targets too; lighting touches images only."""
    from torchvision.transforms import v2

    steps = [v2.RandomResizedCrop(size=(1, 1), scale=(0.6, 1.0), ratio=(0.8, 1.25), antialias=True)]
    if flip or dihedral:
        steps.append(v2.RandomHorizontalFlip())
    if dihedral:
        steps += [v2.RandomVerticalFlip(), v2.RandomApply([v2.RandomRotation((90, 90))], p=0.5)]
    steps += [v2.RandomRotation(10), v2.RandomPerspective(distortion_scale=0.2, p=0.5),
              v2.ColorJitter(brightness=0.3, contrast=0.3)]
    return steps


def preview_augmentations(dataset_dir, index: int = 0, n: int = 8, seed: int = 0) -> list:
    """n augmented versions of sample `index`; pairs come back side by side (input | mask or target)."""
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as F

    dataset_dir = Path(dataset_dir)
    manifest = read_manifest(dataset_dir)
    kind = manifest.get("kind")
    samples = sample_files(dataset_dir, kind)
    if not samples:
        raise DatasetError(f"The dataset '{dataset_dir.name}' has no pictures to preview.")
    if not 1 <= int(n) <= 64:
        raise DatasetError("Choose between 1 and 64 augmented versions.")
    sample = samples[int(index) % len(samples)]
    if isinstance(sample, tuple):
        first = open_image(sample[0])
        if kind == "segment":
            partner = tv_tensors.Mask(torch.from_numpy(np.asarray(open_mask(sample[1])).astype(np.int64)))
        else:
            target = open_image(sample[1])
            first = first.resize(target.size, Image.NEAREST)  # a super-resolution input, shown at target size
            partner = tv_tensors.Image(F.pil_to_tensor(target))
    else:
        first, partner = open_image(sample), None
    image = tv_tensors.Image(F.pil_to_tensor(first))
    steps = augmentations(flip=manifest.get("flip", True) is not False, dihedral=bool(manifest.get("dihedral")))
    steps[0] = v2.RandomResizedCrop(size=(first.height, first.width), scale=(0.6, 1.0), ratio=(0.8, 1.25), antialias=True)
    transform = v2.Compose(steps)
    colours = np.asarray(class_colours(max(len(manifest.get("codes") or []), 2)), np.uint8)
    out = []
    with torch.random.fork_rng(devices=[]):
        for k in range(int(n)):
            torch.manual_seed(int(seed) * 1000 + k)
            if partner is None:
                out.append(F.to_pil_image(transform(image)))
                continue
            a, b = transform(image, partner)
            left = F.to_pil_image(a)
            if kind == "segment":
                values = b.numpy().astype(np.int64) % len(colours)
                right = Image.fromarray(colours[values])
            else:
                right = F.to_pil_image(b)
            pair = Image.new("RGB", (left.width * 2 + 4, left.height), (255, 255, 255))
            pair.paste(left, (0, 0))
            pair.paste(right, (left.width + 4, 0))
            out.append(pair)
    return out
