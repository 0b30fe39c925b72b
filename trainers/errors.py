"""Errors a person can act on: raised with a message meant to be shown as is."""


class ConfigError(ValueError):
    """The run's configuration or its data cannot work; the message says why."""


class WeightsUnavailable(ConfigError):
    """Pretrained weights were asked for but are not on disk and cannot be downloaded."""
