"""Comparing generator outputs: the per-epoch GIF and the same epoch of several runs side by side,
as pure functions and through the launched studio."""
import numpy as np
import pytest
from PIL import Image, ImageSequence

from studio.animation import AnimationError, epochs_gif
from studio.compare import CompareError, grid_at, headed, side_by_side


def write_grids(folder, epochs, size=(96, 64)):
    """One grid per epoch, each a different flat colour, so frames can be told apart."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for epoch in epochs:
        path = folder / f"epoch_{epoch:03d}.png"
        Image.new("RGB", size, (40 * epoch % 256, 255 - 30 * epoch % 256, 90)).save(path)
        samples.append((epoch, str(path)))
    return samples


def frame_colours(path):
    """The colour below each frame's caption strip (its grid's colour), frame by frame."""
    with Image.open(path) as gif:
        return [tuple(np.asarray(f.convert("RGB"))[-5, -5]) for f in ImageSequence.Iterator(gif)], gif.size


def test_the_gif_has_one_frame_per_epoch_in_order(tmp_path):
    samples = write_grids(tmp_path / "run" / "samples", [1, 2, 3, 4])
    out = epochs_gif(samples, tmp_path / "run")
    colours, size = frame_colours(out)
    expected = [Image.open(p).getpixel((0, 0)) for _, p in samples]
    assert len(colours) == 4
    for got, want in zip(colours, expected):  # GIF palettes are exact for four flat colours
        assert np.abs(np.subtract(got, want)).max() <= 8, (got, want)
    assert size == (96, 64 + 20)  # the grid plus its caption strip
    assert out.is_relative_to(tmp_path / "run" / "animations")


def test_the_gif_is_reused_until_a_new_epoch_arrives_and_big_grids_are_scaled_down(tmp_path):
    run = tmp_path / "run"
    samples = write_grids(run / "samples", [1, 2], size=(2000, 1000))
    first = epochs_gif(samples, run)
    stamp = first.stat().st_mtime_ns
    assert epochs_gif(samples, run) == first and first.stat().st_mtime_ns == stamp
    more = samples + write_grids(run / "samples", [3], size=(2000, 1000))
    second = epochs_gif(more, run)
    assert second != first and not first.exists()  # the old animation is replaced, not kept
    colours, size = frame_colours(second)
    assert len(colours) == 3 and max(size) <= 768


def test_a_run_without_grids_cannot_be_animated(tmp_path):
    with pytest.raises(AnimationError, match="no sample grids yet"):
        epochs_gif([], tmp_path)
    with pytest.raises(AnimationError, match="no sample grids yet"):
        epochs_gif([(1, str(tmp_path / "gone.png"))], tmp_path)


def test_side_by_side_picks_each_runs_epoch_or_says_what_it_shows(tmp_path):
    long = write_grids(tmp_path / "long", [1, 2, 3, 4, 5])
    short = write_grids(tmp_path / "short", [1, 2])
    sparse = write_grids(tmp_path / "sparse", [2, 4])
    items = side_by_side([("long", long), ("short", short), ("sparse", sparse)], 3)
    assert [p for p, _ in items] == [long[2][1], short[1][1], sparse[0][1]]
    assert items[0][1] == "long · epoch 3"
    assert items[1][1] == "short · epoch 2 (its last; it has no epoch 3)"
    assert items[2][1] == "sparse · epoch 2 (nearest before epoch 3)"
    assert grid_at(sparse, 1)[0] == 2 and "its first" in grid_at(sparse, 1)[2]


def heading_and_grid(image, grid_height):
    pixels = np.asarray(image.convert("RGB")).astype(int)
    return pixels[: pixels.shape[0] - grid_height], pixels[pixels.shape[0] - grid_height :]


def test_each_compared_grid_carries_its_run_and_epoch_in_the_picture(tmp_path):
    """A heading over the grid, in the picture itself (downloaded or full screen it still says
    which run and epoch it is), at least 18 px high; the grid below it untouched."""
    (_, path), = write_grids(tmp_path / "g", [3], size=(900, 200))
    page = headed(path, "gan a (x1y2) · epoch 3")
    heading, grid = heading_and_grid(page, 200)
    assert page.width == 900 and heading.shape[0] >= 18 + 12
    assert (grid == np.asarray(Image.open(path).convert("RGB"))).all()
    assert (heading.max(axis=2) > 200).sum() > 100  # the words, light on dark
    blank, _ = heading_and_grid(headed(path, ""), 200)
    assert (blank.max(axis=2) > 200).sum() == 0


@pytest.mark.parametrize("count, message", [(1, "Choose 2 to 4 runs"), (5, "Choose 2 to 4 runs")])
def test_side_by_side_wants_two_to_four_runs(tmp_path, count, message):
    samples = write_grids(tmp_path / "g", [1])
    with pytest.raises(CompareError, match=message):
        side_by_side([(f"run{i}", samples) for i in range(count)], 1)


def test_side_by_side_names_a_run_without_grids(tmp_path):
    samples = write_grids(tmp_path / "g", [1])
    with pytest.raises(CompareError, match="empty has no sample grids yet"):
        side_by_side([("full", samples), ("empty", [])], 1)


def test_only_training_runs_with_grids_are_offered_for_comparison(tmp_path):
    from studio.ui.runs_tab import grid_run_choices

    grids = {"a": write_grids(tmp_path / "a", [1, 2, 3]), "b": write_grids(tmp_path / "b", [1]), "c": [], "f": [(1, "x")]}
    records = [{"id": "a", "name": "gan a", "kind": "train"}, {"id": "b", "name": "wgan", "kind": "train"},
               {"id": "c", "name": "empty", "kind": "train"}, {"id": "f", "name": "finder", "kind": "lr_find"}]
    assert grid_run_choices(records, lambda rid: grids[rid]) == [("gan a · a (3 epochs)", "a"), ("wgan · b (1 epoch)", "b")]


def test_gif_and_comparison_through_the_launched_studio(tmp_path):
    from gradio_client import Client

    import app
    from studio.ui import build_app

    args = app.parse_args(["--workspace", str(tmp_path / "workspace"), "--max-runs", "1"])
    ctx = app.open_context(args)
    ids = []
    for name, epochs in (("gan a", [1, 2, 3]), ("gan b", [1, 2]), ("no grids", [])):
        record = ctx.store.create_run({"task": "wgan", "data": "blobs"}, name=name)
        for epoch, path in write_grids(ctx.workspace.run_dir(record["id"]) / "samples", epochs):
            ctx.store.add_sample(record["id"], epoch, path)
        ids.append(record["id"])
    demo = build_app(ctx)
    demo.queue().launch(**app.launch_options(args, ctx, share=False))  # the files it may serve, as the app's
    try:
        client = Client(demo.local_url, verbose=False)
        gif = client.predict(ids[0], api_name="/samples_gif")
        assert len(frame_colours(gif)[0]) == 3
        gallery = client.predict(ids[:2], 3, api_name="/compare_samples")
        assert [item["caption"] for item in gallery] == [
            f"gan a ({ids[0][-4:]}) · epoch 3", f"gan b ({ids[1][-4:]}) · epoch 2 (its last; it has no epoch 3)"]
        with Image.open(gallery[0]["image"]) as shown:  # the grid under its heading, as a PNG
            assert shown.format == "PNG" and shown.width == 96 and shown.height > 64 + 18
        with pytest.raises(Exception, match="no sample grids yet"):
            client.predict(ids[2], api_name="/samples_gif")
        with pytest.raises(Exception, match="Choose 2 to 4 runs"):
            client.predict(ids[:1], 1, api_name="/compare_samples")
    finally:
        demo.close()
