"""Errors a person can act on: raised with a message meant to be shown as is."""


class ConfigError(ValueError):
    """The run's configuration or its data cannot work; the message says why."""


class WeightsUnavailable(ConfigError):
    """Pretrained weights were asked for but are not on disk and cannot be downloaded."""


class WriteFailed(ConfigError):
    """A file of the run could not be written (most often a full disk); the file before it is kept.
    A ConfigError so that wherever a person's errors are shown, it is shown as is."""
