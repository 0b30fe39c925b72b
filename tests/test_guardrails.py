"""Memory guardrails, the rehearsal's time estimate and time budgets, on tiny real runs."""
import json
import statistics
import time

import pytest
import torch

from conftest import tiny_config, write_colour_classes
from trainers import ConfigError, fit
from trainers.budget import MAX_BUDGET_EPOCHS, plan_epochs
from trainers.fit import estimate_run
from trainers.memory import OutOfMemory
from trainers.reporting import Reporter


class FakeOOM:
    """A forward hook on the stem that raises CUDA's out-of-memory error for batches larger
    than `fits`, as a GPU too small for them would."""

    def __init__(self, fits):
        self.fits, self.raised, self.seen = fits, 0, []

    def __call__(self, module, inputs, output):
        n = inputs[0].shape[0]
        self.seen.append(n)
        if n > self.fits:
            self.raised += 1
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")


@pytest.fixture
def hooked_stem(monkeypatch):
    """Every ResNetClassifier built in the test gets a FakeOOM on its first convolution."""
    from trainers.models import resnet

    hooks = []
    original = resnet.ResNetClassifier.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        hook = FakeOOM(hooks_fit[0])
        self.body[0].register_forward_hook(hook)
        hooks.append(hook)

    hooks_fit = [4]
    monkeypatch.setattr(resnet.ResNetClassifier, "__init__", init)
    return hooks, hooks_fit


def test_out_of_memory_halves_the_batch_and_the_run_completes(tmp_path, hooked_stem, one_thread):
    hooks, _ = hooked_stem
    data = write_colour_classes(tmp_path / "c", per_class=12, size=32)
    out = tmp_path / "run"
    # Batches of 8 train and of 16 validate; the "device" holds 4 images at a time.
    result = fit(tiny_config(data, epochs=2, batch_size=8), out)
    assert result["status"] == "completed" and result["epochs_done"] == 2
    hook = hooks[0]
    assert hook.raised >= 2 and max(n for n in hook.seen[-10:]) <= 4
    log = (out / "log.txt").read_text()
    assert "out of memory while training: the model now sees batches of 4" in log
    assert "out of memory while validating: the model now sees batches of" in log
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[-1]["train_loss"] < rows[0]["train_loss"] * 1.5


def test_when_one_image_does_not_fit_one_sentence_names_the_setting(tmp_path, hooked_stem, one_thread):
    hooks, fits = hooked_stem
    fits[0] = 0
    data = write_colour_classes(tmp_path / "c", per_class=6, size=32)
    with pytest.raises(OutOfMemory) as info:
        fit(tiny_config(data, epochs=1, batch_size=4), tmp_path / "run")
    assert isinstance(info.value, ConfigError)
    assert "even one image" in str(info.value) and "'image_size' (now 32 px)" in str(info.value)
    assert not (tmp_path / "run" / "checkpoints").exists()  # it stopped before the first step


class EpochClock(Reporter):
    """When each epoch is reported: after its checkpoints and sample grid are written, so the time
    between two reports is a whole epoch as a run spends it (the metrics' own "seconds" stop
    before that work, which the estimate counts)."""

    def __init__(self):
        self.at = []

    def epoch(self, metrics):
        self.at.append(time.perf_counter())


def test_estimate_lies_within_a_factor_of_two_of_the_epoch(tmp_path, one_thread):
    data = write_colour_classes(tmp_path / "c", per_class=24, size=32)
    config = tiny_config(data, epochs=4, batch_size=8, extra={"activation_stats": False})
    estimate = estimate_run(config)
    assert estimate["epochs"] == 4 and estimate["batches_per_epoch"] == 7
    clock = EpochClock()
    result = fit(config, tmp_path / "run", reporter=clock)
    seconds = statistics.median(b - a for a, b in zip(clock.at, clock.at[1:]))
    assert 0.5 <= estimate["epoch_s"] / seconds <= 2, (estimate, seconds)
    assert result["estimate_s"] > 0 and result["seconds"] > 0  # both kept in the run's result


def test_a_budget_plans_whole_epochs_after_setup_within_its_cap():
    assert plan_epochs(10, setup_s=2, epoch_s=1) == 8
    assert plan_epochs(10, setup_s=12, epoch_s=1) == 1  # at least one epoch
    assert plan_epochs(3600, setup_s=0, epoch_s=0.01) == MAX_BUDGET_EPOCHS


def test_a_budget_sets_the_epochs_from_the_rehearsal(tmp_path, one_thread):
    data = write_colour_classes(tmp_path / "c", per_class=8, size=32)
    out = tmp_path / "run"
    # 500 epochs lie beyond any budget's cap, so the saved epochs can only be the budget's choice
    # (how many fit in 10 s depends on the machine: a fast one reaches the cap).
    result = fit(tiny_config(data, epochs=500, batch_size=8, budget_s=10), out)
    saved = json.loads((out / "config.json").read_text())
    assert result["epochs_done"] == saved["epochs"] and 1 <= saved["epochs"] <= MAX_BUDGET_EPOCHS
    assert "budget about 0:10" in (out / "log.txt").read_text()
    with pytest.raises(ConfigError, match="'budget_s' must be between"):
        fit(tiny_config(data, budget_s=1), out)
