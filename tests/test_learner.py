import math
import time
from types import SimpleNamespace

import pytest
import torch

from trainers import RunConfig
from trainers.callbacks import Callback
from trainers.fit import _build
from conftest import tiny_config


def make_learner(data, **changes):
    config = RunConfig.from_dict(tiny_config(data, **changes)).validate()
    ctx, device, parts, learner = _build(config, "cpu")
    return learner


class Recorder(Callback):
    def __init__(self):
        self.events, self.losses, self.lrs, self.moms = [], [], [], []

    def __getattr__(self, name):
        if name in ("before_fit", "before_epoch", "before_validate", "after_validate", "after_epoch", "after_fit"):
            return lambda: self.events.append(name)
        raise AttributeError(name)

    def after_batch(self):
        self.losses.append(self.learner.loss_value)
        self.lrs.append(self.learner.batch_lr)
        self.moms.append(self.learner.opt.param_groups[-1]["betas"][0])


def test_loss_falls_and_events_fire_in_order(colour_data):
    learner = make_learner(colour_data)
    before = learner.validate()["valid_loss"]
    rec = Recorder()
    learner.add_callbacks([rec])
    learner.fit_one_cycle(3, 3e-3)
    events = list(rec.events)
    after = learner.validate()
    assert after["valid_loss"] < before
    assert sum(rec.losses[-3:]) / 3 < sum(rec.losses[:3]) / 3
    assert after["accuracy"] >= 0.8
    assert events[0] == "before_fit" and events[-1] == "after_fit"
    assert events[1:6] == ["before_epoch", "before_validate", "after_validate", "after_epoch", "before_epoch"]


def test_one_cycle_warms_up_then_anneals_with_momentum_opposite(colour_data):
    learner = make_learner(colour_data)
    rec = Recorder()
    learner.add_callbacks([rec])
    learner.fit_one_cycle(4, 1e-2)
    lrs, moms = rec.lrs, rec.moms
    peak = lrs.index(max(lrs))
    assert math.isclose(lrs[0], 1e-2 / 25, rel_tol=1e-6)
    assert 0.15 <= peak / len(lrs) <= 0.35
    assert lrs[-1] < 1e-2 / 1000
    assert moms[0] > moms[peak] and moms[-1] > moms[peak]  # momentum falls as lr rises
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1]))


def test_lr_finder_suggestion_is_finite_and_inside_its_sweep(colour_data):
    learner = make_learner(colour_data)
    weights = {k: v.clone() for k, v in learner.model.state_dict().items()}
    result = learner.lr_find(num=60)
    assert len(result["lrs"]) == len(result["losses"]) > 10
    assert math.isfinite(result["suggestion"])
    assert result["lrs"][0] <= result["suggestion"] <= result["lrs"][-1]
    assert all(torch.equal(v, learner.model.state_dict()[k]) for k, v in weights.items())


def conv_weights(module):
    return [m.weight.detach().clone() for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


def test_freeze_keeps_body_and_unfreeze_moves_it(colour_data):
    learner = make_learner(colour_data)
    body = learner.model.body
    head_before = learner.model.head[-1].weight.detach().clone()
    before = conv_weights(body)
    learner.freeze()
    learner.fit_one_cycle(1, 1e-2)
    assert all(torch.equal(a, b) for a, b in zip(before, conv_weights(body)))
    assert not torch.equal(head_before, learner.model.head[-1].weight)
    learner.unfreeze()
    learner.fit_one_cycle(1, slice(1e-4, 1e-2))
    assert any(not torch.equal(a, b) for a, b in zip(before, conv_weights(body)))


def test_discriminative_rates_spread_over_groups(colour_data):
    learner = make_learner(colour_data)
    lrs = learner.lr_per_group(slice(1e-5, 1e-3))
    assert len(lrs) == 3
    assert math.isclose(lrs[0], 1e-5) and math.isclose(lrs[1], 1e-4) and math.isclose(lrs[2], 1e-3)
    learner.make_optimizer(slice(1e-5, 1e-3))
    assert [g["lr"] for g in learner.opt.param_groups] == lrs


def test_should_stop_ends_between_batches(colour_data):
    learner = make_learner(colour_data)

    class StopAfterTwo(Callback):
        seen = 0

        def after_batch(self):
            self.seen += 1
            if self.seen == 2:
                self.learner.stop = True

    stopper = StopAfterTwo()
    learner.add_callbacks([stopper])
    learner.fit_one_cycle(3, 1e-3)
    assert learner.stop and stopper.seen == 2 and learner.epoch == 0


class BatchEvents(Callback):
    """Records the events of one training batch and what the learner holds at each."""

    def __init__(self):
        self.seen = []

    def _note(self, event):
        learn = self.learner
        self.seen.append((event, learn.xb is not None, learn.pred is not None and learn.pred.shape[0] == len(learn.yb)))

    def before_batch(self): self._note("before_batch")
    def after_loss(self): self._note("after_loss")
    def before_step(self): self._note("before_step")
    def after_step(self): self._note("after_step")
    def after_batch(self): self._note("after_batch")


def test_batch_events_fire_in_order_with_the_batch_on_the_learner(colour_data):
    learner = make_learner(colour_data)
    rec = BatchEvents()
    learner.add_callbacks([rec])
    learner.fit_one_cycle(1, 1e-3)
    per_batch = ["before_batch", "after_loss", "before_step", "after_step", "after_batch"]
    assert [e for e, _, _ in rec.seen] == per_batch * learner.batches
    assert all(has_x for _, has_x, _ in rec.seen)
    assert all(pred_fits for e, _, pred_fits in rec.seen if e != "before_batch")


def test_gradient_clip_bounds_the_norm_the_optimiser_sees(colour_data):
    from trainers.callbacks import GradientClip

    learner = make_learner(colour_data)

    class Norms(Callback):
        order = 20  # after GradientClip (order 10)
        norms = []

        def before_step(self):
            grads = [p.grad for p in self.learner.model.parameters() if p.grad is not None]
            self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    norms = Norms()
    learner.add_callbacks([GradientClip(1e-3), norms])
    learner.fit_one_cycle(1, 1e-3)
    assert norms.norms and max(norms.norms) <= 1e-3 * 1.01


def test_grad_clip_setting_adds_the_callback_and_refuses_nonsense(colour_data):
    from trainers.callbacks import GradientClip
    from trainers.errors import ConfigError
    import pytest

    learner = make_learner(colour_data, grad_clip=0.5)
    clips = [cb for cb in learner.callbacks if isinstance(cb, GradientClip)]
    assert len(clips) == 1 and clips[0].max_norm == 0.5
    assert not any(isinstance(cb, GradientClip) for cb in make_learner(colour_data).callbacks)
    with pytest.raises(ConfigError, match="grad_clip"):
        RunConfig.from_dict(tiny_config(colour_data, grad_clip=-1)).validate()


def test_cancel_batch_skips_the_step_and_a_handled_error_skips_the_batch(colour_data):
    from trainers.callbacks import CancelBatch

    learner = make_learner(colour_data)
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}

    class CancelEvery(Callback):
        def after_loss(self):
            raise CancelBatch

    learner.add_callbacks([CancelEvery()])
    learner.fit_one_cycle(1, 1e-2)
    after = learner.model.state_dict()
    weights = [k for k in before if k.endswith("weight")]
    assert all(torch.equal(before[k], after[k]) for k in weights)  # no step was taken

    learner = make_learner(colour_data)

    class Fails(Callback):
        handled = 0

        def before_step(self):
            raise RuntimeError("out of memory (pretend)")

        def on_batch_error(self):
            if "out of memory" in str(self.learner.error):
                self.handled += 1
                self.learner.error = None

    fails = Fails()
    learner.add_callbacks([fails])
    learner.fit_one_cycle(1, 1e-2)
    assert fails.handled == learner.batches

    class Unhandled(Callback):
        def after_loss(self):
            raise ValueError("a real bug")

    learner = make_learner(colour_data)
    learner.add_callbacks([Unhandled()])
    import pytest
    with pytest.raises(ValueError, match="a real bug"):
        learner.fit_one_cycle(1, 1e-2)


def test_lr_finder_is_a_callback_on_the_normal_loop(colour_data):
    from trainers.lr_finder import LRFinder

    learner = make_learner(colour_data)
    rec = Recorder()
    learner.add_callbacks([rec])
    result = learner.lr_find(num=30)
    # The sweep ran through the loop's batch events, without validation or epoch records ...
    assert 10 < len(result["lrs"]) <= 30  # 30 steps, fewer when the loss diverges first
    assert rec.lrs == result["lrs"]
    assert "before_validate" not in rec.events and "after_epoch" not in rec.events
    assert rec.events[0] == "before_fit" and rec.events[-1] == "after_fit"
    # ... and leaves nothing behind.
    assert not any(isinstance(cb, LRFinder) for cb in learner.callbacks) and learner.opt is None


def test_a_rehearsal_times_the_work_each_epoch_ends_with_and_changes_nothing(colour_data, tmp_path):
    from trainers.fit import _epoch_end_work

    learner = make_learner(colour_data)
    before = {k: v.clone() for k, v in learner.unwrapped.state_dict().items()}
    seen = []

    def epoch_end(lrn):
        heatmaps = SimpleNamespace(draw=lambda model: seen.append("heatmaps"))
        _epoch_end_work(lambda model: seen.append("grid"), heatmaps)(lrn)  # the checkpoints, grid and heatmaps
        seen.append(lrn.opt is not None and len(lrn.opt.state) > 0)  # written with the optimiser's state
        time.sleep(0.2)

    timing = learner.rehearse(epoch_end=epoch_end)
    assert seen == ["grid", "heatmaps", True] and timing["epoch_end_s"] >= 0.2
    no_end = {**timing, "epoch_end_s": 0.0}
    assert learner.estimate_epoch_s(timing) - learner.estimate_epoch_s(no_end) == timing["epoch_end_s"]
    assert all(torch.equal(before[k], v) for k, v in learner.unwrapped.state_dict().items())


def test_the_estimate_counts_validation_items_not_the_shortest_batch():
    """20 validation items in batches of 16: the short last batch must not set every batch's time."""
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from trainers.learner import Learner

    class Slow(nn.Module):
        def forward(self, x):
            if not self.training:
                time.sleep(0.004 * len(x))  # validation: 4 ms an item
            return x

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), Slow())
    data = TensorDataset(torch.randn(20, 4), torch.randint(0, 2, (20,)))
    learner = Learner(model, DataLoader(data, 8, drop_last=True), DataLoader(data, 16), nn.CrossEntropyLoss())
    timing = learner.rehearse()
    assert 0.004 <= timing["valid_item_s"] < 0.008
    no_training = {**timing, "train_batch_s": 0.0, "epoch_end_s": 0.0}
    assert learner.estimate_epoch_s(no_training) == pytest.approx(20 * timing["valid_item_s"])

    class TwoMorePasses(Callback):  # as precise batch norm says: two training batches forward again
        def forward_batches(self):
            return 2

    learner.add_callbacks([TwoMorePasses()])
    assert learner.estimate_epoch_s(no_training) == pytest.approx((20 + 2 * 8) * timing["valid_item_s"])
