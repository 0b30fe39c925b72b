"""Every task's extra settings are declared (Task.settings_spec: type, default, range or choices,
help), and a config's extra is checked against them with a sentence naming the key."""

import types

import pytest

from trainers import RunConfig
from trainers.errors import ConfigError
from trainers.tasks import TASKS
from conftest import tiny_config


def bad_value(setting):
    if setting.choices:
        return "none-of-these"
    if setting.kind is bool:
        return "yes"
    if setting.kind in (int, float) and setting.low is not None:
        return setting.low - 1
    return [1]  # a list is no number and no string


@pytest.mark.parametrize("name", list(TASKS))
def test_each_declared_setting_has_help_a_valid_default_and_refuses_a_bad_value(name):
    task = TASKS[name]
    for setting in task.settings_spec:
        assert setting.help.endswith(".") and len(setting.help) > 15, setting
        assert setting.read({}) == setting.default  # the default passes its own check
        with pytest.raises(ConfigError, match=f"'extra.{setting.name}'"):
            setting.read({setting.name: bad_value(setting)})
    settings = task.read_settings(types.SimpleNamespace(extra={}))
    assert set(settings) == {s.name for s in task.settings_spec}


def test_run_config_validate_checks_extra_against_the_task(colour_data):
    with pytest.raises(ConfigError, match="'extra.flip' must be true or false"):
        RunConfig.from_dict(tiny_config(colour_data, extra={"flip": "no"})).validate()
    assert RunConfig.from_dict(tiny_config(colour_data, extra={"flip": False})).validate().extra == {"flip": False}
