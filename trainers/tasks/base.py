"""What every task provides: a builder from RunConfig to the parts of a training run."""
from dataclasses import dataclass, field
from typing import Callable

from torch import nn
from torch.utils.data import Dataset


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

    def own_fit(self, config):
        """A loop of this task's own for `config`: a function taking fit()'s arguments and
        returning its RunResult (the GANs, Gatys style transfer); None: the Learner trains it."""
        return None

    def validate(self, config) -> None:
        """Raise ConfigError when the data cannot feed this task."""

    def build(self, config, device) -> TaskParts:
        raise NotImplementedError
