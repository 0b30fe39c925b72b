"""style: neural style transfer, two ways (extra.mode).

"network" (default; Johnson et al.): a feed-forward StyleNet trains on a folder of photos to keep
each photo's content (VGG activations) while taking on the style image's Gram matrices; then any
photo is stylised in one pass. It runs on the ordinary Learner: an item is (photo, photo) and the
loss is StyleLoss(output, photo). Validation photos (a seeded valid_pct of the folder) make the
per-epoch grid: photo | stylised.

"gatys" (Gatys et al.): no network; the pixels of one image are optimised (Adam, extra.pixel_lr)
so that its activations match a content photo and its Gram matrices the style image. A short job:
extra.steps steps in all, spread over `epochs` frames; after each frame its picture
(content | image | style) goes to samples/ and its losses to metrics.jsonl, so the image can be
watched as it forms; the final image is also written to result.png.
"""

import random
import time
from pathlib import Path

import torch
from torchvision.transforms import v2

from ..callbacks import CallbackHost
from ..data import open_rgb
from ..device import pick_device
from ..errors import ConfigError
from ..grid import captioned, side_by_side, to_pil
from ..heldout import HeldoutSet, Pictures
from ..image_folder import ImageFolderSet, scan_images
from ..metrics import Metric
from ..models.style_net import StyleNet
from ..models.vgg_features import pretrained_vgg_features
from ..run_harness import RunHarness, RunResult
from ..style_loss import CONTENT_BLOCKS, STYLE_BLOCKS, StyleLoss, check_blocks
from .registry import register
from .base import Setting, Task, TaskParts

MODES = ("network", "gatys")


def load_image(path, size: int, what: str) -> torch.Tensor:
    """(3, H, W) in [0, 1], the longer side `size` pixels."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"The {what} image was not found: {path}")
    return image_tensor(open_rgb(path), size)


def image_tensor(im, size: int) -> torch.Tensor:
    """An RGB PIL image as (3, H, W) in [0, 1], resized (bicubic) so its longer side is `size`."""
    scale = size / max(im.size)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), 3)  # bicubic
    return v2.functional.to_dtype(v2.functional.to_image(im), torch.float32, scale=True)


SETTINGS = (
    Setting(
        "mode",
        str,
        "network",
        "network (Johnson: train a network that stylises any photo) or gatys (optimise one image's pixels).",
        choices=MODES,
        label="Style transfer",
        main=True,
        choice_labels=(
            "Train a network (Johnson): stylises any photo in one pass",
            "Optimise one picture (Gatys): a short job, no network",
        ),
    ),
    Setting("style_image", str, None, "The picture whose style is copied.", widget="picture", required=True, main=True),
    Setting(
        "content_image",
        str,
        None,
        "Gatys: the photo repainted in the style (left out: the dataset's first).",
        label="Content photo",
        widget="picture",
        when=("mode", "gatys"),
        main=True,
        optional=True,
    ),
    Setting("content_weight", float, 1.0, "Weight of the content loss.", low=0),
    Setting("style_weight", float, 1e6, "Weight of the style (Gram) loss.", low=0),
    Setting(
        "steps",
        int,
        100,
        "Gatys: Adam steps on the pixels, spread over the epochs' frames.",
        low=1,
        when=("mode", "gatys"),
        main=True,
    ),
    Setting(
        "init",
        str,
        "content",
        "Gatys: start from the content photo or from noise.",
        choices=("content", "noise"),
        when=("mode", "gatys"),
    ),
    Setting("pixel_lr", float, 0.05, "Gatys: Adam's learning rate on the pixels.", low=0),
    Setting("width", int, 32, "Network: channels of the style network.", low=1),
    Setting("residual_blocks", int, 5, "Network: residual blocks of the style network.", low=0),
    Setting("images_per_epoch", int, 64, "Network: photos drawn (with repeats) per epoch.", low=1),
    Setting("flip", bool, True, "Network: random horizontal flips of the photos."),
    Setting(
        "content_layers", list, None, "VGG blocks whose activations carry the content; left out: [4].", optional=True
    ),
    Setting(
        "style_layers",
        list,
        None,
        "VGG blocks whose Gram matrices carry the style; left out: [1, 2, 3, 4, 5].",
        optional=True,
    ),
)


def _settings(config) -> dict:
    style = config.extra.get("style_image")
    if not isinstance(style, str) or not style:
        raise ConfigError("The style task needs 'extra.style_image': the path of the image whose style to copy.")
    return {
        **{s.name: s.read(config.extra) for s in SETTINGS},
        "style_image": style,
        "content_blocks": check_blocks(config.extra.get("content_layers", list(CONTENT_BLOCKS)), "content_layers"),
        "style_blocks": check_blocks(config.extra.get("style_layers", list(STYLE_BLOCKS)), "style_layers"),
    }


def _content_path(config) -> Path:
    given = config.extra.get("content_image")
    if given:
        return Path(given)
    return scan_images(config.data)[0]


def style_loss(config, s, device, size) -> StyleLoss:
    style = load_image(s["style_image"], size, "style")
    return StyleLoss(
        pretrained_vgg_features(), style, s["content_blocks"], s["style_blocks"], s["content_weight"], s["style_weight"]
    ).to(device)


@register
class Style(Task):
    name = "style"
    default_monitor = "valid_loss"
    settings_spec = SETTINGS
    dataset_kinds = ("images",)
    try_view, try_button = "stylised", "Stylise"
    try_about = "Upload a photo: it comes back in the style this run learned."
    # Gatys mode has no network to sweep, and in network mode the loss is a sum of content and
    # style terms whose scale the user's weights set: its curve says more about the weights than
    # about the rate. lr null is the task's default rate.
    lr_finder = False

    def model_from_checkpoint(self, config, info):
        return StyleNet(int(info.get("width", 32)), int(info.get("residual_blocks", 5)))

    def smoke_config(self, data, train):
        return {
            **super().smoke_config(data, train),
            "extra": {
                "style_image": str(scan_images(data)[0]),
                "width": 8,
                "residual_blocks": 1,
                "images_per_epoch": 8,
                "style_layers": [1, 2],
            },
        }

    def checkpoint_problem(self, info):
        if info.get("mode") == "gatys":
            return (
                "This style run used Gatys' method: it optimised the pixels of one picture and has no network "
                "to apply to other photos. Its picture is result.png in the run folder; to stylise any photo, "
                "train a style run in network mode."
            )
        return ""

    def validate(self, config):
        s = _settings(config)
        load_image(s["style_image"], 16, "style")
        if s["mode"] == "gatys":
            load_image(_content_path(config), 16, "content")
            if s["steps"] < config.epochs:
                raise ConfigError(
                    f"Gatys mode shows one frame per epoch: 'extra.steps' ({s['steps']}) must be at least "
                    f"'epochs' ({config.epochs})."
                )
        else:
            train, _ = _split(scan_images(config.data), config)
            if config.batch_size > max(len(train), s["images_per_epoch"]):
                raise ConfigError(
                    f"The batch size ({config.batch_size}) is larger than an epoch "
                    f"({s['images_per_epoch']} images); lower it or raise 'extra.images_per_epoch'."
                )

    def own_fit(self, config):
        return fit_gatys if _settings(config)["mode"] == "gatys" else None

    def build(self, config, device) -> TaskParts:
        s = _settings(config)
        train, valid = _split(scan_images(config.data), config)
        size = config.image_size
        flip = bool(config.extra.get("flip", True))
        train_ds = ImageFolderSet(
            train, size, train=True, augment=config.augment, flip=flip, length=s["images_per_epoch"]
        )
        valid_ds = ImageFolderSet(valid, size)
        loss = style_loss(config, s, device, size)
        model = StyleNet(s["width"], s["residual_blocks"])
        heldout = _network_heldout(valid_ds, config.sample_count, device)
        return TaskParts(
            model=model,
            train_ds=train_ds,
            valid_ds=valid_ds,
            loss_fn=loss,
            metrics=[LossPart(loss, "content_loss"), LossPart(loss, "style_loss")],
            monitor=config.monitor or self.default_monitor,
            higher_is_better=False,
            sample_fn=_network_sampler(heldout),
            heldout=heldout,
            info={
                "mode": "network",
                "style_image": s["style_image"],
                "image_size": size,
                "width": s["width"],
                "residual_blocks": s["residual_blocks"],
                "train_count": len(train),
                "valid_count": len(valid),
                "loss": f"style loss: content blocks {list(s['content_blocks'])} x {s['content_weight']}, "
                f"style blocks {list(s['style_blocks'])} x {s['style_weight']} (VGG16-BN)",
            },
        )


def _split(paths, config):
    """A seeded valid_pct of the photos (at least one) for the per-epoch grid; the rest trains.
    A single photo serves both."""
    if len(paths) < 2:
        return paths, paths
    shuffled = list(paths)
    random.Random(config.seed).shuffle(shuffled)
    n_valid = min(max(1, round(len(paths) * config.valid_pct)), len(paths) - 1)
    return sorted(shuffled[n_valid:]), sorted(shuffled[:n_valid])


class LossPart(Metric):
    """The content or style part of the style loss over the validation pass (the Learner calls the
    loss on each validation batch just before the metrics, so the parts are already measured)."""

    higher_is_better = False

    def __init__(self, loss, part):
        self.loss, self.name = loss, part

    def accumulate(self, pred, target):
        self.total += self.loss.last[self.name] * len(pred)
        self.count += len(pred)


def _network_heldout(valid_ds, count, device) -> HeldoutSet:
    """The first `count` validation photos (the split is seeded): no clean picture to score
    against, so the record keeps the outputs only."""
    indices = list(range(min(count, len(valid_ds))))
    xs = torch.stack([valid_ds[i][0] for i in indices])
    names = [Path(valid_ds.paths[i]).stem for i in indices]
    return HeldoutSet(Pictures(names, xs, list(xs), None), device)


def _network_sampler(heldout: HeldoutSet):
    def sample(model):
        heldout.fresh()
        outs = heldout.outputs(model)
        return side_by_side(
            [
                [captioned(to_pil(x), "photo"), captioned(to_pil(y), "stylised")]
                for x, y in zip(heldout.pictures.shown_inputs, outs)
            ]
        )

    return sample


# --- Gatys: optimise pixels ------------------------------------------------------------
class PixelLoop(CallbackHost):
    """The Gatys loop: Adam on one image's pixels, `per_frame[i]` steps in frame i, with the
    Learner's events, so the run harness's callbacks (checkpoints, frames, progress) work on it.
    The image is its `model`: what the frame picture draws and what a checkpoint holds."""

    def __init__(self, image, opt, loss_fn, content, per_frame):
        self.image, self.opt, self.loss_fn, self.content, self.per_frame = image, opt, loss_fn, content, per_frame
        self.callbacks = []
        self.epoch, self.batch_index, self.batches, self.stop = 0, 0, 0, False
        self.epoch_metrics, self.extra_state, self.loss = {}, {}, None
        self.steps_done = 0

    model = property(lambda self: self.image)
    loss_value = property(lambda self: self.loss)
    batch_lr = property(lambda self: self.opt.param_groups[0]["lr"])

    def step(self):
        loss = self.loss_fn(self.image, self.content)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.image.clamp_(0, 1)
        self.loss = loss.item()
        self.steps_done += 1

    def fit(self, first_frame: int = 0):
        self.stop = False
        self.steps_done = sum(self.per_frame[:first_frame])
        self.fire("before_fit")
        try:
            for self.epoch in range(first_frame, len(self.per_frame)):
                began = time.perf_counter()
                self.batches = self.per_frame[self.epoch]
                totals = {"train_loss": 0.0, "content_loss": 0.0, "style_loss": 0.0}
                for self.batch_index in range(self.batches):
                    self.fire("before_batch")
                    if self.stop:
                        break
                    self.step()
                    for key, value in (("train_loss", self.loss), *self.loss_fn.last.items()):
                        totals[key] += value / self.batches
                    self.fire("after_batch")
                if self.stop:
                    break
                self.epoch_metrics = {
                    "epoch": self.epoch + 1,
                    **totals,
                    "steps": self.steps_done,
                    "seconds": round(time.perf_counter() - began, 3),
                }
                self.fire("after_epoch")
        finally:
            self.fire("after_fit")

    def state(self, extra=None):
        return {
            "image": self.image.detach().cpu(),
            "optimizer": self.opt.state_dict(),
            "epoch": self.epoch + 1,
            "metrics": dict(self.epoch_metrics),
            **self.extra_state,
            **(extra or {}),
        }


def gatys_autocast_dtype(device: torch.device):
    """bf16 for the VGG passes on a CUDA GPU that has it, else None (float32). Not on CPUs: even
    with AVX512-BF16 (oneDNN says bf16 is supported) a 256 px step took 1.57 times as long in
    bf16 as in float32 here (bench/gatys_speed.py --both)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return None


def fit_gatys(config, out_dir, reporter=None, resume=False, device=None) -> RunResult:
    s = _settings(config)
    device = device if isinstance(device, torch.device) else pick_device(device)
    harness = RunHarness(config, out_dir, reporter, resume)
    torch.manual_seed(config.seed)
    content = load_image(_content_path(config), config.image_size, "content").to(device)[None]
    loss_fn = style_loss(config, s, device, config.image_size)
    loss_fn.autocast_dtype = gatys_autocast_dtype(device) if config.mixed_precision else None
    loss_fn.fix_content(content)
    init = config.extra.get("init", "content")
    if init not in ("content", "noise"):
        raise ConfigError(f'\'extra.init\' must be "content" or "noise", not {init!r}.')
    start = content.clone() if init == "content" else torch.rand_like(content)
    image = start.requires_grad_(True)
    opt = torch.optim.Adam([image], lr=s["pixel_lr"])
    per_frame = [
        s["steps"] // config.epochs + (1 if i < s["steps"] % config.epochs else 0) for i in range(config.epochs)
    ]
    run = PixelLoop(image, opt, loss_fn, content, per_frame)
    if harness.checkpoint is not None:
        with torch.no_grad():
            image.copy_(harness.checkpoint["image"].to(device))
        opt.load_state_dict(harness.checkpoint["optimizer"])
    report = harness.open(unit="frame")
    style_tile = load_image(s["style_image"], config.image_size, "style")
    content_tile = content[0].cpu()

    def frame(img):
        tile = max(128, min(config.image_size, 256))
        return side_by_side(
            [
                [
                    captioned(to_pil(content_tile), "content", tile=tile),
                    captioned(to_pil(img[0]), f"after {run.steps_done} steps", tile=tile),
                    captioned(to_pil(style_tile), "style", tile=tile),
                ]
            ]
        )

    run.add_callbacks(harness.callbacks(frame, "train_loss", False))
    run.extra_state = {
        "task": "style",
        "config": config.to_dict(),
        "info": {"mode": "gatys", "style_image": s["style_image"], "image_size": config.image_size},
    }
    harness.start(device, per_frame[0], s["pixel_lr"])
    report.log(
        f"style (Gatys) on {device}: {s['steps']} steps of Adam on the pixels (lr {s['pixel_lr']}), "
        f"{config.epochs} frames, image {content.shape[-1]}x{content.shape[-2]}, VGG in "
        f"{str(loss_fn.autocast_dtype or torch.float32).removeprefix('torch.')}"
    )
    run.fit(first_frame=harness.done)
    if not run.stop:
        to_pil(image[0]).save(harness.out / "result.png")
    return harness.finish(run, device, s["pixel_lr"])
