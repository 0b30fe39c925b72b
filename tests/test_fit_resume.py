"""A run stopped after an epoch and resumed ends exactly where an uninterrupted run ends."""
import json

import pytest
import torch

from trainers import fit
from trainers.reporting import Reporter
from conftest import tiny_config, write_fake_weights


class StopAfterEpoch(Reporter):
    def __init__(self, epoch):
        self.stop_after, self.seen = epoch, 0

    def epoch(self, metrics):
        self.seen = metrics["epoch"]

    def should_stop(self):
        return self.seen >= self.stop_after


def final_weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


@pytest.mark.parametrize("pretrained", [False, True], ids=["scratch", "pretrained-phases"])
def test_stop_and_resume_matches_an_uninterrupted_run(tmp_path, colour_data, monkeypatch, pretrained):
    if pretrained:  # frozen phase (epoch 1) then unfrozen phase (epochs 2-3): resume crosses the boundary
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        write_fake_weights("resnet18")
    config = tiny_config(colour_data, epochs=3, pretrained=pretrained, freeze_epochs=1)
    whole = fit(config, tmp_path / "whole")
    assert whole["status"] == "completed" and whole["epochs_done"] == 3

    first = fit(config, tmp_path / "split", StopAfterEpoch(1))
    assert first["status"] == "stopped" and first["epochs_done"] == 1
    assert (tmp_path / "split" / "checkpoints" / "last.pt").is_file()
    second = fit(config, tmp_path / "split", resume=True)
    assert second["status"] == "completed" and second["epochs_done"] == 3

    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "split")
    # Same seed, same order of operations on one CPU thread pool: expected bit-identical;
    # allow float noise of 1e-6 in case a kernel picks a different reduction order.
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    rows = [json.loads(l) for l in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    whole_rows = [json.loads(l) for l in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert abs(rows[-1]["valid_loss"] - whole_rows[-1]["valid_loss"]) < 1e-5


def test_run_folder_holds_what_the_cli_promises(tmp_path, colour_data):
    result = fit(tiny_config(colour_data, epochs=2), tmp_path / "run")
    run = tmp_path / "run"
    assert (run / "config.json").is_file() and (run / "log.txt").is_file()
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"epoch", "train_loss", "valid_loss", "accuracy", "error_rate", "seconds"} <= set(rows[0])
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["metrics"]["accuracy"] == max(r["accuracy"] for r in rows) == result["best_metric"]
    assert best["info"]["classes"] == ["blue", "green", "red"]
    # best.pt is for using the model: its weights without the optimiser's state, which only
    # last.pt (the resume point) carries; Adam's moments would triple a U-Net's file.
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert "optimizer" not in best and "rng" not in best and last["optimizer"]["state"]
    assert (run / "checkpoints" / "best.pt").stat().st_size < (run / "checkpoints" / "last.pt").stat().st_size / 2


def test_lr_none_runs_the_finder_and_uses_its_suggestion(tmp_path, colour_data):
    result = fit(tiny_config(colour_data, epochs=1, lr=None), tmp_path / "run")
    assert 1e-7 < result["lr"] < 10
    assert "LR finder suggests" in (tmp_path / "run" / "log.txt").read_text()


class CheckpointBeforeReport(Reporter):
    """Asserts, every time an epoch is reported, that its checkpoint is already on disk."""

    def __init__(self, run_dir):
        self.last = run_dir / "checkpoints" / "last.pt"
        self.reported = []

    def epoch(self, metrics):
        saved = torch.load(self.last, weights_only=False)
        assert saved["epoch"] == metrics["epoch"] and not saved.get("batch"), (saved["epoch"], metrics)
        self.reported.append(metrics["epoch"])


def test_an_epoch_is_reported_only_after_its_checkpoint_is_written(tmp_path, colour_data, one_thread):
    reporter = CheckpointBeforeReport(tmp_path / "run")
    fit(tiny_config(colour_data, epochs=3), tmp_path / "run", reporter)
    assert reporter.reported == [1, 2, 3]


class StopAtBatch(Reporter):
    """Asks to stop before batch `batch` of epoch `epoch`: the run ends between batches, as a kill
    would leave it, with nothing written after the last time checkpoint."""

    def __init__(self, epoch, batch):
        self.at, self.now = (epoch, batch), (1, 0)

    def batch(self, epoch, batch, batches, loss, lr):
        self.now = (epoch, batch)

    def should_stop(self):
        epoch, batch = self.now
        return (epoch, batch + 1) == self.at


@pytest.mark.parametrize("stop_at", [(1, 3), (2, 2)], ids=["first-epoch", "second-epoch"])
def test_a_time_checkpoint_inside_an_epoch_resumes_to_the_same_weights(tmp_path, colour_data, one_thread, stop_at):
    # checkpoint_minutes tiny: a time checkpoint after every batch but an epoch's last.
    config = tiny_config(colour_data, epochs=2, extra={"checkpoint_minutes": 1e-9, "activation_stats": False})
    whole = fit(config, tmp_path / "whole")
    assert whole["status"] == "completed"

    first = fit(config, tmp_path / "split", StopAtBatch(*stop_at))
    assert first["status"] == "stopped"
    saved = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=False)
    assert (saved["epoch"], saved["batch"]) == (stop_at[0] - 1, stop_at[1] - 1)  # mid-epoch, not an epoch's end
    second = fit(config, tmp_path / "split", resume=True)
    assert second["status"] == "completed" and second["epochs_done"] == 2
    assert f"resuming after epoch {stop_at[0] - 1}, batch {stop_at[1] - 1}" in (tmp_path / "split" / "log.txt").read_text()

    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "split")
    # Same seed, same batches, same RNG after the skipped ones: bit-identical on one thread;
    # 1e-6 leaves room for a kernel choosing another reduction order.
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    rows = [json.loads(l) for l in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    whole_rows = [json.loads(l) for l in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "valid_loss"):  # the resumed epoch's mean counts the batches before the stop
        assert abs(rows[-1][key] - whole_rows[-1][key]) < 1e-5, key


def test_resume_without_a_checkpoint_starts_again_and_says_so(tmp_path, colour_data, one_thread):
    config = tiny_config(colour_data, epochs=1, extra={"checkpoint_minutes": 0})
    first = fit(config, tmp_path / "run", StopAtBatch(1, 2))
    assert first["status"] == "stopped" and not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    second = fit(config, tmp_path / "run", resume=True)
    assert second["status"] == "completed" and second["epochs_done"] == 1
    assert "starting again with the same settings" in (tmp_path / "run" / "log.txt").read_text()
    assert [json.loads(l)["epoch"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1]
