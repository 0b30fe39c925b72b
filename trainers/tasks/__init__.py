"""The task registry: each task registers itself under its name."""
from ..errors import ConfigError

TASKS = {}


def register(task_cls):
    TASKS[task_cls.name] = task_cls()
    return task_cls


def get_task(name: str):
    if name not in TASKS:
        raise ConfigError(f"Unknown task {name!r}. Available tasks: {', '.join(sorted(TASKS))}.")
    return TASKS[name]


from . import classify  # noqa: E402,F401  (registers itself)
from . import segment  # noqa: E402,F401
from . import restore  # noqa: E402,F401
from . import wgan  # noqa: E402,F401
from . import style  # noqa: E402,F401
from . import gan  # noqa: E402,F401
