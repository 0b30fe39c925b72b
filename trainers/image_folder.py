"""A plain folder of images (dataset kind "images"): what wgan and style learn from.

The images are the files at the top of the folder. They are decoded once, kept in memory at a
size a little above the training size, and served as random crops (training) or centre crops
(validation), in [0, 1]. A small folder can be made to last longer per epoch with `length`:
item i is then image i mod n, with its own random crop, so an epoch of a dozen photos still
has enough batches to learn from.
"""
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from .data import list_images, open_rgb, read_manifest
from .errors import ConfigError


def scan_images(data_dir) -> list:
    """The image files at the top of an "images" dataset, sorted; a clear error otherwise."""
    data_dir = Path(data_dir)
    kind = read_manifest(data_dir).get("kind")
    if kind not in (None, "images"):
        raise ConfigError(f"The dataset at {data_dir} is a {kind!r} dataset; this task needs a folder of images "
                          f"(dataset kind \"images\").")
    paths = list_images(data_dir)
    if not paths:
        raise ConfigError(f"No images found at the top of {data_dir} (.png, .jpg, ...): this task needs a folder of images.")
    return paths


class ImageFolderSet(Dataset):
    """Items are (image, image): the Learner's (input, target) shape, used as is by a style network
    (which reproduces its input's content); the GAN loop takes the first."""

    def __init__(self, paths, size: int, train: bool = False, augment: bool = True, flip: bool = True,
                 length: int | None = None):
        self.paths = list(paths)
        self.train, self.augment, self.flip = train, augment, flip
        self.length = max(length or len(self.paths), len(self.paths))
        self._images = {}
        self.set_size(size)

    def set_size(self, size: int):
        self.size = size
        self._images = {}  # cached at a size tied to the crop size
        if self.train and self.augment:
            steps = [v2.RandomResizedCrop(size, scale=(0.35, 1.0), ratio=(0.8, 1.25), antialias=True)]
            if self.flip:
                steps.append(v2.RandomHorizontalFlip())
        else:
            steps = [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        self.transform = v2.Compose(steps + [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])

    def __len__(self):
        return self.length

    def image(self, i) -> Image.Image:
        i %= len(self.paths)
        if i not in self._images:
            im = open_rgb(self.paths[i])
            scale = 2 * self.size / min(im.size)  # enough pixels for a zoomed-in crop, no more
            if scale < 1:
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC)
            self._images[i] = im
        return self._images[i]

    def __getitem__(self, i):
        x = self.transform(self.image(i))
        return x, x
