import json

import pytest

from trainers import ConfigError, RunConfig
from conftest import tiny_config, write_colour_classes


def test_round_trip_through_json(tmp_path, colour_data):
    config = RunConfig.from_dict(tiny_config(colour_data, lr=None))
    config.save(tmp_path / "c.json")
    again = RunConfig.load(tmp_path / "c.json")
    assert again == config and again.lr is None


@pytest.mark.parametrize("changes, message", [
    ({"task": "paint"}, "Unknown task 'paint'"),
    ({"arch": "vgg11"}, "Unknown architecture 'vgg11'"),
    ({"batch_size": 500}, "larger than the training set"),
    ({"epochs": 0}, "'epochs' must be at least 1"),
    ({"lr": -1.0}, "'lr' must be a positive learning rate"),
    ({"image_size": 4}, "'image_size' must be between 16 and 2048"),
    ({"valid_pct": 1.5}, "'valid_pct' must be a fraction"),
])
def test_bad_settings_fail_with_a_readable_message(colour_data, changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig.from_dict(tiny_config(colour_data, **changes)).validate()


def test_missing_dataset_folder():
    with pytest.raises(ConfigError, match="Dataset folder not found: /nowhere/at/all"):
        RunConfig.from_dict(tiny_config("/nowhere/at/all")).validate()


def test_unknown_key_and_wrong_types(colour_data):
    with pytest.raises(ConfigError, match="Unknown setting\\(s\\): colour"):
        RunConfig.from_dict({**tiny_config(colour_data), "colour": 1})
    with pytest.raises(ConfigError, match="'epochs' must be a whole number"):
        RunConfig.from_dict(tiny_config(colour_data, epochs="3"))
    with pytest.raises(ConfigError, match="'pretrained' must be true, false or"):
        RunConfig.from_dict(tiny_config(colour_data, pretrained=1))
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json("{task: classify}")


def test_dataset_problems_are_named(tmp_path):
    data = write_colour_classes(tmp_path / "d", classes=("red", "blue"))
    (data / "green").mkdir()
    with pytest.raises(ConfigError, match="These classes have no images: green"):
        RunConfig.from_dict(tiny_config(data)).validate()
    single = write_colour_classes(tmp_path / "s", classes=("red",))
    with pytest.raises(ConfigError, match="Only one class \\(red\\)"):
        RunConfig.from_dict(tiny_config(single)).validate()
    (tmp_path / "e").mkdir()
    with pytest.raises(ConfigError, match="No class folders found"):
        RunConfig.from_dict(tiny_config(tmp_path / "e")).validate()


def test_wrong_dataset_kind(tmp_path, colour_data):
    (colour_data / "dataset.json").write_text(json.dumps({"kind": "segment"}))
    with pytest.raises(ConfigError, match="is a 'segment' dataset, not one for classify"):
        RunConfig.from_dict(tiny_config(colour_data)).validate()


def test_split_by_folder_and_by_seed(tmp_path):
    from trainers.data import scan_labelled_folder

    data = write_colour_classes(tmp_path / "a", per_class=10)
    classes, train, valid = scan_labelled_folder(data, 0.2, seed=1)
    assert classes == ["blue", "green", "red"] and len(valid) == 6 and len(train) == 24
    assert scan_labelled_folder(data, 0.2, seed=1)[2] == valid
    assert scan_labelled_folder(data, 0.2, seed=2)[2] != valid
    split = tmp_path / "b"
    write_colour_classes(split / "train", per_class=6)
    write_colour_classes(split / "valid", per_class=2)
    classes, train, valid = scan_labelled_folder(split, 0.2, seed=1)
    assert len(train) == 18 and len(valid) == 6 and all("valid" in str(p) for p, _ in valid)


def test_a_task_starts_from_its_own_defaults_and_a_given_value_wins():
    """A GAN left without an lr gets its task's (null: 1e-4), not a classifier's 3e-3 at which its
    critic stayed at chance; a given lr, even the classifier's, is kept."""
    assert RunConfig.from_dict({"task": "classify"}).lr == 0.003
    assert RunConfig.from_dict({"task": "gan"}).lr is None
    assert RunConfig.from_dict({"task": "gan", "lr": 0.003}).lr == 0.003
    wgan = RunConfig.defaults_for("wgan")
    assert wgan["lr"] is None and wgan["image_size"] == 64 and wgan["epochs"] == RunConfig().epochs
    assert RunConfig.defaults_for("classify") == RunConfig().to_dict()
    # An unknown or ill-typed task gets no task defaults, and validate() names the problem.
    with pytest.raises(ConfigError, match="Unknown task 'paint'"):
        RunConfig.from_dict({"task": "paint", "data": "."}).validate()
    with pytest.raises(ConfigError, match="task"):
        RunConfig.from_dict({"task": ["gan"]})
