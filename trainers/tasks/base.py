"""What every task provides: a builder from RunConfig to the parts of a training run."""

from dataclasses import dataclass, field
from typing import Callable

from torch import nn
from torch.utils.data import Dataset

from ..epoch_weights import DEFAULT_EVERY, DEFAULT_LIMIT_MB
from ..errors import ConfigError
from ..heldout import best_epoch


@dataclass(frozen=True)
class Setting:
    """One of a task's `extra` settings: its type, default, lower bound or choices, and a sentence
    of help. RunConfig.validate checks a config's extra against them; the Train tab builds a task's
    options from them (studio/ui/task_options.py) and docs read them."""

    name: str
    kind: type  # int, float, bool, str, or list (lists are set in a config file, not in a form)
    default: object
    help: str
    low: float | None = None  # numbers: the smallest value allowed
    choices: tuple = ()  # str: the values allowed
    optional: bool = False  # None is allowed (and means the default's behaviour)
    # --- how a form asks for it ---
    label: str = ""  # the field's name in a form; empty: the setting's name in words
    choice_labels: tuple = ()  # words for `choices`, in their order
    # Where the kind is not enough: "run" (the id of a completed run of a task in runs_of, whose
    # folder the run reads) or "picture" (a picture of the dataset or one uploaded for runs). Both
    # name files, so the studio resolves them inside its workspace before a run may read them.
    widget: str = ""
    runs_of: tuple = ()
    required: bool = False  # a form will not start a run without it
    when: tuple = ()  # (setting, value): it applies only while that setting has that value
    main: bool = False  # a form shows it at once, not folded under "More settings"

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def read(self, extra: dict):
        """The setting's value in `extra` (the default when absent), checked; a ConfigError that
        names the key otherwise."""
        value = extra.get(self.name, self.default)
        if value is None and (self.optional or self.default is None):
            return None
        key = f"'extra.{self.name}'"
        if self.choices:
            if value not in self.choices:
                allowed = " or ".join(f'"{c}"' for c in self.choices)
                raise ConfigError(f"{key} must be {allowed}, not {value!r}.")
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{key} must be true or false, not {value!r}.")
            return value
        if self.kind is list:
            if not isinstance(value, list):
                raise ConfigError(f"{key} must be a list, not {value!r}.")
            return value
        if self.kind in (int, float):
            whole = self.kind is int
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
                raise ConfigError(f"{key} must be a {'whole ' if whole else ''}number, not {value!r}.")
            if self.low is not None and value < self.low:
                raise ConfigError(f"{key} must be at least {self.low}, not {value!r}.")
            return self.kind(value)
        if not isinstance(value, self.kind):
            raise ConfigError(f"{key} must be a {self.kind.__name__}, not {value!r}.")
        return value


@dataclass
class TaskParts:
    model: nn.Module
    train_ds: Dataset
    valid_ds: Dataset
    loss_fn: Callable
    metrics: list
    monitor: str  # metric that picks best.pt
    higher_is_better: bool
    sample_fn: Callable  # model -> PIL image of fixed validation items
    info: dict = field(default_factory=dict)  # classes, normalisation... (kept in checkpoints)
    # (model, x) -> prediction in validation, where a plain model(x) is not how the task is used
    # (restore: whole pictures in tiles); valid_batch_size 1 for validation items of any size.
    infer: Callable | None = None
    valid_batch_size: int = 0
    heldout: object = None  # a HeldoutSet: pictures scored every epoch (trainers/heldout.py)


# Settings every run reads through its harness (trainers/run_harness.py: the epochs' weights),
# and keep_last, which the studio's worker reads when the run completes (studio/run_disk.py).
RUN_SETTINGS = (
    Setting(
        "keep_epochs_every", int, DEFAULT_EVERY, "Keep every n-th epoch's weights for the Runs tab (0: none).", low=0
    ),
    Setting(
        "epoch_weights_mb",
        float,
        DEFAULT_LIMIT_MB,
        "Disk budget of the kept epochs' weights (MB); past it the oldest go first.",
        low=0,
    ),
    Setting(
        "keep_last",
        bool,
        False,
        "Keep checkpoints/last.pt (the weights with the optimiser's state, which a resume reads) when the run "
        "completes; off: it is removed once best.pt holds the weights, which frees most of a run's disk.",
        label="Keep last.pt for resuming",
    ),
)
# ...and those every task trained by the Learner reads (trainers/fit.py).
LEARNER_SETTINGS = RUN_SETTINGS + (
    Setting("activation_stats", bool, True, "Record each layer's activation statistics for the Inspect tab."),
    Setting(
        "internals", bool, True, "Record heatmaps of fixed validation pictures every epoch (tasks with class scores)."
    ),
    Setting(
        "precise_bn",
        bool,
        None,
        "Recompute batch norm statistics with the final weights before each validation; left out: the task's choice.",
        optional=True,
    ),
    Setting(
        "checkpoint_minutes",
        float,
        10,
        "Save a checkpoint inside an epoch this often (minutes; 0: only at epoch ends).",
        low=0,
    ),
)


class Task:
    name = ""
    default_monitor = "valid_loss"
    # Settings this task starts from where a config leaves them out; RunConfig's field defaults
    # fill the rest (a GAN wants a far lower lr than a classifier, for instance).
    defaults: dict = {}
    # Where defaults leave lr null: the rate the task uses instead, in words for a form's hint.
    own_lr = ""
    # Whether the learning-rate finder applies (the Train tab offers its button; lr null asks it
    # at the start of a run). Where it does not, lr null means the task's default rate.
    lr_finder = True
    # The time budget a form starts this task with (seconds; None: no limit, the epochs decide).
    # Only tasks whose runs are short enough for a one-minute start on a CPU set one.
    form_budget_s = None
    # The `extra` settings this task reads (Setting: type, default, range or choices, help);
    # RunConfig.validate checks a config's extra against them before the task's own validate.
    settings_spec: tuple = ()
    # The settings of the loop that trains it, read outside the task (the Learner's by default;
    # a task with a loop of its own sets its own).
    common_settings: tuple = LEARNER_SETTINGS

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

    def suggest_epoch(self, record: dict) -> tuple:
        """(epoch, the rule in words): the epoch to keep from a run's held-out score record
        (trainers/heldout.py); (None, ...) before any epoch is scored."""
        return best_epoch(record), "highest mean held-out PSNR"

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
        return {
            "task": self.name,
            "data": str(data),
            "epochs": 1,
            "batch_size": 4,
            "image_size": 32,
            "lr": 1e-3,
            "freeze_epochs": 0,
            "pretrained": False,
            "sample_count": 2,
            "augment": False,
        }

    def parts(self, config, metrics: list, **fields) -> TaskParts:
        """TaskParts whose monitor is the config's metric (else the task's default), best when
        higher if that metric says so."""
        monitor = config.monitor or self.default_monitor
        higher = next((m.higher_is_better for m in metrics if m.name == monitor), False)
        return TaskParts(metrics=metrics, monitor=monitor, higher_is_better=higher, **fields)

    def all_settings(self) -> tuple:
        """Every `extra` setting a run of this task reads: its loop's, then its own."""
        return tuple(self.common_settings) + tuple(self.settings_spec)

    def read_settings(self, config) -> dict:
        """Every setting this task reads, from the config's extra, checked; a key it does not
        know is refused in one sentence that lists those it does."""
        settings = self.all_settings()
        known = {s.name for s in settings}
        unknown = [key for key in config.extra if key not in known]
        if unknown:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(
                f"'extra.{unknown[0]}' is not a setting of the {self.name} task; its settings are: {names}."
            )
        return {s.name: s.read(config.extra) for s in settings}

    def own_fit(self, config):
        """A loop of this task's own for `config`: a function taking fit()'s arguments and
        returning its RunResult (the GANs, Gatys style transfer); None: the Learner trains it."""
        return None

    def learner_callbacks(self, config, cache_dir=None) -> list:
        """Callbacks this task's runs add to the Learner (classify: precompute.py's `Precompute`);
        `cache_dir`: a folder that keeps computed activations across runs (None: memory only)."""
        return []

    def validate(self, config) -> None:
        """Raise ConfigError when the data cannot feed this task."""

    def build(self, config, device) -> TaskParts:
        raise NotImplementedError


def own_loop_only(task_name):
    raise ConfigError(
        f"The {task_name} task trains with a loop of its own; the learning-rate finder does not "
        f"apply to it: give 'lr' a value (or null for the task's default)."
    )
