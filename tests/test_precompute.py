"""Precompute: the frozen body's activations cached, the head trained on them (trainers/precompute.py).

Every test writes a weights file into a temporary TORCH_HOME (the run is pretrained) and trains on
the tiny colour classes with one thread.
"""

import torch
from PIL import Image

from trainers import RunConfig, fit
from trainers.fit import _build
from trainers.models import weights_file
from trainers.precompute import Precompute
from conftest import tiny_config, write_fake_weights

# Cached activations are computed in validation-sized batches, live ones in training batches; a
# convolution's sums then differ in the last bits (about 1e-7 of a value), and a few Adam steps
# keep such differences tiny. Identical here means within this tolerance, weights and losses.
TOLERANCE = 1e-4


def _learner(data, monkeypatch, tmp_path, cache=None, **changes):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    if cache is not None:
        monkeypatch.setenv("DARKROOM_ACTIVATION_CACHE", str(cache))
    else:
        monkeypatch.delenv("DARKROOM_ACTIVATION_CACHE", raising=False)
    settings = dict(pretrained=True, freeze_epochs=2, epochs=2, augment=False, seed=7)
    settings.update(changes)
    config = RunConfig.from_dict(tiny_config(data, **settings)).validate()
    return _build(config, "cpu")[3]


def _precompute(learner) -> Precompute:
    found = [cb for cb in learner.callbacks if isinstance(cb, Precompute)]
    assert len(found) == 1, "a pretrained classify run with a frozen phase adds precompute"
    return found[0]


class Losses:
    """Training losses and validation results, per batch and per epoch."""

    order = 40
    learner = None

    def __init__(self):
        self.losses, self.valid = [], []

    def after_batch(self):
        self.losses.append(self.learner.loss_value)

    def after_epoch(self):
        self.valid.append(dict(self.learner.epoch_metrics))


def _train_frozen(learner, epochs=2):
    losses = Losses()
    learner.add_callbacks([losses])
    learner.freeze()
    learner.fit_one_cycle(epochs, 3e-3)
    return losses


def test_head_from_cached_and_from_live_activations_trains_the_same(tmp_path, colour_data, monkeypatch, one_thread):
    (tmp_path / "torch").mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    fake = write_fake_weights("resnet18")
    cached = _learner(colour_data, monkeypatch, tmp_path)
    live = _learner(colour_data, monkeypatch, tmp_path)
    live_cb = _precompute(live)
    live_cb.live = True
    body_before = {k: v.clone() for k, v in cached.model.body.state_dict().items()}

    with_cache, without = _train_frozen(cached), _train_frozen(live)
    assert _precompute(cached).cache.computed == 2  # validation once, one training view
    assert live_cb.cache.computed == 0  # the live path computes nothing ahead

    assert len(with_cache.losses) == len(without.losses) > 0
    assert max(abs(a - b) for a, b in zip(with_cache.losses, without.losses)) < TOLERANCE
    for a, b in zip(with_cache.valid, without.valid):
        assert abs(a["valid_loss"] - b["valid_loss"]) < TOLERANCE and a["accuracy"] == b["accuracy"]
    head_a, head_b = cached.model.head.state_dict(), live.model.head.state_dict()
    for name in head_a:
        assert torch.allclose(head_a[name].float(), head_b[name].float(), atol=TOLERANCE), name
    # The head learnt; the body, its batch norm included, is exactly the file's (frozen whole).
    assert with_cache.losses[-1] < with_cache.losses[0]
    body_after = cached.model.body.state_dict()
    assert all(torch.equal(body_before[k], body_after[k]) for k in body_before)
    assert torch.equal(body_after["0.weight"], fake["conv1.weight"])
    assert torch.equal(body_after["1.running_mean"], fake["bn1.running_mean"])
    # Afterwards the model is whole again: its own forward, trainable batch norm, pictures in.
    assert "forward" not in cached.model.__dict__
    assert cached.model.body[1].weight.requires_grad
    assert cached.model(torch.zeros(2, 3, 32, 32)).shape == (2, 3)


def test_cache_is_kept_and_computed_again_when_size_weights_or_views_change(
    tmp_path, colour_data, monkeypatch, one_thread
):
    (tmp_path / "torch").mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    write_fake_weights("resnet18")
    cache = tmp_path / "activations"

    def computed(frozen=1, **changes):
        learner = _learner(colour_data, monkeypatch, tmp_path, cache=cache, **changes)
        _train_frozen(learner, epochs=frozen)
        return _precompute(learner).cache.computed

    assert computed() == 2  # validation and the first training view
    assert len(list(cache.glob("*.pt"))) == 2
    assert computed() == 0  # the same run again: all from the folder
    assert computed(image_size=48) == 2  # another size: everything again
    # Augmented views: the first of 2, then the first of 3 (another number of views), then found.
    assert computed(augment=True, extra={"precompute_views": 2}) == 1  # training only
    assert computed(augment=True, extra={"precompute_views": 3}) == 1
    assert computed(augment=True, extra={"precompute_views": 3}) == 0
    assert computed(seed=8) == 2  # another seed: another split, other augmentations
    # Other weights (the file replaced): everything again.
    path = weights_file("resnet18")
    state = torch.load(path, weights_only=True)
    state["conv1.weight"] += 0.01
    torch.save(state, path)
    assert computed() == 2


def test_augmented_views_differ_and_frozen_epochs_take_them_in_turn(tmp_path, colour_data, monkeypatch, one_thread):
    (tmp_path / "torch").mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    write_fake_weights("resnet18")
    learner = _learner(colour_data, monkeypatch, tmp_path, augment=True, extra={"precompute_views": 2})
    seen = []

    class Inputs:
        order, learner = 50, None

        def before_epoch(self):
            seen.append(self.learner.train_dl.dataset.tensors[0])

    learner.add_callbacks([Inputs()])
    _train_frozen(learner, epochs=3)
    assert not torch.equal(seen[0], seen[1]) and torch.equal(seen[0], seen[2])
    assert seen[0].shape[1] == 1024  # resnet18's 512 channels, max- and average-pooled


def test_precompute_off_from_scratch_or_without_a_frozen_phase(tmp_path, colour_data, monkeypatch):
    (tmp_path / "torch").mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    write_fake_weights("resnet18")
    for changes in ({"pretrained": False}, {"freeze_epochs": 0}, {"extra": {"precompute": False}}):
        learner = _learner(colour_data, monkeypatch, tmp_path, **changes)
        assert not any(isinstance(cb, Precompute) for cb in learner.callbacks), changes


def test_a_run_with_precompute_completes_and_its_checkpoint_loads_in_try(
    tmp_path, colour_data, monkeypatch, one_thread
):
    from studio.checkpoints import load_checkpoint

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("DARKROOM_ACTIVATION_CACHE", raising=False)
    write_fake_weights("resnet18")
    out = tmp_path / "run"
    result = fit(tiny_config(colour_data, pretrained=True, epochs=2, freeze_epochs=1), out)
    assert result["status"] == "completed" and result["epochs_done"] == 2
    log = (out / "log.txt").read_text()
    assert "precompute: the frozen body's activations are cached" in log and "phase unfrozen" in log
    assert (out / "samples" / "epoch_001.png").is_file()  # the frozen epoch's grid: whole model, pictures
    model = load_checkpoint(out)
    top = model.probabilities(Image.new("RGB", (32, 32), (200, 40, 40)))
    assert len(top) == 3 and abs(sum(p for _, p in top) - 1) < 1e-5
