"""Precompute (the course's `precompute=True`): a frozen body's activations, computed once.

While the body is frozen only the head learns, so the body turns each picture into the same
activations every epoch. `Precompute` computes them once (the validation set once, the
training set once per augmented view, at most `views` views, cycled over the frozen epochs),
keeps them in an `ActivationCache`, and trains the head on them: an epoch of the head is then a
few matrix products instead of a ResNet's forward and backward pass.

It applies where the model says how it splits (`precompute_split()` -> (fixed, trainable), with
`model(x) == trainable(fixed(x))`; ResNetClassifier's fixed part is the body and the head's
parameter-free pooling) and while the learner trains with that fixed part frozen (Learner.freeze).
The fixed part is then frozen whole: its batch norm too (eval mode, ImageNet statistics), where a
frozen phase without precompute lets batch norm learn (fastai's train_bn). Not under DDP, not with
a task's own validation forward (`TaskParts.infer`). The unfrozen phase trains end to end as ever.

The cache's key names everything the activations depend on: the fixed part's weights (a hash of
its state), the pictures (paths, sizes, modification times, labels), the transform (image size,
normalisation, augmentation) and, for training views, the view, the number of views and the
seed that draws its augmentation. Change any of them and the activations are computed again.
"""

import hashlib
import json
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .atomic import save_torch
from .callbacks import Callback, rng_state, seed_everything, set_rng_state

_BN = nn.modules.batchnorm._BatchNorm


def weights_digest(module: nn.Module) -> str:
    """A hash of a module's parameters and buffers (names, shapes, values): its weights' identity."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def items_digest(dataset) -> str:
    """A hash of a dataset's pictures: path, size and modification time of each file, and its label."""
    h = hashlib.sha256()
    for path, label in getattr(dataset, "items", ()):
        stat = Path(path).stat()
        h.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{label}\n".encode())
    return h.hexdigest()


class ActivationCache:
    """Activations by key: in memory, and as `<hash>.pt` files in `folder` when one is given (read
    back with weights_only=True: tensors only). The key is a dict; its JSON's hash names the file."""

    def __init__(self, folder=None):
        self.folder = Path(folder) if folder is not None else None
        self.memory = {}
        self.computed = 0  # how many entries were computed rather than found (tests, logs)

    @staticmethod
    def name(key: dict) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]

    def get(self, key: dict, compute):
        """(features, labels) for `key`, computed by `compute()` when neither memory nor disk has it."""
        name = self.name(key)
        if name in self.memory:
            return self.memory[name]
        path = self.folder / f"{name}.pt" if self.folder is not None else None
        found = None
        if path is not None and path.is_file():
            try:
                saved = torch.load(path, map_location="cpu", weights_only=True)
                found = (saved["features"], saved["labels"])
            except Exception:
                found = None  # a damaged file is computed again and replaced
        if found is None:
            found = compute()
            self.computed += 1
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                # Trials of a sweep, or DDP's ranks, may compute the same entry at once: each
                # writes its own temporary file and the last rename wins (the same activations).
                save_torch({"features": found[0], "labels": found[1], "key": json.dumps(key, sort_keys=True)}, path)
        self.memory[name] = found
        return found


class Precompute(Callback):
    """Trains the head on cached activations while the body is frozen (module docstring).
    `live=True` computes the same activations every batch instead (the fixed part in eval mode,
    no gradients): the reference the cached path must match, and the benchmark's baseline."""

    order = -10  # before everything else: the others then see the head and its inputs

    def __init__(self, cache: ActivationCache | None = None, views: int = 2, seed: int = 42, live: bool = False):
        self.cache = cache if cache is not None else ActivationCache()
        self.views, self.seed, self.live = max(1, int(views)), seed, live
        self.active = False

    # --- when it applies -------------------------------------------------------
    def _split(self):
        learn = self.learner
        model = learn.model
        if hasattr(model, "module") or learn.infer is not None or not hasattr(model, "precompute_split"):
            return None  # DDP, a task's own validation forward, or a model that does not split
        fixed, trainable = model.precompute_split()
        # Frozen: nothing of the fixed part learns but (at most) its batch norm.
        learning = [
            p for m in fixed.modules() if not isinstance(m, _BN) for p in m.parameters(recurse=False) if p.requires_grad
        ]
        return None if learning else (fixed, trainable)

    def before_fit(self):
        split = self._split()
        self.active = split is not None
        if not self.active:
            return
        learn = self.learner
        self.fixed, self.trainable = split
        self.__dict__.pop("_digest", None)  # the weights may have changed since an earlier phase
        # The whole fixed part is frozen, batch norm included: its activations must not change.
        self.bn_grads = [(p, p.requires_grad) for p in self.fixed.parameters()]
        for p, _ in self.bn_grads:
            p.requires_grad_(False)
        self.loaders = (learn.train_dl, learn.valid_dl)
        self.fixed.eval()  # its ImageNet statistics, never a batch's (and none updated)
        if not self.live:
            self.valid_features = self._features("valid", learn.valid_dl.dataset, None)
            learn.valid_dl = self._loader(self.valid_features, learn.valid_dl, shuffle=False)
            learn.log(
                f"precompute: the frozen body's activations are cached (at most {self.views} augmented "
                f"view{'s' if self.views > 1 else ''} of the training pictures); the head trains on them"
            )

    def before_epoch(self):
        if not self.active:
            return
        learn = self.learner
        self.fixed.eval()
        if not self.live:  # the view of this epoch: views cycle over the frozen epochs
            view = (learn.epoch - learn.first_epoch) % self.views
            features = self._features("train", self.loaders[0].dataset, view)
            learn.train_dl = self._loader(features, self.loaders[0], shuffle=True)
        self._shortcut(True)

    def after_validate(self):
        # Samples and checkpoints (after_epoch) see the whole model taking pictures.
        if self.active:
            self._shortcut(False)

    def after_fit(self):
        if not self.active:
            return
        learn = self.learner
        self._shortcut(False)
        learn.train_dl, learn.valid_dl = self.loaders
        for p, wanted in self.bn_grads:
            p.requires_grad_(wanted)
        self.fixed.train(learn.model.training)
        self.active = False

    # --- the two ways of feeding the head ----------------------------------------
    def _shortcut(self, on: bool):
        """Points the model's forward at the head alone (cached: its inputs are activations) or at
        the head on the fixed part run without gradients (live); off: the model's own forward.
        An instance attribute shadows the class's forward, so the model, its parameters, its
        state_dict and every hook stay the same object."""
        model = self.learner.model
        if not on:
            model.__dict__.pop("forward", None)
            return
        fixed, trainable = self.fixed, self.trainable

        def forward(x):
            if self.live:
                with torch.no_grad():
                    x = fixed(x)
            return trainable(x)

        # object's setattr: a module's own would register a module as a submodule.
        object.__setattr__(model, "forward", forward)

    def _loader(self, features, like: DataLoader, shuffle: bool) -> DataLoader:
        """Activations in batches as `like` gave pictures (its batch size and drop_last), in memory."""
        return DataLoader(
            TensorDataset(*features), batch_size=like.batch_size, shuffle=shuffle, drop_last=like.drop_last
        )

    def _features(self, part: str, dataset, view):
        learn = self.learner
        key = {
            "part": part,
            "weights": self._weights_id(),
            "items": items_digest(dataset),
            "transform": repr(getattr(dataset, "transform", "")),
            "size": _size_of(dataset),
        }
        if view is not None:  # a training view: its augmentation is drawn from its own seed
            key.update(view=view, views=self.views, seed=self.seed)
        return self.cache.get(key, lambda: self._compute(dataset, view, learn))

    def _weights_id(self) -> str:
        if not hasattr(self, "_digest"):  # frozen: the same for the whole phase
            self._digest = weights_digest(self.fixed)
        return self._digest

    @torch.inference_mode()
    def _compute(self, dataset, view, learn):
        """The fixed part's activations of every item in order; a training view's augmentation
        drawn from its own seed, the run's random state left as it was."""
        saved = rng_state()
        self.fixed.eval()
        if view is not None:
            seed_everything(self.seed * 1000 + 777 + view)
        try:
            loader = DataLoader(dataset, batch_size=max(self.loaders[1].batch_size or 64, 1), shuffle=False)
            features, labels = [], []
            for xb, yb in loader:
                xb, yb = learn._to_device(xb, yb)
                with learn._autocast():
                    out = self.fixed(xb)
                features.append(out.float().cpu())
                labels.append(yb.cpu())
        finally:
            set_rng_state(saved)
        return torch.cat(features), torch.cat(labels)


def _size_of(dataset):
    size = getattr(dataset, "size", None)
    return size if isinstance(size, (int, list, tuple)) else None
