"""The U-Net: shapes for every encoder and odd sizes, hooks, ICNR, layer groups; the losses and
metrics it trains with."""
import gc
import weakref

import pytest
import torch
import torch.nn.functional as F

from trainers.image_metrics import psnr, ssim
from trainers.losses import FeatureLoss, gram_matrix
from trainers.models.unet import PixelShuffleICNR, UNet
from trainers.models.vgg_features import ARCH, pretrained_vgg_features, vgg16_bn_features
from trainers.models.weights import weights_file
from trainers.seg_metrics import Dice, MeanIoU, PixelAccuracy

ODD_SIZES = [(32, 32), (33, 47), (45, 64), (17, 19)]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("arch", ["resnet18", "resnet34", "resnet50"])
def test_output_size_equals_input_size_for_odd_sizes(arch):
    torch.manual_seed(0)
    model = UNet(arch, n_out=4).eval()
    with torch.no_grad():
        for h, w in ODD_SIZES:
            assert model(torch.randn(1, 3, h, w)).shape == (1, 4, h, w), (arch, h, w)


@pytest.mark.parametrize("scale", [2, 3])
def test_super_resolution_output_is_scale_times_the_input(scale):
    model = UNet("resnet18", n_out=3, scale=scale, blur=True, self_attention=True,
                 image_residual=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))).eval()
    with torch.no_grad():
        for h, w in [(24, 24), (21, 30)]:
            assert model(torch.randn(2, 3, h, w)).shape == (2, 3, h * scale, w * scale)


def test_image_residual_starts_as_the_bicubic_upscale():
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    model = UNet("resnet18", n_out=3, scale=2, image_residual=(mean, std)).eval()
    image = torch.rand(1, 3, 20, 20)
    x = (image - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    expected = F.interpolate(image, scale_factor=2, mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_hooks_are_released_and_the_model_gives_the_same_answer_without_them():
    torch.manual_seed(0)
    model = UNet("resnet18", n_out=2).eval()
    hooked = [m for m in model.encoder if m._forward_hooks]
    assert len(hooked) == 4 and model.has_hooks
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        before = model(x)
        # Activations are not kept between calls (no batch held alive by the hooks).
        assert all(s.stored is None for s in model._stores)
        model.remove_hooks()
        assert not model.has_hooks and not any(m._forward_hooks for m in model.encoder)
        assert torch.equal(model(x), before)
        assert torch.equal(torch.jit.trace(model, x)(x), before)


def test_deleting_the_model_removes_its_hooks():
    model = UNet("resnet18", n_out=2)
    layer = model.encoder[4]
    assert layer._forward_hooks
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None and not layer._forward_hooks


def test_icnr_makes_neighbouring_subpixels_equal_at_init():
    torch.manual_seed(0)
    up = PixelShuffleICNR(8, 4, scale=2, blur=False)
    out = up(torch.randn(2, 8, 5, 7))
    assert out.shape == (2, 4, 10, 14)
    corner = out[..., 0::2, 0::2]
    for dy, dx in [(0, 1), (1, 0), (1, 1)]:
        assert torch.equal(out[..., dy::2, dx::2], corner)
    assert corner.abs().sum() > 0


def test_layer_groups_cover_every_parameter_once():
    model = UNet("resnet18", n_out=3, self_attention=True)
    groups = model.layer_groups()
    assert len(groups) == 3
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


# --- metrics -----------------------------------------------------------------------
def test_dice_iou_and_pixel_accuracy_match_hand_computed_values():
    target = torch.tensor([[[0, 0, 1, 1], [0, 2, 2, 1]]])  # 8 pixels, class 2 is void below
    pred = torch.tensor([[[0, 1, 1, 1], [0, 2, 0, 1]]])
    logits = F.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    # class 0: P={0,4,6} T={0,1,4} I=2 -> dice 4/6, iou 2/4; class 1: P={1,2,3,7} T={2,3,7} I=3 -> dice 6/7, iou 3/4
    # class 2: P={5} T={5,6} I=1 -> dice 2/3, iou 1/2
    results = {}
    for metric in (PixelAccuracy(3), Dice(3), MeanIoU(3)):
        metric.reset()
        metric.accumulate(logits[:, :, :, :2], target[:, :, :2])  # two batches: counts add up
        metric.accumulate(logits[:, :, :, 2:], target[:, :, 2:])
        results[metric.name] = metric.value
    assert results["pixel_accuracy"] == pytest.approx(6 / 8)
    assert results["dice"] == pytest.approx((4 / 6 + 6 / 7 + 2 / 3) / 3)
    assert results["iou"] == pytest.approx((2 / 4 + 3 / 4 + 1 / 2) / 3)
    # With class 2 as void, its pixels (5, 6) leave every count and it is not averaged.
    # class 0: P={0,4} T={0,1,4} I=2 -> dice 4/5, iou 2/3; class 1: as before (pixels 5, 6 not in it).
    void = {m.name: m for m in (PixelAccuracy(3, void=2), Dice(3, void=2), MeanIoU(3, void=2))}
    for metric in void.values():
        metric.accumulate(logits, target)
    assert void["pixel_accuracy"].value == pytest.approx(5 / 6)
    assert void["dice"].value == pytest.approx((4 / 5 + 6 / 7) / 2)
    assert void["iou"].value == pytest.approx((2 / 3 + 3 / 4) / 2)


def test_psnr_and_ssim():
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 24, 24) * 0.8  # room below 1: psnr clamps its prediction to [0, 1]
    assert psnr(clean + 0.1, clean)[0].item() == pytest.approx(20.0, abs=1e-3)  # mse 0.01 -> 20 dB
    assert torch.allclose(ssim(clean, clean), torch.ones(2))
    noisy = (clean + 0.2 * torch.randn_like(clean)).clamp(0, 1)
    noisier = (clean + 0.4 * torch.randn_like(clean)).clamp(0, 1)
    assert (ssim(noisier, clean) < ssim(noisy, clean)).all() and (ssim(noisy, clean) < 0.99).all()


# --- losses -----------------------------------------------------------------------
def test_gram_matrices_are_per_image():
    torch.manual_seed(0)
    a, b = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    grams = gram_matrix(torch.cat([a, b]))
    assert grams.shape == (2, 4, 4)
    assert torch.allclose(grams[0], gram_matrix(a)[0]) and torch.allclose(grams[1], gram_matrix(b)[0])
    assert not torch.allclose(grams[0], grams[1])
    flat = a.reshape(4, 36)
    assert torch.allclose(grams[0], flat @ flat.T / (4 * 36))


def _write_random_vgg_features():
    """A VGG16-BN weights file (seeded random values) where torch looks for it; only the
    convolutional features, which is all the feature loss reads (the real file has them too)."""
    torch.manual_seed(7)
    state = {f"features.{k}": v for k, v in vgg16_bn_features().state_dict().items()}
    path = weights_file(ARCH)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_feature_loss_is_zero_for_identical_images_and_grows_with_difference(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = _write_random_vgg_features()
    features = pretrained_vgg_features()
    assert torch.equal(features[0].weight, state["features.0.weight"])
    loss = FeatureLoss(features)
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 32, 32)
    target = torch.stack([clean, clean], dim=1)  # restoration targets carry a baseline too
    assert loss(clean, target).item() == 0.0
    values = [loss((clean + s * torch.randn_like(clean)).clamp(0, 1), target).item() for s in (0.05, 0.15, 0.4)]
    assert 0 < values[0] < values[1] < values[2]
    pred = clean.clone().requires_grad_(True)
    loss((pred + 0.1).clamp(0, 1), clean).backward()
    assert pred.grad.abs().sum() > 0 and all(p.grad is None for p in loss.features.parameters())


def test_group_norm_unet_has_no_batch_statistics_and_answers_alike_in_train_and_eval_mode():
    """norm="group" (restore from scratch): no batch norm left, encoder included, so eval mode
    uses the same per-image statistics as training; zero-initialised norms stay zero, so the
    residual blocks still start as identities."""
    torch.manual_seed(0)
    model = UNet("resnet18", n_out=3, norm="group", self_attention=True, image_residual=((0.5,) * 3, (0.25,) * 3))
    assert not [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert [m for m in model.encoder.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert model.final.convs[1][1].weight.abs().sum() == 0
    x = torch.randn(2, 3, 37, 45)
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
        alone = model(x[:1])  # one image's answer does not depend on the others in its batch
    assert train_out.shape == (2, 3, 37, 45)
    assert torch.allclose(train_out, eval_out, atol=1e-5) and torch.allclose(alone, eval_out[:1], atol=1e-5)
    with pytest.raises(ValueError, match="norm"):
        UNet("resnet18", n_out=3, norm="instance")
