"""Fixed held-out pictures scored every epoch, the suggested best epoch, per-epoch weights on a
budget, and a pinned epoch for Try: on one tiny real restore run."""

import numpy as np
import pytest
import torch
from PIL import Image

from trainers import fit
from trainers.grid import TILE, caption_size
from trainers.epoch_weights import EpochWeights, epoch_file, kept_epochs, pin_epoch, pinned_epoch
from trainers.heldout import (
    best_epoch,
    gan_stop_epoch,
    input_path,
    mean_scores,
    output_path,
    picture_table,
    read_scores,
)
from test_restore import restore_config, write_pairs

pytestmark = pytest.mark.usefixtures("one_thread")
EPOCHS = 3


@pytest.fixture(scope="module")
def run(module_tmp):
    torch.set_num_threads(1)
    data = write_pairs(module_tmp / "pairs")
    run = module_tmp / "run"
    fit(
        restore_config(
            data,
            epochs=EPOCHS,
            batch_size=2,
            augment=False,
            sample_count=3,
            extra={"loss": "pixel", "keep_epochs_every": 1},
        ),
        run,
    )
    return run


def tile(grid, row, column, size=TILE):
    """One square picture of a sample grid (tiles of `size` px, a caption strip, 4 px padding)."""
    x, y = 4 + column * (size + 4), 4 + row * (size + caption_size(size) + 8 + 4)
    return np.asarray(grid.crop((x, y, x + size, y + size)))


def test_the_same_held_out_pictures_are_in_every_epochs_grid_and_score_table(run):
    record = read_scores(run)
    names = record["pictures"]
    assert len(names) == 3 and sorted(record["epochs"]) == ["1", "2", "3"]
    for epoch in range(1, EPOCHS + 1):
        rows = record["epochs"][str(epoch)]
        assert len(rows) == len(names) and all({"psnr", "ssim"} <= set(r) for r in rows)
        grid = Image.open(run / "samples" / f"epoch_{epoch:03d}.png").convert("RGB")
        for i in range(len(names)):
            shown_input = Image.open(input_path(run, i)).convert("RGB").resize((TILE, TILE), Image.NEAREST)
            output = Image.open(output_path(run, epoch, i)).convert("RGB")
            clean = Image.open(input_path(run, i, "targets")).convert("RGB")
            # the grid's row i shows held-out picture i: its input, this epoch's output, its clean picture
            assert np.array_equal(tile(grid, i, 0), np.asarray(shown_input))
            assert np.array_equal(tile(grid, i, 1), np.asarray(output.resize((TILE, TILE), Image.NEAREST)))
            assert np.array_equal(tile(grid, i, 2), np.asarray(clean.resize((TILE, TILE), Image.NEAREST)))
            # and the table's score is that output's PSNR against that clean picture (to PNG rounding)
            a, b = (torch.from_numpy(np.asarray(im, np.float32) / 255) for im in (output, clean))
            psnr = (10 * torch.log10(1 / ((a - b) ** 2).mean())).item()
            assert abs(rows[i]["psnr"] - psnr) < 0.05
    headers, table = picture_table(record)
    assert headers == ["picture", "input", "epoch 1", "epoch 2", "epoch 3"]
    assert [r[0] for r in table] == names and all(r[3][-1] in "+-=" for r in table)


def test_the_suggested_best_epoch_is_the_argmax_of_the_recorded_scores(run):
    record = read_scores(run)
    means = {e: np.mean([r["psnr"] for r in rows]) for e, rows in record["epochs"].items()}
    assert best_epoch(record) == int(max(means, key=means.get))
    made_up = {
        "pictures": ["a", "b"],
        "score": "psnr",
        "epochs": {
            "1": [{"psnr": 20}, {"psnr": 22}],
            "2": [{"psnr": 25}, {"psnr": 21.7}],
            "3": [{"psnr": 24}, {"psnr": 24}],
            "4": [{"psnr": 23}, {"psnr": 23.5}],
        },
    }
    assert mean_scores(made_up) == {1: 21, 2: 23.35, 3: 24, 4: 23.25}
    assert best_epoch(made_up) == 3
    assert best_epoch(made_up, "ssim") is None
    # a GAN stops at the first epoch within 0.1 dB of the best score, or with a looser tolerance earlier
    assert gan_stop_epoch(made_up) == 3 and gan_stop_epoch(made_up, tolerance=0.8) == 2
    # the Runs tab asks the run's task which rule applies: the argmax, or a GAN's stopping rule
    from studio.epochs import suggestion
    from trainers.tasks import get_task

    assert suggestion(run, "restore")["epoch"] == best_epoch(record)
    assert get_task("restore").suggest_epoch(made_up)[0] == 3
    epoch, rule = get_task("gan").suggest_epoch(
        {**made_up, "epochs": {k: v for k, v in made_up["epochs"].items() if k != "3"}}
    )
    assert epoch == 2 and rule.startswith("GAN rule")


def test_every_epochs_weights_are_kept_within_the_budget(run):
    assert kept_epochs(run) == [1, 2, 3]
    saved = torch.load(epoch_file(run, 2), weights_only=False)
    assert saved["epoch"] == 2 and "optimizer" not in saved and saved["task"] == "restore"
    size = epoch_file(run, 1).stat().st_size
    # Room for two files: the oldest goes, but never the best or pinned epoch, nor the newest.
    keeper = EpochWeights(run, every=1, limit_bytes=int(size * 2.5))
    keeper.best_epoch = 1
    keeper.enforce_budget(3)
    assert kept_epochs(run) == [1, 3]


def test_a_pinned_epochs_try_output_equals_that_epochs_weights_loaded_directly(run):
    from studio.checkpoints import build_model, cached_checkpoint
    from studio.ui.try_tab import before_after_view

    epoch = 3
    pin_epoch(run, epoch)
    assert pinned_epoch(run) == epoch
    loaded = cached_checkpoint(run)
    assert loaded.path == epoch_file(run, epoch)
    photo = Image.open(input_path(run, 0, "targets"))
    (_, tried), _ = before_after_view(loaded, photo)

    state = torch.load(epoch_file(run, epoch), weights_only=False)
    model = build_model("restore", state["config"], state["info"]).eval()
    model.load_state_dict(state["model"])
    with torch.inference_mode():
        direct = model(loaded.preprocess(photo)).float()[0].clamp(0, 1)
    expected = (direct.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    assert np.array_equal(np.asarray(tried), expected)
    # and it differs from the best.pt that Try would use unpinned (else the test proves nothing)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    if best["epoch"] != epoch:
        assert any(not torch.equal(best["model"][k], state["model"][k]) for k in state["model"])
    pin_epoch(run, None)
    assert cached_checkpoint(run).path.name == "best.pt"


def test_a_wipe_of_an_epoch_with_itself_has_a_zero_difference_map(run):
    from studio.epochs import EpochsError, wipe

    name = read_scores(run)["pictures"][1]
    a, b, diff, note = wipe(run, 2, run, 2, name)
    assert a.size == b.size == diff.size and np.asarray(diff).max() == 0 and "identical" in note
    a, b, diff, note = wipe(run, 1, run, EPOCHS, name)  # training moved the weights: a visible difference
    assert not np.array_equal(np.asarray(a), np.asarray(b)) and np.asarray(diff).max() > 0 and "differ" in note
    with pytest.raises(EpochsError, match="no held-out picture named"):
        wipe(run, 1, run, 1, "not-a-picture")
    with pytest.raises(EpochsError, match="no output of epoch 9"):
        wipe(run, 9, run, 1, name)


def test_runs_line_up_by_optimiser_step():
    from studio.compare import epoch_at_step, side_by_side_at_step

    assert epoch_at_step(12, 4, [1, 2, 3, 4]) == 3 and epoch_at_step(13, 4, [1, 2, 3, 4]) == 3
    assert epoch_at_step(2, 4, [1, 2]) == 1 and epoch_at_step(100, 4, [1, 2]) == 2
    import tempfile
    import pathlib

    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for e in (1, 2, 3, 4):
            paths[e] = pathlib.Path(folder) / f"{e}.png"
            paths[e].write_bytes(b"png")
        # run a: 10 batches an epoch; run b: 5. At step 20, a has done 2 epochs and b 4.
        items = side_by_side_at_step(
            [("a", [(e, paths[e]) for e in (1, 2, 3)], 10), ("b", [(e, paths[e]) for e in (1, 2, 3, 4)], 5)], 20
        )
    assert [i[1].split(" (")[0] for i in items] == ["a · epoch 2", "b · epoch 4"]


def test_classify_runs_keep_heatmaps_and_activation_summaries_per_epoch(tmp_path, colour_data):
    from conftest import tiny_config
    from trainers.internals import internals_path, read_summary

    fit(tiny_config(colour_data, epochs=2), tmp_path / "run")
    for epoch in (1, 2):
        heatmaps = Image.open(internals_path(tmp_path / "run", epoch))
        assert heatmaps.width > 3 * 128  # one tile per fixed validation picture
        summary = read_summary(tmp_path / "run", epoch)
        assert summary["epoch"] == epoch and set(summary["predicted"]) <= {"red", "blue", "green"}
        assert len(summary["stats"]) > 3 and all(s["std"] > 0 for s in summary["stats"].values())
