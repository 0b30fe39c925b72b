"""Paired datasets for the U-Net tasks: (image, mask) for segmentation, (crappy, clean) for
restoration and super-resolution. Geometric augmentation is applied identically to both
halves of a pair (torchvision.transforms.v2 transforms an Image and its Mask with the same
random parameters; super-resolution pairs are cropped on the low-resolution grid by hand).

Layouts accepted (DATA is the dataset folder):
  DATA/train/{A,B}/ and DATA/valid/{A,B}/   -> split by folder
  DATA/{A,B}/                               -> seeded random split by valid_pct
where (A, B) is (images, labels) for segment and (crappy, clean) for restore; a pair shares its
file stem.
"""

import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from .augment import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (re-exported for the tasks)
from .constants import IMAGE_EXTS
from .data import open_rgb, read_manifest
from .errors import ConfigError


# --- finding pairs -------------------------------------------------------------
def _by_stem(folder: Path) -> dict:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTS}


def _pairs(root: Path, first: str, second: str) -> list:
    a_dir, b_dir = root / first, root / second
    for d in (a_dir, b_dir):
        if not d.is_dir():
            raise ConfigError(f"Missing folder {d}: a {first}/{second} dataset needs both folders.")
    a, b = _by_stem(a_dir), _by_stem(b_dir)
    lonely = sorted(set(a) ^ set(b))
    if lonely:
        shown = ", ".join(lonely[:5]) + (f" and {len(lonely) - 5} more" if len(lonely) > 5 else "")
        raise ConfigError(
            f"In {root}, these files have no partner in {first}/ or {second}/ (same name expected): {shown}."
        )
    if not a:
        raise ConfigError(f"No images in {a_dir}.")
    return [(a[s], b[s]) for s in sorted(a)]


def scan_pairs(data_dir, first: str, second: str, valid_pct: float, seed: int):
    """-> (train_pairs, valid_pairs), each a list of (first_path, second_path)."""
    root = Path(data_dir)
    if (root / "train").is_dir():
        train = _pairs(root / "train", first, second)
        if (root / "valid").is_dir():
            return train, _pairs(root / "valid", first, second)
    else:
        train = _pairs(root, first, second)
    if len(train) < 2:
        raise ConfigError(
            f"The dataset at {root} has {len(train)} pair(s); at least 2 are needed to hold some out for validation."
        )
    shuffled = list(train)
    random.Random(seed).shuffle(shuffled)
    n_valid = min(max(1, round(len(shuffled) * valid_pct)), len(shuffled) - 1)
    return shuffled[n_valid:], shuffled[:n_valid]


def read_codes(data_dir) -> tuple:
    """-> (codes, void_index or None) from dataset.json, else codes.txt."""
    root = Path(data_dir)
    manifest = read_manifest(root)
    codes = manifest.get("codes")
    if not codes and (root / "codes.txt").is_file():
        codes = [line.strip() for line in (root / "codes.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    if not codes:
        raise ConfigError(f"No codes for {root}: write codes.txt (one class name per line, in pixel-value order).")
    if len(codes) < 2:
        raise ConfigError(f"Only one code ({codes[0]}) in {root}; segmentation needs at least two classes.")
    void = manifest.get("void")
    if void is not None and void not in codes:
        raise ConfigError(
            f"The void code {void!r} in {root / 'dataset.json'} is not one of the codes ({', '.join(codes)})."
        )
    return list(codes), (codes.index(void) if void is not None else None)


def read_scale(data_dir) -> int:
    scale = read_manifest(data_dir).get("scale", 1)
    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= 16:
        raise ConfigError(
            f"'scale' in {Path(data_dir) / 'dataset.json'} must be a whole number from 1 to 16, not {scale!r}."
        )
    return scale


# --- loading -----------------------------------------------------------------------
class _Cached(Dataset):
    """Keeps decoded pictures in memory (decoding dominates an epoch on small images)."""

    CACHE_LIMIT = 10_000

    def __init__(self, items):
        self.items = list(items)
        self._cache = {} if len(self.items) <= self.CACHE_LIMIT else None

    def __len__(self):
        return len(self.items)

    def _load(self, i):
        raise NotImplementedError

    def pair(self, i):
        if self._cache is None:
            return self._load(i)
        if i not in self._cache:
            self._cache[i] = self._load(i)
        return self._cache[i]


def _rgb_tensor(path) -> tv_tensors.Image:
    return tv_tensors.Image(torch.from_numpy(np.array(open_rgb(path))).permute(2, 0, 1).contiguous())


def _normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    return (x - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)


class SegmentPairs(_Cached):
    """(normalised image (3,S,S), class index per pixel (S,S) long)."""

    def __init__(self, items, codes, size, mean, std, train=False, augment=True, flip=True):
        super().__init__(items)
        self.codes, self.mean, self.std = list(codes), tuple(mean), tuple(std)
        self.train, self.augment, self.flip = train, augment, flip
        self.set_size(size)

    def set_size(self, size: int):
        """Progressive resizing changes the side of the square crops between stages."""
        self.size = size
        if self.train and self.augment:
            steps = [v2.RandomResizedCrop(size, scale=(0.5, 1.0), ratio=(0.8, 1.25), antialias=True)]
            if self.flip:
                steps.append(v2.RandomHorizontalFlip())
            steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2))  # images only, never masks
        else:
            steps = [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        self.transform = v2.Compose(steps)

    def _load(self, i):
        image_path, label_path = self.items[i]
        image = _rgb_tensor(image_path)
        try:
            with Image.open(label_path) as im:
                if im.mode not in ("L", "P", "I", "I;16"):
                    raise ConfigError(
                        f"Label {label_path} is a {im.mode} image; labels must be index PNGs (mode L or P)."
                    )
                labels = np.array(im).astype(np.int64)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"Cannot read label {label_path}: {type(e).__name__}: {e}")
        if labels.shape != tuple(image.shape[-2:]):
            raise ConfigError(
                f"Label {label_path} is {labels.shape[1]}x{labels.shape[0]} but its image is "
                f"{image.shape[-1]}x{image.shape[-2]}; they must be the same size."
            )
        if labels.max() >= len(self.codes):
            raise ConfigError(
                f"Label {label_path} has pixel value {labels.max()}, but there are only "
                f"{len(self.codes)} codes (values 0 to {len(self.codes) - 1})."
            )
        return image, tv_tensors.Mask(torch.from_numpy(labels)[None])

    def __getitem__(self, i):
        image, mask = self.transform(*self.pair(i))
        x = _normalize(image.float() / 255, self.mean, self.std)
        return x.as_subclass(torch.Tensor), mask[0].as_subclass(torch.Tensor).long()


class RestorePairs(_Cached):
    """(normalised crappy input (3,S/N,S/N), target (2,3,S,S) = [clean, baseline] in [0, 1]).

    The baseline (crappy input, bicubic-upscaled when N > 1) travels with the target so the
    validation pass can score it next to the model: input_psnr and input_ssim. Restore's runs
    use its subclasses: CropPairs to train, WholePairs to validate."""

    def __init__(self, items, scale, size, mean, std, train=False, augment=True, flip=True):
        super().__init__(items)
        self.scale, self.mean, self.std = scale, tuple(mean), tuple(std)
        self.train, self.augment, self.flip = train, augment, flip
        self.set_size(size)

    def set_size(self, size: int):
        if size % self.scale:
            raise ConfigError(
                f"The image size ({size}) must be a multiple of the super-resolution scale ({self.scale})."
            )
        self.size = size

    def _load(self, i):
        crappy, clean = (_rgb_tensor(p) for p in self.items[i])
        n = self.scale
        h, w = clean.shape[-2] - clean.shape[-2] % n, clean.shape[-1] - clean.shape[-1] % n
        clean = clean[..., :h, :w]
        if tuple(crappy.shape[-2:]) != (h // n, w // n):  # rounding by the builder: put it on the grid
            crappy = v2.functional.resize(crappy, [h // n, w // n], antialias=True)
        # Slicing unwraps a tv_tensor; v2 transforms pass plain tensors through untouched when an
        # Image is present, so both halves must stay Images for the paired crop to move both.
        return tv_tensors.Image(crappy), tv_tensors.Image(clean)

    def _crop(self, crappy, clean):
        """A square crop of side `size` on the low-resolution grid, so the pair stays aligned."""
        n, s = self.scale, self.size
        h, w = clean.shape[-2:]
        if min(h, w) < s:  # too small: scale the pair up so the short side fits
            f = s / min(h, w)
            h, w = -(-round(h * f) // n) * n, -(-round(w * f) // n) * n
            clean = v2.functional.resize(clean, [h, w], antialias=True)
            crappy = v2.functional.resize(crappy, [h // n, w // n], antialias=True)
        rows, cols = (h - s) // n, (w - s) // n
        if self.train and self.augment:
            top, left = (int(torch.randint(0, k + 1, ())) * n for k in (rows, cols))
        else:
            top, left = rows // 2 * n, cols // 2 * n
        clean = clean[..., top : top + s, left : left + s]
        crappy = crappy[..., top // n : (top + s) // n, left // n : (left + s) // n]
        return crappy, clean

    def __getitem__(self, i):
        # Crops at the pictures' own resolution, in training as in validation: a random zoom
        # would change the pixel scale of the damage (blur, JPEG blocks) the model learns to undo.
        crappy, clean = self.pair(i)
        crappy, clean = self._crop(crappy, clean)
        if self.train and self.augment and self.flip and torch.rand(()) < 0.5:
            crappy, clean = crappy.flip(-1), clean.flip(-1)
        crappy01 = crappy.as_subclass(torch.Tensor).float() / 255
        clean01 = clean.as_subclass(torch.Tensor).float() / 255
        if self.scale > 1:
            baseline = F.interpolate(crappy01[None], scale_factor=self.scale, mode="bicubic", align_corners=False)[
                0
            ].clamp(0, 1)
        else:
            baseline = crappy01
        return _normalize(crappy01, self.mean, self.std), torch.stack([clean01, baseline])


# --- restoration: fresh pairs, crops per epoch, whole validation pictures ---------------------
def dihedral_image(image: Image.Image, k: int) -> Image.Image:
    """`dihedral` for a PIL picture: the same 8 flips and quarter turns, by the same k."""
    if k & 4:
        image = image.transpose(Image.Transpose.TRANSPOSE)
    if k & 2:
        image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if k & 1:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 flips and quarter turns of a picture (k in 0..7). Applied to both halves of a
    pair it keeps the damage's pixel scale, unlike a zoom: JPEG's square blocks, a downscale's
    blur and text strokes look the same turned."""
    if k & 4:
        x = x.transpose(-1, -2)
    if k & 2:
        x = x.flip(-2)
    if k & 1:
        x = x.flip(-1)
    return x


def _pair_tensors(crappy: torch.Tensor, clean: torch.Tensor, scale: int, mean, std):
    """uint8 halves -> (normalised input, target (2,3,H,W) = [clean, baseline]) in [0, 1]."""
    crappy01 = crappy.as_subclass(torch.Tensor).float() / 255
    clean01 = clean.as_subclass(torch.Tensor).float() / 255
    if scale > 1:
        baseline = F.interpolate(crappy01[None], scale_factor=scale, mode="bicubic", align_corners=False)[0].clamp(0, 1)
    else:
        baseline = crappy01
    return _normalize(crappy01, mean, std), torch.stack([clean01, baseline])


WINDOW = 512  # the most of a picture's side one fresh pair damages (CrappifyPairs)
GRID_SHIFT = 16  # a JPEG macroblock (8 px blocks, chroma halved) and a 2x or 4x downscale's grid repeat in 16 px


class CrappifyPairs(Dataset):
    """Unlimited pairs from a few clean pictures: the dataset's crappify recipe (trainers/degrade.py,
    recorded by the builder in crappify.json) applied afresh to a random crop at every draw.

    Each item draws its seed from torch's generator: the Learner reseeds it every epoch, so a run
    sees new damage each batch and the same damage when rerun or resumed with the same seed. A
    few photos damaged once are a few hundred pairs to memorise; re-drawn, they are as many pairs
    as the run has steps. The whole picture (up to WINDOW px a side) is damaged, as the builder
    does, then cropped.
    `length` is the crops one epoch draws (at least one per picture)."""

    def __init__(self, clean_paths, params, size, mean, std, length=0, flip=True, channels=True):
        self.paths = list(clean_paths)
        self.params, self.mean, self.std, self.flip, self.channels = params, tuple(mean), tuple(std), flip, channels
        self.scale = params.scale if params.super_res else 1
        self.length = max(int(length), len(self.paths))
        self._cache = {}
        self.set_size(size)

    def set_size(self, size: int):
        if size % self.scale:
            raise ConfigError(
                f"The image size ({size}) must be a multiple of the super-resolution scale ({self.scale})."
            )
        self.size = size

    def __len__(self):
        return self.length

    def picture(self, i) -> Image.Image:
        if i not in self._cache:
            self._cache[i] = open_rgb(self.paths[i])
        return self._cache[i]

    def window(self, picture: Image.Image, rng) -> Image.Image:
        """The part of the picture one draw damages: at most WINDOW px a side, at a random place
        that moves by up to GRID_SHIFT px even when the picture is smaller than WINDOW (steps of
        the scale, so a super-resolution pair stays on its grid), never smaller than a crop."""
        s, n = self.size, self.scale
        dx, dy = (int(rng.integers(0, min(GRID_SHIFT, k - s) // n + 1)) * n for k in picture.size)
        width, height = picture.width - dx, picture.height - dy
        side = WINDOW // n * n
        ww, wh = min(side, width), min(side, height)
        wl, wt = (int(rng.integers(0, (k - w) // n + 1)) * n for k, w in ((width, ww), (height, wh)))
        return picture.crop((dx + wl, dy + wt, dx + wl + ww, dy + wt + wh))

    def __getitem__(self, i):
        from .degrade import crappify_image  # late: PIL's font code is needed only here

        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
        picture = self.picture(i % len(self.paths))
        s, n = self.size, self.scale
        if min(picture.size) < s:  # too small: enlarge so the short side fits the crop
            f = s / min(picture.size)
            w, h = (-(-max(s, round(k * f)) // n) * n for k in picture.size)
            picture = picture.resize((w, h), Image.BICUBIC)
        # The recipe damages the whole picture (a window of WINDOW px of a large one), as the
        # builder does, and the crop comes after: damaging the crop alone put the text, sized
        # from the whole picture, over nearly every crop, and the network learnt to paint over
        # everything (held-out photos lost 0.7-2.5 dB with the default recipe).
        # The window starts up to GRID_SHIFT px in and is turned before the damage, so the JPEG
        # blocks and the downscale's pixel grid fall differently on the picture each draw: with a
        # recipe without randomness (a fixed JPEG quality, no text), a picture smaller than the
        # window was otherwise damaged the same way every time, and a few photos were a few fixed
        # pairs that a long run memorised (held-out gain +1.02 dB at epoch 15, +0.46 at epoch 34).
        window = self.window(picture, rng)
        if self.flip:
            window = dihedral_image(window, int(rng.integers(0, 8)))
        if self.channels:
            # The colour channels in a random order, before the damage (so it is the recipe's on
            # these colours): a few photos hold a few palettes, and a long run learnt theirs.
            # Without it a blue held-out photo went from +0.77 dB to -0.79 dB over a 10-minute
            # run, all of it in colour (its luminance error did not grow), and the last epoch
            # ended 0.5-0.8 dB below the best; with it the seed-42 run ends at its best, +1.29 dB.
            window = Image.fromarray(np.asarray(window)[..., rng.permutation(3)])
        crappy = crappify_image(window, self.params, int(rng.integers(0, 2**62)), text_height=picture.height)
        left, top = (int(rng.integers(0, (k - s) // n + 1)) * n for k in window.size)
        clean = window.crop((left, top, left + s, top + s))
        crappy = crappy.crop((left // n, top // n, (left + s) // n, (top + s) // n))
        clean_t, crappy_t = (torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in (clean, crappy))
        return _pair_tensors(crappy_t, clean_t, self.scale, self.mean, self.std)


class CropPairs(RestorePairs):
    """Fixed (crappy, clean) pairs without a recipe (imported folders): random crops at the
    pictures' own resolution, turned and flipped alike (dihedral), `length` crops an epoch.
    Eight pairs made one step an epoch; an epoch of crops lets a short run take many steps."""

    def __init__(self, items, scale, size, mean, std, length=0, flip=True):
        super().__init__(items, scale, size, mean, std, train=True, augment=True, flip=False)
        self.length, self.turn = max(int(length), len(self.items)), flip

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        crappy, clean = self._crop(*self.pair(i % len(self.items)))
        if self.turn:
            k = int(torch.randint(0, 8, ()))
            crappy, clean = dihedral(crappy, k), dihedral(clean, k)
        return _pair_tensors(crappy, clean, self.scale, self.mean, self.std)


MAX_VALID_PIXELS = 1024 * 768  # a larger held-out picture is scored on its centre of this area


class WholePairs(RestorePairs):
    """Held-out pairs as whole pictures (on the scale's grid), one per batch: restore's validation
    runs them through trainers/tiling.py as Try does, so the run's score is the one a person sees.
    A picture above MAX_VALID_PIXELS keeps its centre, so one photo cannot stall every epoch."""

    def __init__(self, items, scale, mean, std):
        super().__init__(items, scale, scale, mean, std)

    def set_size(self, size: int):
        self.size = size  # whole pictures: the training size only sets the tiles (the task's infer)

    def __getitem__(self, i):
        crappy, clean = self.pair(i)
        n = self.scale
        h, w = clean.shape[-2:]
        if h * w > MAX_VALID_PIXELS:
            f = (MAX_VALID_PIXELS / (h * w)) ** 0.5
            ch, cw = max(n, int(h * f) // n * n), max(n, int(w * f) // n * n)
            top, left = (h - ch) // 2 // n * n, (w - cw) // 2 // n * n
            clean = clean[..., top : top + ch, left : left + cw]
            crappy = crappy[..., top // n : (top + ch) // n, left // n : (left + cw) // n]
        return _pair_tensors(crappy, clean, self.scale, self.mean, self.std)
