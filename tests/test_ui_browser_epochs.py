"""The Runs tab in a real headless Chromium on a restore run of three epochs: the wipe slider and
the epoch slider move, and an epoch is pinned for Try, Export and Share."""

import json
import re

import pytest

from browser import browser_page, kill_leftover_workers, needs_chromium
from test_restore import write_pairs
from test_ui_api import Studio, wait_status

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def restored(module_tmp):
    """A studio process with one completed restore run of three epochs."""
    root = module_tmp / "workspace"
    write_pairs(root / "datasets" / "pairs", n=12)
    studio = Studio(root, root.parent / "studio.log")
    try:
        config = {
            "task": "restore",
            "data": "pairs",
            "arch": "resnet18",
            "epochs": 3,
            "batch_size": 4,
            "image_size": 32,
            "lr": 3e-3,
            "pretrained": False,
            "augment": False,
            "sample_count": 2,
            "extra": {"loss": "pixel"},
        }
        run_id = studio.call("/start_run", json.dumps(config), "restore in three")
        wait_status(studio, run_id, lambda s: s["status"] == "completed", "completed")
        yield studio, run_id, root / "runs" / run_id
    finally:
        studio.close()
        kill_leftover_workers(root)


def src(page, selector):
    return page.locator(selector).first.get_attribute("src")


def test_wipe_and_epoch_sliders_move_and_an_epoch_is_pinned(restored):
    studio, run_id, run_dir = restored
    with browser_page(studio.url) as page:
        page.get_by_role("tab", name="Runs", exact=True).click()
        page.get_by_label("Run", exact=True).click()
        page.get_by_role("option", name=re.compile(re.escape(run_id))).click()
        page.locator("#epoch-suggested").get_by_text("Suggested epoch").wait_for()
        wipe = page.locator("#epoch-wipe")
        wipe.locator("img").nth(1).wait_for(state="attached")
        wipe.scroll_into_view_if_needed()  # its pictures load lazily, once in view
        page.locator("#epoch-wipe-note").get_by_text("identical").wait_for()  # A = B = (this run, epoch 3)
        before = {"wipe": src(page, "#epoch-wipe img"), "grid": src(page, "#runs-grid img")}

        # The wipe: drag its handle from the middle to the left quarter; B's clip moves with it.
        # (The comparison may still be redrawn by the run's choice, which recentres the handle:
        # drag again until the move holds.)
        shown_b = wipe.locator("[data-testid=imageslider-image]").nth(1)
        clip = lambda: shown_b.evaluate("el => el.style.clipPath")  # noqa: E731
        start = clip()
        assert "50%" in start
        for _ in range(5):
            wipe.get_by_test_id("slider").scroll_into_view_if_needed()  # the mouse acts on what is in view
            handle = wipe.get_by_test_id("slider").bounding_box()
            image = wipe.locator("[data-testid=imageslider-image]").first.bounding_box()
            y = handle["y"] + handle["height"] / 2
            page.mouse.move(handle["x"] + handle["width"] / 2, y)
            page.mouse.down()
            page.mouse.move(image["x"] + image["width"] / 4, y, steps=8)
            page.mouse.up()
            page.wait_for_timeout(1500)
            if clip() != start:
                break
        assert clip() != start and "50%" not in clip()

        # The epoch slider: back to epoch 1; the grid and the wipe's A follow it.
        number = page.locator("#runs-epoch input[type=number]")
        number.fill("1")
        number.press("Enter")
        page.wait_for_function(
            "([sel, old]) => { const i = document.querySelector(sel); return i && i.src !== old; }",
            arg=["#runs-grid img", before["grid"]],
        )
        page.locator("#epoch-wipe-note").get_by_text("differ").wait_for()  # epoch 1 against epoch 3
        assert src(page, "#epoch-wipe img") != before["wipe"]

        # Pin epoch 1 for Try, Export and Share.
        page.locator("#pin-epoch").click()
        page.locator("#epoch-suggested").get_by_text("pinned for Try, Export and Share: epoch 1").wait_for()
        assert json.loads((run_dir / "pinned.json").read_text()) == {"epoch": 1}
