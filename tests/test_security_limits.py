"""Bounded input without a server: config texts and numbers, run names, the login guard, and the
served folder that stands between Gradio's file route and the workspace."""
import asyncio
import json

import pytest

from studio.jobs import JobError, Jobs
from studio.login_guard import MAX_FAILURES, LoginGuard
from studio.served import clear_served, private_folders, served
from studio.store import Store
from studio.workspace import Workspace
from trainers.config import MAX_TEXT, RunConfig
from trainers.errors import ConfigError


@pytest.mark.parametrize("changes, message", [
    ({"weight_decay": float("nan")}, "'weight_decay' must be a finite number"),
    ({"lr": float("inf")}, "'lr' must be a finite number"),
    ({"valid_pct": float("-inf")}, "'valid_pct' must be a finite number"),
    ({"extra": {"content_weight": float("nan")}}, "'extra.content_weight' must be a finite number"),
    ({"weight_decay": -1}, "'weight_decay' must be a number from 0"),
    ({"monitor": "m" * (MAX_TEXT + 1)}, "'monitor' is 1,001 characters long"),
    ({"extra": {"mode": "x" * 10**6}}, "'extra.mode' is 1,000,000 characters long"),
    ({"extra": {"k": list(range(1000))}}, "too many items"),
])
def test_a_config_takes_finite_numbers_and_short_texts_only(changes, message):
    text = json.dumps({"task": "classify", "data": "x", **changes})  # JSON's NaN and Infinity parse as floats
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_json(text).validate()


def test_a_run_name_is_short(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    with Store(ws.store_dir) as store:
        with pytest.raises(JobError, match="at most 120 characters"):
            Jobs(ws, store).submit({"task": "classify", "data": "x"}, name="n" * 10**6)
        assert store.list_runs() == []


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_repeated_wrong_passwords_lock_the_login_for_a_while():
    clock = Clock()
    guard = LoginGuard("ada", "secret", lockout_s=60, clock=clock)
    assert guard.check("ada", "secret")
    for _ in range(MAX_FAILURES):
        assert not guard.check("ada", "guess")
    assert guard.locked() and not guard.check("ada", "secret")  # locked: the right password waits too
    clock.now += 61
    for _ in range(MAX_FAILURES):  # the guessing goes on after the lockout
        guard.check("eve", "guess")
    clock.now += 61
    assert guard.locked()  # so the next lockout is twice as long
    clock.now += 60
    assert guard.check("ada", "secret")  # unlocked; a success starts the count again


def test_the_login_route_gets_a_coroutine_that_answers_false_slowly():
    import inspect

    guard = LoginGuard("ada", "secret", lockout_s=60)
    assert inspect.iscoroutinefunction(guard.login)  # Gradio awaits only coroutine functions
    assert asyncio.run(guard.login("ada", "secret")) is True
    assert asyncio.run(guard.login("ada", "wrong")) is False


def test_served_links_stand_in_for_workspace_files(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    grid = ws.runs_dir / "r1" / "samples" / "epoch_001.png"
    grid.parent.mkdir(parents=True)
    grid.write_bytes(b"png")
    link = served(ws, grid)
    assert link.startswith(str(ws.served_dir)) and open(link, "rb").read() == b"png"
    assert link.endswith("-epoch_001.png") and "r1" not in link  # its name, not its folder
    assert served(ws, grid) == link  # the same version of a file: one link
    with pytest.raises(ValueError):
        served(ws, tmp_path / "elsewhere.png")
    blocked = private_folders(ws)
    assert str(ws.store_dir) in blocked and str(ws.runs_dir) in blocked and str(ws.tmp_dir) in blocked
    assert not any(ws.served_dir.is_relative_to(b) for b in blocked)
    clear_served(ws)
    assert list(ws.served_dir.iterdir()) == []


def test_pages_polling_the_same_file_at_once_get_the_same_link(tmp_path):
    """Gradio runs handlers in threads: two tabs refreshing one run ask for its grid together."""
    import threading

    ws = Workspace.open(tmp_path / "ws")
    grids = []
    for epoch in range(30):
        grids.append(ws.runs_dir / "r1" / "samples" / f"epoch_{epoch:03d}.png")
        grids[-1].parent.mkdir(parents=True, exist_ok=True)
        grids[-1].write_bytes(b"png %d" % epoch)
    for grid in grids:
        start, links, errors = threading.Barrier(6), [], []

        def ask(grid=grid, start=start, links=links, errors=errors):
            start.wait()
            try:
                links.append(served(ws, grid))
            except Exception as error:
                errors.append(error)

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and len(set(links)) == 1 and open(links[0], "rb").read() == grid.read_bytes()
    assert sorted(p.name for p in ws.served_dir.iterdir() if ".tmp" in p.name) == []


def test_messages_for_the_page_name_files_without_host_folders():
    from studio.ui.context import hide_paths

    assert hide_paths("No class folders found in /srv/ws/datasets/pets/train: put each") == \
        "No class folders found in train: put each"
    assert hide_paths("Cannot read `/tmp/gradio/ab12/big.png`.") == "Cannot read `big.png`."
    kept = "Demo at http://127.0.0.1:7860/ with train/ and valid/ folders, 5/8 done"
    assert hide_paths(kept) == kept


def test_codes_text_is_bounded_before_it_is_searched():
    from studio.datasets.errors import DatasetError
    from studio.datasets.masks import parse_codes

    with pytest.raises(DatasetError, match="At most 256 codes"):
        parse_codes("\n".join(f"c{i}" for i in range(10**6)))  # would be a quadratic duplicate search
    with pytest.raises(DatasetError, match="at most 100 characters"):
        parse_codes("background\n" + "x" * 10**6)
    assert parse_codes("background\nroad") == ["background", "road"]
