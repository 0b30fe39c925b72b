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
    if setting.kind is list:
        return "a string"
    return [1]  # a list is no number and no string


@pytest.mark.parametrize("name", list(TASKS))
def test_each_declared_setting_has_help_a_valid_default_and_refuses_a_bad_value(name):
    task = TASKS[name]
    for setting in task.all_settings():
        assert setting.help.endswith(".") and len(setting.help) > 15, setting
        assert setting.read({}) == setting.default  # the default passes its own check
        with pytest.raises(ConfigError, match=f"'extra.{setting.name}'"):
            setting.read({setting.name: bad_value(setting)})
    settings = task.read_settings(types.SimpleNamespace(extra={}))
    assert set(settings) == {s.name for s in task.all_settings()}


def test_run_config_validate_checks_extra_against_the_task(colour_data):
    with pytest.raises(ConfigError, match="'extra.flip' must be true or false"):
        RunConfig.from_dict(tiny_config(colour_data, extra={"flip": "no"})).validate()
    assert RunConfig.from_dict(tiny_config(colour_data, extra={"flip": False})).validate().extra == {"flip": False}


def test_an_unknown_extra_key_is_refused_with_the_tasks_keys(colour_data):
    with pytest.raises(ConfigError) as caught:
        RunConfig.from_dict(tiny_config(colour_data, extra={"flipp": False})).validate()
    message = str(caught.value)
    assert message.startswith("'extra.flipp' is not a setting of the classify task; its settings are: ")
    assert "flip" in message and "activation_stats" in message and message.count(".") <= 3
