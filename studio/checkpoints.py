"""A run's checkpoint as a model ready to use: the network, its preprocessing, its labels.

Every task's finished run loads: the task builds its network from the checkpoint's config and
info (Task.model_from_checkpoint), or says why it has none (Task.checkpoint_problem). What a
model answers (classes, an overlay, before/after, drawings, a stylised photo) follows the
task's Try view (Task.try_view), so nothing here names a task.

Gradio serves requests on several threads at once, and an inspection adds hooks and turns
off in-place activations for a moment: every use of a loaded model goes through its lock
(fastai users met crashes from concurrent predictions in web servers).
"""
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from trainers.augment import valid_transform


MAX_GENERATED = 64  # pictures per draw from noise
MAX_RESTORE_PIXELS = 1536 * 1024  # a larger picture is restored on its centre of this area (CPU time)


class CheckpointError(ValueError):
    """A run without a usable checkpoint; the message says what is missing."""


@dataclass
class LoadedModel:
    model: torch.nn.Module
    task: str
    info: dict
    config: dict
    path: Path
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def kind(self):
        """The registry's Task of this run: what it shows in Try, exports, inspections."""
        from trainers.tasks import get_task
        return get_task(self.task)

    def _needs(self, view: str, what: str):
        if self.kind.try_view != view:
            raise CheckpointError(f"This is a {self.task} model; {what}.")

    @property
    def classes(self) -> list:
        return list(self.info.get("classes", []))

    @property
    def mean(self):
        return tuple(self.info.get("mean", (0.5, 0.5, 0.5)))

    @property
    def std(self):
        return tuple(self.info.get("std", (0.25, 0.25, 0.25)))

    @property
    def image_size(self) -> int:
        return int(self.info.get("image_size", self.config.get("image_size", 64)))

    def input_size(self) -> int:
        """Side of the model's input: the image size, divided by the scale for super-resolution."""
        return self.image_size // int(self.info.get("scale", 1) or 1)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> normalised (1, 3, S, S): shorter side resized, centre crop (as validation)."""
        return valid_transform(self.input_size(), self.mean, self.std)(image.convert("RGB"))[None]

    def shown(self, image: Image.Image) -> Image.Image:
        """The picture the model actually sees (resized and centre-cropped), for overlays."""
        from trainers.augment import denormalize
        from trainers.grid import to_pil
        return to_pil(denormalize(self.preprocess(image)[0], self.mean, self.std))

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            return self.model(x).float()

    def probabilities(self, image: Image.Image) -> list:
        """[(class, probability)] from most to least likely (classify runs)."""
        self._needs("classes", "class probabilities need a classifier's run")
        probs = self.forward(self.preprocess(image)).softmax(1)[0]
        order = probs.argsort(descending=True).tolist()
        return [(self.classes[i], float(probs[i])) for i in order]

    def model_input(self, image: Image.Image | None = None) -> torch.Tensor:
        """What the network takes: seeded noise (seed 0) for a generator that draws from noise
        and ignores any picture; else the picture, preprocessed, or a blank one when None."""
        if self.kind.try_view == "drawn":
            return self.model.noise(1, torch.Generator().manual_seed(0))
        if image is None:
            size = self.input_size()
            return torch.zeros(1, 3, size, size)
        return self.preprocess(image)

    def restored(self, image: Image.Image) -> tuple:
        """(before, after) for restore and gan runs: the whole picture (its centre when above
        MAX_RESTORE_PIXELS; scaled to the output size for super-resolution, so the two line up)
        and the model's output, computed in tiles of the training size by the function the run's
        validation used (trainers/tiling.py), so what Try shows is what the run scored."""
        self._needs("before_after", "before/after needs a restoring run (restore or gan)")
        with self.lock:
            return restore_whole(self.model, image, self.mean, self.std, self.input_size(),
                                 int(self.info.get("scale", 1) or 1))

    def generate(self, seed: int, count: int) -> list:
        """`count` pictures drawn by a wgan generator from seeded noise: the same seed always
        gives the same pictures (eval mode: each depends on its own latent point only)."""
        self._needs("drawn", "drawing from noise needs a generator's run (wgan)")
        from trainers.grid import to_pil
        count = int(count)
        if not 1 <= count <= MAX_GENERATED:
            raise CheckpointError(f"Draw between 1 and {MAX_GENERATED} pictures, not {count}.")
        latents = self.model.noise(count, torch.Generator().manual_seed(int(seed)))
        return [to_pil((x + 1) / 2) for x in self.forward(latents)]

    def stylise(self, image: Image.Image, max_side: int = 512) -> Image.Image:
        """The photo in the run's style, its longer side at most `max_side` pixels (the network is
        fully convolutional: any size works; the cap keeps a CPU answer quick)."""
        self._needs("stylised", "stylising needs a style run")
        from trainers.grid import to_pil
        from trainers.tasks.style import image_tensor
        image = image.convert("RGB")
        x = image_tensor(image, min(max_side, max(image.size)))[None]  # never enlarged
        return to_pil(self.forward(x)[0])


def restore_whole(model, image: Image.Image, mean, std, tile: int, scale: int = 1) -> tuple:
    """(before, after): the whole picture (its centre above MAX_RESTORE_PIXELS) through `model`
    in tiles of `tile` input pixels (trainers/tiling.py, as the run's validation), `before` scaled
    to the output's size so the two line up. Try and the exported demo both answer with this."""
    from torchvision.transforms.v2 import functional as TF
    from trainers.grid import to_pil
    from trainers.tiling import tiled
    image = centre_area(image.convert("RGB"), MAX_RESTORE_PIXELS)
    x = TF.normalize(TF.to_dtype(TF.pil_to_tensor(image), torch.float32, scale=True), mean, std)
    after = to_pil(tiled(model, x[None], tile, scale=scale)[0].clamp(0, 1))
    return image.resize(after.size, Image.BICUBIC), after


def centre_area(image: Image.Image, max_pixels: int) -> Image.Image:
    """The picture, or its centre with at most max_pixels (same shape): cropped, not shrunk,
    so the damage keeps the pixel scale the network learned."""
    w, h = image.size
    if w * h <= max_pixels:
        return image
    f = (max_pixels / (w * h)) ** 0.5
    cw, ch = max(1, int(w * f)), max(1, int(h * f))
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def checkpoint_path(run_dir, which: str = "best") -> Path:
    """The pinned epoch's kept weights when a person pinned one (trainers/epoch_weights.py),
    else best.pt when there is one (the monitored metric's best epoch), else last.pt.
    which="epoch_003" asks for that epoch's kept weights."""
    from trainers.epoch_weights import epoch_file, pinned_epoch

    folder = Path(run_dir) / "checkpoints"
    if which.startswith("epoch_"):
        path = epoch_file(run_dir, int(which.removeprefix("epoch_")))
        if not path.is_file():
            raise CheckpointError(f"The weights of epoch {int(which.removeprefix('epoch_'))} were not kept "
                                  f"(the run's weights budget, extra.keep_epochs_every and epoch_weights_mb).")
        return path
    pinned = pinned_epoch(run_dir) if which == "best" else None
    if pinned is not None and epoch_file(run_dir, pinned).is_file():
        return epoch_file(run_dir, pinned)
    for name in ([f"{which}.pt"] + ["best.pt", "last.pt"]):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"Run {Path(run_dir).name} has no checkpoint yet: it must finish at least one epoch.")


def build_model(task: str, config: dict, info: dict) -> torch.nn.Module:
    """The same network the task trained, with no pretrained download (weights come next)."""
    from trainers.errors import ConfigError
    from trainers.tasks import get_task

    try:
        return get_task(task).model_from_checkpoint(config, info)
    except ConfigError as e:
        raise CheckpointError(str(e))


def load_checkpoint(run_dir, which: str = "best") -> LoadedModel:
    from trainers.callbacks import read_checkpoint
    from trainers.errors import ConfigError

    path = checkpoint_path(run_dir, which)
    try:  # weights_only=True: a checkpoint someone placed cannot run code when it is read
        state = read_checkpoint(path, f"the checkpoint {path.name} of run {Path(run_dir).name}")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    task = state.get("task") or (state.get("config") or {}).get("task")
    problem = _task_problem(task, state.get("info") or {})
    if problem:
        raise CheckpointError(problem)
    if not task or "model" not in state:
        raise CheckpointError(f"{path.name} of run {Path(run_dir).name} is not a Darkroom checkpoint "
                              f"(no task or model weights in it).")
    info, config = dict(state.get("info") or {}), dict(state.get("config") or {})
    model = build_model(task, config, info)
    model.load_state_dict(state["model"])
    model.eval()
    return LoadedModel(model=model, task=task, info=info, config=config, path=path)


def _task_problem(task, info) -> str:
    from trainers.tasks import TASKS

    found = TASKS.get(task) if isinstance(task, str) else None
    return found.checkpoint_problem(info) if found else ""


_cache: dict = {}
_cache_lock = threading.Lock()


def cached_checkpoint(run_dir, which: str = "best") -> LoadedModel:
    """load_checkpoint, reused while the file is unchanged (a tab's every click would reload it)."""
    path = checkpoint_path(run_dir, which)
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    with _cache_lock:
        loaded = _cache.get(key)
        if loaded is None:
            for old in [k for k in _cache if k[0] == key[0]]:
                del _cache[old]
            while len(_cache) >= 4:  # a few models in memory at most
                del _cache[next(iter(_cache))]
            loaded = _cache[key] = load_checkpoint(run_dir, which)
    return loaded
