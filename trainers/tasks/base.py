"""What every task provides: a builder from RunConfig to the parts of a training run."""
from dataclasses import dataclass, field
from typing import Callable

from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError


@dataclass
class TaskParts:
    model: nn.Module
    train_ds: Dataset
    valid_ds: Dataset
    loss_fn: Callable
    metrics: list
    monitor: str                      # metric that picks best.pt
    higher_is_better: bool
    sample_fn: Callable               # model -> PIL image of fixed validation items
    info: dict = field(default_factory=dict)  # classes, normalisation... (kept in checkpoints)


class Task:
    name = ""
    default_monitor = "valid_loss"
    # Settings this task starts from where a config leaves them out; RunConfig's field defaults
    # fill the rest (a GAN wants a far lower lr than a classifier, for instance).
    defaults: dict = {}
    # Where defaults leave lr null: the rate the task uses instead, in words for a form's hint.
    own_lr = ""
    # The time budget a form starts this task with (seconds; None: no limit, the epochs decide).
    # Only tasks whose runs are short enough for a one-minute start on a CPU set one.
    form_budget_s = None

    # --- what the studio needs to know (it iterates the registry and names no task) ---------
    # dataset.json kinds this task trains on; the Train tab guesses the first task claiming a kind.
    dataset_kinds: tuple = ()
    # Try: which of the tab's answer views shows a result ("classes", "overlay", "before_after",
    # "drawn", "stylised"), which inputs it reads ("picture", "k", "opacity", "seed", "count"),
    # the button's word and a sentence saying what to give it.
    try_view = ""
    try_inputs: tuple = ("picture",)
    try_button = "Predict"
    try_about = ""
    # Share: whether a bundle (TorchScript, ONNX, metadata) and a standalone demo can be made.
    exports = False
    # Inspect: which inspections apply ("summary", "activations", "features", "heatmap",
    # "interpretation"); the heatmap needs class scores, the interpretation a classifier.
    inspections: tuple = ("summary", "activations", "features")

    def model_from_checkpoint(self, config: dict, info: dict) -> nn.Module:
        """The network this task trained, built from a checkpoint's config and info, without any
        pretrained download (the checkpoint's weights are loaded next)."""
        raise ConfigError(f"Runs of the {self.name!r} task have no network to load.")

    def checkpoint_problem(self, info: dict) -> str:
        """Why a checkpoint with this info cannot serve as a model ("" when it can)."""
        return ""

    def smoke_config(self, data: str, train) -> dict:
        """The smallest config that trains this task for an epoch on `data`, a tiny dataset of one
        of its dataset_kinds: what the registry's contract test runs for every task (as timm's
        model configs carry their test input size). `train(config)` trains a run this one needs
        first and returns its folder."""
        return {"task": self.name, "data": str(data), "epochs": 1, "batch_size": 4, "image_size": 32, "lr": 1e-3,
                "freeze_epochs": 0, "pretrained": False, "sample_count": 2, "augment": False}

    def own_fit(self, config):
        """A loop of this task's own for `config`: a function taking fit()'s arguments and
        returning its RunResult (the GANs, Gatys style transfer); None: the Learner trains it."""
        return None

    def validate(self, config) -> None:
        """Raise ConfigError when the data cannot feed this task."""

    def build(self, config, device) -> TaskParts:
        raise NotImplementedError


def extra_number(config, key, default, kind=float, low=None):
    value = config.extra.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"'extra.{key}' must be a {'whole ' if kind is int else ''}number, not {value!r}.")
    if low is not None and value < low:
        raise ConfigError(f"'extra.{key}' must be at least {low}, not {value!r}.")
    return kind(value)


def own_loop_only(task_name):
    raise ConfigError(f"The {task_name} task trains with a loop of its own; the learning-rate finder does not "
                      f"apply to it: give 'lr' a value (or null for the task's default).")
