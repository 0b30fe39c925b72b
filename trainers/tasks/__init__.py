"""The tasks: importing this package registers every task (registry.py holds them by name)."""
from .registry import TASKS, get_task, register  # noqa: F401

from . import classify  # noqa: E402,F401  (registers itself)
from . import segment  # noqa: E402,F401
from . import restore  # noqa: E402,F401
from . import gan  # noqa: E402,F401
from . import wgan  # noqa: E402,F401
from . import style  # noqa: E402,F401


def settings_for_data(config: dict) -> dict:
    """{image_size, batch_size, native_side, train_count} that fit `config`'s dataset, for its
    task (Task.sizes_for_data, data_fit.py); {} for a task that keeps its own sizes. Raises
    ConfigError when the data cannot be read."""
    from ..config import RunConfig

    base = RunConfig.from_dict(config)
    found = getattr(get_task(base.task), "sizes_for_data", None)
    return found(base) if found else {}
