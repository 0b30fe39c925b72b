"""The tasks: importing this package registers every task (registry.py holds them by name)."""
from .registry import TASKS, get_task, register  # noqa: F401

from . import classify  # noqa: E402,F401  (registers itself)
from . import segment  # noqa: E402,F401
from . import restore  # noqa: E402,F401
from . import gan  # noqa: E402,F401
from . import wgan  # noqa: E402,F401
from . import style  # noqa: E402,F401
