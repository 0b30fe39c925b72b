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
        config = {"task": "restore", "data": "pairs", "arch": "resnet18", "epochs": 3, "batch_size": 4,
                  "image_size": 32, "lr": 3e-3, "pretrained": False, "augment": False, "sample_count": 2,
                  "extra": {"loss": "pixel"}}
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
        wipe.locator("img").nth(1).wait_for()
        page.locator("#epoch-wipe-note").get_by_text("identical").wait_for()  # A = B = (this run, epoch 3)
        before = {"wipe": src(page, "#epoch-wipe img"), "grid": src(page, "#runs-grid img")}
        print("WIPE-HTML", wipe.inner_html()[:3000])

        # The wipe: drag its handle from the middle to the left quarter.
        box = wipe.locator("img").first.bounding_box()
        handle = wipe.locator(".inner, [role=none]").first
        position = lambda: handle.evaluate("el => getComputedStyle(el).left + ' ' + getComputedStyle(el).transform")  # noqa: E731
        start = position()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + box["width"] / 2, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 4, y, steps=8)
        page.mouse.up()
        page.wait_for_function("([el, start]) => getComputedStyle(el).left + ' ' + getComputedStyle(el).transform !== start",
                               arg=[handle.element_handle(), start])

        # The epoch slider: back to epoch 1; the grid and the wipe's A follow it.
        number = page.locator("#runs-epoch input[type=number]")
        number.fill("1")
        number.press("Enter")
        page.wait_for_function("([sel, old]) => { const i = document.querySelector(sel); return i && i.src !== old; }",
                               arg=["#runs-grid img", before["grid"]])
        page.locator("#epoch-wipe-note").get_by_text("differ").wait_for()  # epoch 1 against epoch 3
        assert src(page, "#epoch-wipe img") != before["wipe"]

        # Pin epoch 1 for Try, Export and Share.
        page.locator("#pin-epoch").click()
        page.locator("#epoch-suggested").get_by_text("pinned for Try, Export and Share: epoch 1").wait_for()
        assert json.loads((run_dir / "pinned.json").read_text()) == {"epoch": 1}
