"""The studio in a real headless Chromium: pick a dataset in Train, Start, watch the loss plot
gain points and the sample grid appear until the run completes; then start a long run and
stop it from the page."""

import time

import pytest

from browser import LOSS_POINTS, browser_page, kill_leftover_workers, needs_chromium
from test_ui_api import Studio, write_tiny_dataset

WAIT_MS = 150_000

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def studio(module_tmp):
    root = module_tmp / "workspace"
    write_tiny_dataset(root)
    studio = Studio(root, root.parent / "studio.log")
    yield studio
    studio.close()
    kill_leftover_workers(root)


@pytest.fixture(scope="module")
def page(studio):
    with browser_page(studio.url) as page:
        page.get_by_role("tab", name="Train").click()
        yield page


def fill_settings(page, epochs, batch_size):
    page.locator("#train-dataset input").click()
    page.get_by_role("option", name="colours", exact=True).click()
    page.get_by_text("colours: classify dataset").wait_for()
    for label, value in [
        ("Image size", "32"),
        ("Batch size", str(batch_size)),
        ("Epochs", str(epochs)),
        ("Frozen epochs", "0"),
    ]:
        page.get_by_label(label, exact=True).fill(value)
    # The epochs typed here count only without a time budget (a budget sets them from a rehearsal).
    page.locator("#train-budget").get_by_label("no limit").check()


def status_text(page):
    return page.locator("#train-status").inner_text()


def test_start_watch_the_loss_plot_and_samples_until_completed(page):
    fill_settings(page, epochs=4, batch_size=4)
    page.locator("#train-start").click()
    page.locator("#train-status [data-status]").wait_for()
    seen = set()
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        seen.add(page.evaluate(LOSS_POINTS))
        if page.locator("#train-status [data-status=completed]").count():
            break
        assert not page.locator("#train-status [data-status=failed]").count(), status_text(page)
        time.sleep(0.3)
    else:
        pytest.fail(f"the run did not complete: {status_text(page)}")
    time.sleep(2)  # the last tick
    final = page.evaluate(LOSS_POINTS)
    assert final == 4 * 9, f"the plot shows {final} train points, the run had 36 batches"
    assert len(seen - {0}) >= 2, f"the loss plot never grew while the run trained (point counts seen: {seen})"
    assert "epoch 4/4" in status_text(page)
    sample = page.locator("#train-sample img")
    sample.wait_for()
    assert "epoch_004" in sample.get_attribute("src")
    assert "best accuracy" in status_text(page)
    assert "phase" in page.locator("#train-log textarea").input_value()


def test_a_long_run_stops_from_the_page(page):
    fill_settings(page, epochs=200, batch_size=4)
    page.locator("#train-start").click()
    page.locator("#train-status [data-status=running]").wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        LOSS_POINTS.replace("return trace ? trace.x.length : 0;", "return trace && trace.x.length > 0;"),
        timeout=WAIT_MS,
    )
    stop = page.locator("#train-stop")
    assert stop.is_enabled()
    stop.click()
    page.locator("#train-status [data-status=stopped]").wait_for(timeout=60_000)
    assert "epoch" in status_text(page)
    assert not stop.is_enabled()


def choose_task(page, name):
    page.locator("#train-task input").click()
    page.get_by_role("option", name=name, exact=True).click()


def test_each_task_brings_its_defaults_and_its_own_settings(page):
    """A GAN's learning rate is its task's own (blank, 1e-4) with no finder; a style run asks for
    its style image, and Gatys for a content photo and steps; back to classify, all as before."""
    lr = page.locator("#train-lr textarea, #train-lr input").first
    choose_task(page, "gan")
    page.locator("#train-gan-generator-run").wait_for(state="visible")
    page.wait_for_function(
        "() => { const e = document.querySelector('#train-lr textarea, #train-lr input'); return e && e.value === ''; }"
    )
    assert page.get_by_role("button", name="Find learning rate").is_hidden()
    choose_task(page, "wgan")
    page.wait_for_function(
        "() => document.querySelector('#train-gan-generator-run') === null || "
        "document.querySelector('#train-gan-generator-run').offsetParent === null"
    )
    assert page.get_by_label("Image size", exact=True).input_value() == "64"
    choose_task(page, "style")
    page.locator("#train-style-style-image").wait_for(state="visible")
    assert page.locator("#train-style-content-image").is_hidden()
    page.get_by_label("Optimise one picture (Gatys): a short job, no network").check()
    page.locator("#train-style-content-image").wait_for(state="visible")
    choose_task(page, "classify")
    page.locator("#train-style-style-image").wait_for(state="hidden")
    page.wait_for_function(
        "() => { const e = document.querySelector('#train-lr textarea, #train-lr input');"
        " return e && e.value === '0.003'; }"
    )
    # The colour pictures are 32 px: classify's size fits them rather than upsampling to 128.
    assert page.get_by_label("Image size", exact=True).input_value() == "32" and lr.is_visible()
    assert page.get_by_role("button", name="Find learning rate").is_visible()
