"""The studio in a real headless Chromium, after training: a tiny classifier (started through the
API to save time) is opened in Inspect, where an uploaded picture gets a heatmap, and in Try,
where an uploaded picture gets a prediction that names a class."""
import re

import pytest
from PIL import Image

from browser import browser_page, kill_leftover_workers, needs_chromium
from test_ui_api import Studio, tiny, wait_status, write_tiny_dataset

CLASSES = ("red", "green", "blue")

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def trained(module_tmp):
    """A studio process with one completed tiny classify run."""
    root = module_tmp / "workspace"
    write_tiny_dataset(root, per_class=6)
    studio = Studio(root, root.parent / "studio.log")
    try:
        run_id = studio.call("/start_run", tiny(epochs=1), "to inspect")
        wait_status(studio, run_id, lambda s: s["status"] == "completed", "completed")
        yield studio, run_id
    finally:
        studio.close()
        kill_leftover_workers(root)


@pytest.fixture(scope="module")
def page(trained):
    studio, _ = trained
    with browser_page(studio.url) as page:
        yield page


@pytest.fixture(scope="module")
def picture(module_tmp):
    path = module_tmp / "red.png"
    Image.new("RGB", (40, 40), (200, 40, 40)).save(path)
    return path


def open_tab(page, name):
    """Select a top-level tab and return its (visible) panel."""
    page.get_by_role("tab", name=name, exact=True).click()
    return page.locator("[role=tabpanel]").filter(visible=True).filter(has=page.locator("#inspect-run, #try-run")).first


def choose_run(page, panel, run_id):
    """Pick the run from the tab's list, which has it without any refresh button."""
    panel.get_by_label("Run", exact=True).click()
    page.get_by_role("option", name=re.compile(re.escape(run_id))).click()


def block(panel, label):
    """The component block whose label reads exactly `label`."""
    return panel.locator(".block").filter(has=panel.page.get_by_test_id("block-label").get_by_text(label, exact=True))


def upload(panel, picture):
    """Put a picture in the panel's Picture input and wait until the page shows it (uploaded)."""
    picture_block = block(panel, "Picture")
    picture_block.locator("input[type=file]").set_input_files(str(picture))
    picture_block.locator("img").first.wait_for()


def test_inspect_gives_a_heatmap_for_an_uploaded_picture(page, trained, picture):
    _, run_id = trained
    panel = open_tab(page, "Inspect")
    choose_run(page, panel, run_id)
    heat_button = panel.get_by_role("button", name="Heatmap", exact=True)
    assert heat_button.is_disabled()  # until the run is opened
    panel.get_by_role("button", name="Open", exact=True).click()
    page.wait_for_function("() => { const b = [...document.querySelectorAll('button')].find("
                           "b => b.innerText.trim() === 'Heatmap'); return b && !b.disabled; }")
    upload(panel, picture)
    heatmap = block(panel, "Heatmap").locator("img")
    assert heatmap.count() == 0  # nothing before the click
    heat_button.click()
    heatmap.first.wait_for()
    assert heatmap.first.get_attribute("src")
    page.get_by_text(re.compile(r"Grad-CAM for (red|green|blue)")).first.wait_for()


def test_try_predicts_a_class_for_an_uploaded_picture(page, trained, picture):
    _, run_id = trained
    panel = open_tab(page, "Try")
    choose_run(page, panel, run_id)
    page.get_by_text("classify run.").first.wait_for()  # the run's task chose the inputs shown
    panel.get_by_text("Top k", exact=True).wait_for()  # hidden until a classify run is chosen
    assert panel.get_by_text("Seed", exact=True).filter(visible=True).count() == 0  # a wgan input
    upload(panel, picture)
    label = page.locator("#try-label")
    label.wait_for()
    page.wait_for_function(
        "(names) => { const el = document.querySelector('#try-label'); "
        "return el && names.some(n => el.innerText.includes(n)); }", arg=list(CLASSES))
    assert any(name in label.inner_text() for name in CLASSES)
    page.locator("#try-heatmap img").wait_for()  # the heatmap comes with the prediction
    # The same answer by name, as a script reads it, under a closed accordion.
    panel.get_by_text("The answer as a script reads it (JSON)").click()
    page.wait_for_function(
        "() => { const el = document.querySelector('#try-answer'); "
        "return el && ['probability', 'classes', 'Grad-CAM'].every(w => el.innerText.includes(w)); }")
