"""The task registry (timm's pattern): each task module registers its Task under its name.

A leaf module: trainers.tasks imports every task module, which fills TASKS as it loads."""

from ..errors import ConfigError

TASKS = {}


def register(task_cls):
    TASKS[task_cls.name] = task_cls()
    return task_cls


def get_task(name: str):
    if name not in TASKS:
        raise ConfigError(f"Unknown task {name!r}. Available tasks: {', '.join(sorted(TASKS))}.")
    return TASKS[name]
