"""The LR finder tells a page how far it is (batch i of its bound) and can be stopped; the page
says where its suggestion went, and warns when the suggestion is only the edge of the sweep."""
from trainers.reporting import Reporter
from test_learner import make_learner
from studio.ui.train_tab import lr_finder_message, lr_finder_progress


class Recording(Reporter):
    def __init__(self, stop_after=None):
        self.started, self.batches, self.stop_after = None, [], stop_after

    def start(self, info):
        self.started = info

    def batch(self, epoch, batch, batches, loss, lr):
        self.batches.append((batch, batches, lr))

    def should_stop(self):
        return self.stop_after is not None and len(self.batches) >= self.stop_after


def test_the_sweep_reports_each_batch_of_its_bound_and_stops_when_asked(colour_data):
    reporter = Recording()
    result = make_learner(colour_data).lr_find(reporter=reporter, num=8)
    assert reporter.started["batches_per_epoch"] == 8 and reporter.started["epochs"] == 1
    assert [b for b, _, _ in reporter.batches] == list(range(1, len(result["lrs"]) + 1))
    assert all(n == 8 for _, n, _ in reporter.batches)
    assert [lr for _, _, lr in reporter.batches] == result["lrs"]

    stopping = Recording(stop_after=3)
    stopped = make_learner(colour_data).lr_find(reporter=stopping, num=8)
    assert len(stopped["lrs"]) == 3


def test_the_page_shows_progress_with_an_eta():
    record = {"status": "running", "batch": 37, "batches": 100, "eta_s": 40}
    assert lr_finder_progress(record) == "Finding a learning rate: batch 37 of at most 100 (37%), about 0:40 left…"
    assert lr_finder_progress({"status": "queued"}) == "Finding a learning rate: queued…"


def test_a_suggestion_inside_the_sweep_is_used_and_says_where_it_went():
    lrs = [10 ** (-7 + i * 0.1) for i in range(60)]
    losses = [2.0 - 0.03 * i for i in range(40)] + [0.8 + 0.2 * i for i in range(20)]
    text, usable = lr_finder_message({"lrs": lrs, "losses": losses, "suggestion": lrs[39] / 10})
    assert usable and "Learning rate** field under Settings" in text and "⚠" not in text


def test_a_suggestion_at_the_low_edge_is_not_used_and_says_why():
    lrs = [10 ** (-7 + i * 0.1) for i in range(30)]
    losses = [1.0 + 0.1 * i for i in range(30)]  # never falls
    text, usable = lr_finder_message({"lrs": lrs, "losses": losses, "suggestion": lrs[0]})
    assert not usable and "did not fall" in text and "1e-07" in text


def test_a_minimum_at_the_high_edge_is_used_with_a_warning():
    lrs = [10 ** (-7 + i * 0.1) for i in range(30)]
    losses = [3.0 - 0.05 * i for i in range(30)]  # still falling at the end
    text, usable = lr_finder_message({"lrs": lrs, "losses": losses, "suggestion": lrs[-1] / 10})
    assert usable and "still falling" in text


def test_a_level_curve_that_blows_up_suggests_a_tenth_of_where_it_rose():
    """Restore's shape (bench/lr_finder_restore.py): batch-to-batch wander of a few per cent, no
    fall, then a blow-up. The lowest wobble must not decide; the rise does, inside the sweep."""
    from trainers.lr_finder import suggest

    lrs = [1e-7 * 1.18 ** i for i in range(70)]
    wobble = [0.052 + 0.002 * ((i * 7) % 5 - 2) / 2 for i in range(60)]
    losses = [0.03] + wobble[1:] + [0.06, 0.07, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0]
    found = suggest(lrs, losses)
    assert found["rule"] == "rise" and found["rise_lr"] == lrs[61]  # the first past 1.25 x the minimum (0.051)
    assert lrs[0] < found["suggestion"] == lrs[61] / 10 <= lrs[-1]
    text, usable = lr_finder_message({"lrs": lrs, "losses": losses, **found})
    assert usable and "stayed level" in text and "rose" in text


def test_a_falling_curve_keeps_the_minimum_rule_and_a_rising_one_is_the_low_edge():
    from trainers.lr_finder import suggest

    lrs = [10 ** (-7 + i * 0.1) for i in range(60)]
    falling = [2.0 - 0.03 * i for i in range(40)] + [0.8 + 0.2 * i for i in range(20)]
    assert suggest(lrs, falling) == {"suggestion": lrs[40] / 10, "rule": "minimum", "rise_lr": lrs[42]}
    rising = [1.0 + 0.1 * i for i in range(60)]
    assert suggest(lrs, rising)["suggestion"] == lrs[0]
    level = [1.0 + 0.01 * (i % 3) for i in range(60)]
    found = suggest(lrs, level)
    assert found["rule"] == "level" and found["suggestion"] == lrs[-1] / 10
    assert "⚠" in lr_finder_message({"lrs": lrs, "losses": level, **found})[0]


def test_the_finder_is_offered_where_the_task_says_it_applies():
    """The Train tab asks the task (Task.lr_finder); style and the GANs have none, and a run of
    theirs is refused one with a sentence."""
    import pytest

    from studio.ui.train_tab import task_names, task_settings
    from trainers import find_lr
    from trainers.errors import ConfigError
    from trainers.tasks import get_task

    for name in task_names():
        *_, lr_field, _, finder = task_settings(name)
        assert finder["visible"] is get_task(name).lr_finder
    assert get_task("restore").lr_finder and get_task("classify").lr_finder
    assert not get_task("style").lr_finder and not get_task("gan").lr_finder
    assert "no learning-rate finder" in task_settings("style")[3]["info"]
    with pytest.raises(ConfigError, match="does not apply to the style task"):
        find_lr({"task": "style", "data": "/nowhere", "lr": None})
