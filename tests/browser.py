"""What the real-browser tests share: Debian's Chromium with the flags this offline machine needs,
a page on a launched studio, and the clean-up of worker processes a studio left behind."""
import contextlib
import os
import signal
import tempfile
from pathlib import Path

import pytest

from studio.jobs import process_alive
from studio.store import Store

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out, and is refused, here.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")


@contextlib.contextmanager
def browser_page(url):
    """A page of a fresh headless Chromium profile, opened at `url`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=ARGS, headless=True,
                                                       viewport={"width": 1400, "height": 1100})
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.goto(url)
        try:
            yield page
        finally:
            browser.close()


def kill_leftover_workers(workspace_root):
    """SIGKILL any run worker of this workspace that is still alive after its studio closed."""
    with Store(Path(workspace_root) / "store") as store:
        for record in store.list_runs():
            if record.get("pid") and process_alive(record["pid"], record["id"]):
                os.kill(record["pid"], signal.SIGKILL)


# The number of train points the page's loss plot shows (0 while it says "no data yet").
LOSS_POINTS = """() => {
  const plot = document.querySelector('#train-loss .js-plotly-plot');
  const trace = plot && plot.data && plot.data.find(t => t.name === 'train (raw)');
  return trace ? trace.x.length : 0;
}"""


# Gradio's red "Error" badges that can be seen under `root` (an element handle's evaluate): a
# failed event marks each of its outputs with one, unless the handler answered with a sentence
# instead (or hid its progress, which leaves the badge in the page at opacity 0). Each badge is
# described by the text of the block it sits on.
VISIBLE_ERROR_BADGES = """(root) => Array.from(root.querySelectorAll('.error')).filter(e => {
  const wrap = e.closest('.wrap');
  return e.textContent.trim() === 'Error' && e.offsetParent !== null && !(wrap && wrap.classList.contains('hide'));
}).map(e => (e.closest('.block') || e.parentElement).innerText.slice(0, 80))"""
