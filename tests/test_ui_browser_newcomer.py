"""A newcomer's first ten minutes, in a real headless Chromium on a fresh workspace: the first
page -> one click on digits -> Start -> live loss -> completed -> the run is in Try, Inspect and
Share without a reload -> Try answers -> Share starts a demo. Then what goes wrong for people:
a dataset built in Data must appear in Train's list, a double click on Start must queue one run,
a text file named .png in Try must give one sentence and clear the old answer; and a short
accessibility pass (every control named; Start and Stop reachable by keyboard).

Screenshots of each step go to the module's tmp folder, or to $DARKROOM_SHOTS when set (to look
at them afterwards); the path's clicks and seconds are printed and written there as path.json."""
import json
import os
import re
import time
from pathlib import Path

import pytest

from browser import LOSS_POINTS, VISIBLE_ERROR_BADGES, browser_page, kill_leftover_workers, needs_chromium
from conftest import write_colour_classes
from studio.store import Store
from test_ui_api import Studio

pytestmark = needs_chromium

WAIT_MS = 300_000  # one epoch of digits at 32 px on two shared cores, with margin


@pytest.fixture(scope="module")
def shots(module_tmp):
    folder = Path(os.environ.get("DARKROOM_SHOTS") or module_tmp / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def studio(module_tmp):
    """`python app.py` on a workspace that does not exist yet: it installs the samples itself."""
    root = module_tmp / "workspace"
    studio = Studio(root, module_tmp / "studio.log")
    yield studio
    studio.close()
    kill_leftover_workers(root)


@pytest.fixture(scope="module")
def page(studio):
    with browser_page(studio.url) as page:
        yield page


def runs_in_store(studio):
    with Store(studio.workspace / "store") as store:
        return store.list_runs()


def open_tab(page, name):
    page.get_by_role("tab", name=name, exact=True).click()


def set_number(page, label, value):
    page.get_by_label(label, exact=True).fill(str(value))


def test_the_newcomer_path_from_the_first_page_to_a_shared_model(page, studio, shots):
    clicks, t0, marks = 0, time.monotonic(), {}

    def mark(step):
        marks[step] = round(time.monotonic() - t0, 1)
        page.screenshot(path=str(shots / f"{len(marks):02d}-{step}.png"))

    # 1. The first page offers the bundled samples, one click each.
    page.get_by_text("No run in progress.").wait_for()
    train_digits = page.locator("#start-train-digits")
    assert train_digits.is_visible()
    assert page.get_by_text(re.compile(r"digits · classify · 1,797 pictures")).first.is_visible()
    mark("first-page")

    # 2. One click: the Train tab, filled in for digits, Start above the fold.
    train_digits.click(); clicks += 1
    page.get_by_text("digits: classify dataset").wait_for()
    start = page.locator("#train-start")
    box = start.bounding_box()
    assert box and box["y"] + box["height"] < 1000, f"Start is at {box}: below the fold of a 1400 x 1000 window"
    assert page.locator("#train-task input").input_value() == "classify"
    # Nothing typed: the form's defaults for digits (32 px, the pictures' own size; a budget of
    # about a minute that sets the epochs) are the newcomer's run.
    assert page.get_by_label("Image size", exact=True).input_value() == "32"
    mark("train-filled-in")

    # 3. Start, then the loss plot comes alive.
    start.click(); clicks += 1
    page.locator("#train-status [data-status]").wait_for()
    page.wait_for_function(LOSS_POINTS.replace("return trace ? trace.x.length : 0;",
                                               "return trace && trace.x.length > 2;"), timeout=WAIT_MS)
    mark("live-loss")
    page.locator("#train-status [data-status=completed]").wait_for(timeout=WAIT_MS)
    time.sleep(2)  # the view's last tick: metrics and the sample grid
    mark("completed")
    (run,) = [r for r in runs_in_store(studio) if r["kind"] == "train"]
    assert run["status"] == "completed"

    # 4. The run is in Try, Inspect and Share without a reload (and already chosen: the newest).
    for tab, dropdown in [("Inspect", "#inspect-run"), ("Share", "#share-run"), ("Try", "#try-run")]:
        open_tab(page, tab); clicks += 1
        page.wait_for_function("([sel, id]) => { const e = document.querySelector(sel + ' input');"
                               " return e && e.value.includes(id); }", arg=[dropdown, run["id"]])
    mark("run-in-try")

    # 5. Try answers for a digit from the dataset's validation set.
    digit = next((studio.workspace / "datasets" / "digits" / "valid" / "3").glob("*.png"))
    page.locator("#try-picture input[type=file]").set_input_files(str(digit)); clicks += 1
    page.wait_for_function("() => { const e = document.querySelector('#try-label');"
                           " return e && /[0-9]/.test(e.innerText) && /%/.test(e.innerText); }", timeout=60_000)
    page.locator("#try-heatmap img").wait_for()
    mark("try-answers")

    # 6. Share starts a demo.
    open_tab(page, "Share"); clicks += 1
    page.locator("#share-start").click(); clicks += 1
    page.get_by_text("Demo running at").wait_for(timeout=180_000)
    mark("demo-started")
    page.get_by_role("button", name="Stop demo").click()
    page.get_by_text("Demo stopped.").wait_for()

    path = {"clicks": clicks, "seconds": marks}
    (shots / "path.json").write_text(json.dumps(path, indent=1))
    print("newcomer path:", path)
    assert clicks <= 10


def test_a_text_file_named_png_in_try_is_one_sentence_and_clears_the_old_answer(page, shots, module_tmp):
    """Runs after the path: Try shows an answer for a digit; a non-picture replaces it with nothing."""
    open_tab(page, "Try")
    label = page.locator("#try-label")
    assert re.search(r"[0-9]", label.inner_text())  # the previous picture's answer
    fake = module_tmp / "notes.png"
    fake.write_text("this is not a picture\n")
    page.locator("#try-picture input[type=file]").set_input_files(str(fake))
    toast = page.get_by_text(re.compile(r"'notes.png' is not a picture that can be opened"))
    try:
        toast.first.wait_for()
    finally:
        page.screenshot(path=str(shots / "try-not-a-picture.png"))
    page.screenshot(path=str(shots / "try-not-a-picture.png"))
    text = page.locator(".toast-body").filter(visible=True).all_inner_texts()
    assert len(text) == 1, text  # one message
    for leak in ("index", "UnidentifiedImageError", "/tmp", "gradio", "Traceback"):
        assert leak not in text[0], f"the message shows {leak!r}: {text[0]}"
    page.wait_for_function("() => !document.querySelector('#try-heatmap img')")
    assert not re.search(r"[0-9]+%", label.inner_text()), label.inner_text()
    assert page.locator("#try-heat-note [data-testid=markdown]").inner_text().strip() == ""
    # no red "Error" badge over the outputs: their status trackers stay transparent
    assert page.evaluate("() => [...document.querySelectorAll('#try-label [data-testid=status-tracker], "
                         "#try-heatmap [data-testid=status-tracker]')].every(t => getComputedStyle(t).opacity === '0')")


def test_a_builder_refusal_is_one_sentence_in_its_summary_without_error_badges(page, shots):
    """A folder that is not there, in Folder labels and in Masks: the builder's summary says so
    in one sentence (no path of the host), and no output wears a red "Error" badge."""
    open_tab(page, "Data")
    page.get_by_label("Folder on this machine").first.fill("/no/such/pictures")
    page.get_by_label("New dataset name").first.fill("nothing")
    page.get_by_role("button", name="Import", exact=True).click()
    said = page.get_by_text(re.compile(r"⚠ .*pictures")).first
    said.wait_for(timeout=60_000)
    assert "/no/such" not in said.inner_text()
    data_panel = page.locator("[role=tabpanel]").filter(visible=True).first
    assert data_panel.evaluate(VISIBLE_ERROR_BADGES) == []
    page.get_by_role("tab", name="Masks", exact=True).click()
    page.get_by_role("button", name="Import masks", exact=True).click()  # no source at all
    page.get_by_text(re.compile(r"⚠ ")).filter(visible=True).first.wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "data-refusal.png"))
    assert data_panel.evaluate(VISIBLE_ERROR_BADGES) == []
    page.get_by_role("tab", name="Folder labels", exact=True).click()  # as the next test finds it


def test_a_dataset_built_in_data_appears_in_train_on_switching_tabs(page, studio, module_tmp):
    source = write_colour_classes(module_tmp / "colour-pictures", per_class=4, size=16)
    open_tab(page, "Data")
    page.get_by_label("Folder on this machine").first.fill(str(source))
    page.get_by_label("New dataset name").first.fill("colours")
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text(re.compile(r"colours.*12 images in 3 classes")).first.wait_for(timeout=60_000)
    open_tab(page, "Train")
    page.locator("#train-dataset input").click()
    page.get_by_role("option", name="colours", exact=True).click()
    page.get_by_text("colours: classify dataset").wait_for()


def test_double_clicking_start_queues_one_run_and_stop_is_reachable_by_keyboard(page, studio):
    """Continues on the 'colours' dataset chosen above: a long run, double-clicked, is one run;
    Stop is then reached with the Tab key and pressed with Enter."""
    before = {r["id"] for r in runs_in_store(studio)}
    set_number(page, "Image size", 16); set_number(page, "Epochs", 100); set_number(page, "Batch size", 4)
    page.locator("#train-start").dblclick()
    page.locator("#train-status [data-status=running]").wait_for(timeout=WAIT_MS)
    time.sleep(3)  # a second submission, if there were one, would be in the store by now
    new = [r for r in runs_in_store(studio) if r["id"] not in before]
    assert len(new) == 1, [(r["id"], r["status"]) for r in new]
    stop = page.locator("#train-stop")
    stop.wait_for()
    page.wait_for_function("() => !document.querySelector('#train-stop').disabled")
    assert focus_by_tab(page, "train-stop"), "Stop cannot be reached with the Tab key"
    page.keyboard.press("Enter")
    page.locator("#train-status [data-status=stopped]").wait_for(timeout=60_000)
    assert focus_by_tab(page, "train-start"), "Start cannot be reached with the Tab key"


def focus_by_tab(page, element_id, presses=80) -> bool:
    """Press Tab from the top of the page until the element with this id has the focus."""
    page.locator("body").focus()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return True
    return False


# A control's line with no quoted name. (A dropdown's open option list, role listbox, belongs to
# its named combobox and is left out.)
UNNAMED = re.compile(r"^\s*- (button|textbox|combobox|checkbox|slider|spinbutton|radio)(\s*\[[^\]]*\])*\s*:?\s*$")


def test_every_control_of_every_tab_has_a_name(page):
    """Playwright's aria snapshot of each tab, after the runs above: every control has a name."""
    for tab in ("Start here", "Data", "Train", "Runs", "Inspect", "Try", "Share"):
        open_tab(page, tab)
        time.sleep(1)
        snapshot = page.locator("[role=tabpanel]").filter(visible=True).first.aria_snapshot()
        unnamed = [line for line in snapshot.splitlines() if UNNAMED.match(line)]
        assert not unnamed, f"controls without a name on {tab}:\n" + "\n".join(unnamed) + "\n\n" + snapshot


def test_the_lr_finder_on_the_crappified_photos_ends_within_its_bound_inside_its_sweep(page, studio, shots):
    """The bundled photos crappified with the builder's defaults, then "Find learning rate" on
    them in Train: the sweep ends within its batches, its suggestion lies inside the sweep and
    goes into the Learning rate field. The task decides whether the button shows: not for style."""
    from studio.datasets.crappify import crappify_dataset
    from studio.workspace import Workspace

    ws = Workspace.open(studio.workspace)
    crappify_dataset(ws, "photos-crappy", str(ws.dataset_dir("photos")), seed=0, processes=1)
    open_tab(page, "Start here")
    open_tab(page, "Train")  # the list is read again on showing the tab
    page.locator("#train-dataset input").click()
    page.get_by_role("option", name="photos-crappy", exact=True).click()
    page.get_by_text("photos-crappy: restore dataset").wait_for()
    page.locator("#train-task input").click()
    page.get_by_role("option", name="style", exact=True).click()
    page.locator("#train-find-lr").wait_for(state="hidden")
    page.locator("#train-task input").click()
    page.get_by_role("option", name="restore", exact=True).click()
    before = {r["id"] for r in runs_in_store(studio)}
    page.locator("#train-find-lr").click()
    status = page.locator("#train-lr-status")
    status.get_by_text(re.compile(r"Finding a learning rate")).wait_for()
    status.get_by_text(re.compile(r"now in the \*?\*?Learning rate")).wait_for(timeout=WAIT_MS)
    page.screenshot(path=str(shots / "lr-finder-restore.png"))
    finder = [r for r in runs_in_store(studio) if r["id"] not in before and r["kind"] == "lr_find"]
    assert len(finder) == 1 and finder[0]["status"] == "completed"
    result = finder[0]["result"]
    lrs, suggestion = result["lrs"], result["suggestion"]
    assert 10 < len(lrs) <= finder[0]["batches"]  # ended within its bound (the loss rose before it)
    assert lrs[0] < suggestion <= lrs[-1], (result["rule"], lrs[0], suggestion, lrs[-1])
    assert page.locator("#train-lr input, #train-lr textarea").first.input_value() == f"{suggestion:.2g}"
