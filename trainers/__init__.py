"""Darkroom's training library: pure PyTorch, readable, used by the studio and the CLI."""
from .config import RunConfig
from .errors import ConfigError, WeightsUnavailable
from .fit import find_lr, fit
from .learner import Learner
from .reporting import ConsoleReporter, Reporter
from .run_harness import RunResult

__all__ = ["RunConfig", "ConfigError", "WeightsUnavailable", "fit", "find_lr", "Learner", "Reporter", "ConsoleReporter", "RunResult"]
