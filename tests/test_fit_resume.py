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
