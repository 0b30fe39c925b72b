"""RunConfig: everything a run needs, as one JSON-friendly dataclass.

Every key is documented in docs/CONFIG.md. `validate()` checks the config against its
data and answers in sentences a person can act on.
"""
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

from .constants import ARCHS, IMAGE_EXTS  # noqa: F401  (re-exported: older imports read them here)
# Whoever can start a run (a visitor of a shared studio too) writes its config into the store,
# which every list of runs reads back: no setting may be a novel, nor a number that is not one.
MAX_TEXT = 1000          # characters in any one text setting (a path, a metric name, a mode)
MAX_ITEMS = 200          # keys or list items at any one level of the config
MAX_DEPTH = 4


def check_plain(value, name: str = "config", depth: int = 0) -> None:
    """Refuse NaN and infinities (JSON's NaN/Infinity parse as floats), texts over MAX_TEXT and
    nesting or lists beyond reason, naming the setting."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"'{name}' must be a finite number, not {value}.")
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ConfigError(f"'{name}' is {len(value):,} characters long; settings take at most {MAX_TEXT:,}.")
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_DEPTH or len(value) > MAX_ITEMS:
            raise ConfigError(f"'{name}' is nested too deep or holds too many items.")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and len(key) > MAX_TEXT:
                raise ConfigError(f"A setting name in '{name}' is too long.")
            check_plain(item, key if depth == 0 and name == "config" else f"{name}.{key}", depth + 1)


def task_defaults(task) -> dict:
    """The settings a task starts from, for the ones a config leaves out (Task.defaults)."""
    from .tasks.registry import TASKS  # late: the registry fills as trainers.tasks imports its tasks

    found = TASKS.get(task) if isinstance(task, str) else None
    return dict(found.defaults) if found else {}  # an unknown task is reported by validate()


@dataclass
class RunConfig:
    task: str = "classify"
    data: str = ""
    arch: str = "resnet18"
    pretrained: bool | str = "auto"  # "auto": ImageNet weights when present or downloadable, else from scratch
    epochs: int = 3
    lr: float | None = 3e-3
    batch_size: int = 32
    image_size: int = 128
    freeze_epochs: int = 1
    seed: int = 42
    mixed_precision: bool = True
    num_workers: int = 0
    valid_pct: float = 0.2
    weight_decay: float = 0.01
    grad_clip: float | None = None
    augment: bool = True
    monitor: str = ""
    sample_count: int = 8
    budget_s: float | None = None  # seconds for the whole run: the epochs come from a measurement
    extra: dict = field(default_factory=dict)

    # --- reading and writing -------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        if not isinstance(d, dict):
            raise ConfigError("The config must be a JSON object (a dictionary of settings).")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            shown = ", ".join(str(k)[:40] for k in unknown[:5])  # a visitor may send any key
            raise ConfigError(f"Unknown setting(s): {shown}. Known settings: {', '.join(sorted(known))}.")
        check_plain(d)
        config = cls(**{**task_defaults(d.get("task", "classify")), **d})
        config._check_types()
        return config

    @classmethod
    def defaults_for(cls, task: str) -> dict:
        """Every setting a config of `task` gets when it gives none (what the Train tab shows)."""
        return cls.from_dict({"task": task}).to_dict()

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"The config is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.")
        return cls.from_dict(d)

    @classmethod
    def load(cls, path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file not found: {path}")
        return cls.from_json(path.read_text(encoding="utf-8"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    # --- checking ------------------------------------------------------------
    def _check_types(self) -> None:
        def want(name, types, label):
            value = getattr(self, name)
            # bool is an int in Python; a setting that wants a number should not take true/false.
            if isinstance(value, bool) and bool not in types:
                raise ConfigError(f"'{name}' must be {label}, not {json.dumps(value)}.")
            if not isinstance(value, types):
                raise ConfigError(f"'{name}' must be {label}, not {json.dumps(value, default=str)}.")

        want("task", (str,), "a task name")
        want("data", (str,), "the path of a dataset folder")
        want("arch", (str,), "an architecture name")
        if self.pretrained != "auto":
            want("pretrained", (bool,), 'true, false or "auto"')
        for name in ("epochs", "batch_size", "image_size", "freeze_epochs", "seed", "num_workers", "sample_count"):
            want(name, (int,), "a whole number")
        if self.lr is not None:
            want("lr", (int, float), "a number, or null to run the learning-rate finder")
            self.lr = float(self.lr)
        want("mixed_precision", (bool,), "true or false")
        want("augment", (bool,), "true or false")
        want("valid_pct", (int, float), "a fraction between 0 and 1")
        want("weight_decay", (int, float), "a number")
        if self.grad_clip is not None:
            want("grad_clip", (int, float), "a number, or null for no gradient clipping")
            self.grad_clip = float(self.grad_clip)
        want("monitor", (str,), "a metric name (or empty for the task's default)")
        want("extra", (dict,), "a JSON object")
        if self.budget_s is not None:
            want("budget_s", (int, float), "a number of seconds, or null for no limit")

    def validate(self) -> "RunConfig":
        """Check settings and data; raise ConfigError with a readable reason."""
        from .tasks.registry import get_task  # late: see task_defaults

        self._check_types()
        check_plain(self.to_dict())
        task = get_task(self.task)
        if self.epochs < 1:
            raise ConfigError("'epochs' must be at least 1.")
        if self.batch_size < 1:
            raise ConfigError("'batch_size' must be at least 1.")
        if not 16 <= self.image_size <= 2048:
            raise ConfigError("'image_size' must be between 16 and 2048 pixels.")
        if self.freeze_epochs < 0:
            raise ConfigError("'freeze_epochs' must be 0 or more.")
        if self.lr is not None and not 0 < self.lr < 10:
            raise ConfigError("'lr' must be a positive learning rate below 10 (e.g. 0.003), or null.")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError("'grad_clip' must be a positive gradient norm (e.g. 1.0), or null for no clipping.")
        if not 0 < self.valid_pct < 1:
            raise ConfigError("'valid_pct' must be a fraction between 0 and 1, e.g. 0.2.")
        if self.budget_s is not None and not 10 <= self.budget_s <= 7 * 24 * 3600:
            raise ConfigError("'budget_s' must be between 10 seconds and a week (or null: no limit, 'epochs' decides).")
        if self.num_workers < 0:
            raise ConfigError("'num_workers' must be 0 or more.")
        if not 0 <= self.weight_decay < 10:
            raise ConfigError("'weight_decay' must be a number from 0 to below 10 (e.g. 0.01).")
        if not self.data:
            raise ConfigError("'data' is empty: give the folder of a dataset.")
        if not Path(self.data).is_dir():
            raise ConfigError(f"Dataset folder not found: {self.data}")
        # The task's extra settings against their types, ranges and choices (Task.settings_spec),
        # then the task checks the data and the weights the run would use (no download here).
        task.read_settings(self)
        task.validate(self.with_pretrained(self.pretrained_here()))
        return self

    # --- pretrained weights --------------------------------------------------
    def pretrained_here(self) -> bool:
        """Whether the run would start from ImageNet weights, judged from this machine's cache
        alone ("auto" counts as true only when the weights file is there)."""
        if self.pretrained != "auto":
            return self.pretrained
        from .models.weights import weights_file

        try:
            return weights_file(self.arch).is_file()
        except Exception:  # an arch torchvision does not know: validate() names it
            return False

    def with_pretrained(self, used: bool) -> "RunConfig":
        """This config with "auto" replaced by what the run actually uses."""
        return dataclasses.replace(self, pretrained=bool(used))
