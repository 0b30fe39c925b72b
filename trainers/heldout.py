"""Fixed held-out pictures, scored after every epoch: what a generator learned, picture by picture.

A run of a task that makes pictures (restore, gan, style) picks its held-out pictures once, from
its validation set with its seed, and shows the same ones in every epoch's sample grid. After
every epoch `HeldoutRecord` keeps, in RUN/heldout/:

    inputs/00.png, targets/00.png     the pictures (once; targets where there is a clean picture)
    epoch_003/00.png                  what the model made of each, lossless
    scores.json                       {"pictures": [names], "score": "psnr", "inputs": [{input_psnr...}],
                                       "epochs": {"3": [{"psnr": .., "ssim": ..}, ...]}}

Scores are PSNR and SSIM against the clean picture where there is one (trainers/image_metrics.py).
`best_epoch` suggests the epoch to keep: the argmax of the mean recorded score; `gan_stop_epoch` is
the stopping rule for a GAN (docs/CONFIG.md, "Choosing an epoch").
"""

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .atomic import save_image, write_json
from .callbacks import Callback
from .grid import to_pil
from .image_metrics import psnr, ssim

FOLDER = "heldout"
SCORES = "scores.json"
SAME_DB = 0.05  # a picture whose PSNR moved less than this between epochs counts as unchanged
GAN_TOLERANCE_DB = 0.1  # a GAN's stopping rule: the first epoch within this of the best score


def pick(count: int, total: int, seed: int) -> list:
    """The held-out indices of a run: chosen once from its seed, the same in every epoch."""
    return random.Random(seed).sample(range(total), min(count, total))


@dataclass
class Pictures:
    """The held-out pictures as tensors in [0, 1] (CHW), ready to show and to score."""

    names: list
    model_inputs: list  # CHW tensors as the model takes them (sizes may differ)
    shown_inputs: list  # what a person sees as the input (the upscaled crappy picture)
    targets: list | None  # clean pictures, or None where there are none (style)


class HeldoutSet:
    """A run's held-out pictures and the model's outputs on them. `outputs(model)` runs the model
    once per epoch: the sample grid and the score table share that pass (see `fresh`)."""

    def __init__(
        self,
        pictures: Pictures,
        device,
        to_image: Callable = lambda out: out.float().clamp(0, 1),
        infer: Callable | None = None,
    ):
        self.pictures, self.device, self.to_image = pictures, device, to_image
        self.infer = infer or (lambda model, x: model(x))  # restore: whole pictures in tiles
        self.latest = None  # outputs of the current epoch, once computed

    @torch.inference_mode()
    def outputs(self, model) -> list:
        if self.latest is None:
            was_training = model.training
            model.eval()
            # One picture at a time: held-out pictures keep their own sizes.
            outs = [self.infer(model, x[None].to(self.device))[0] for x in self.pictures.model_inputs]
            model.train(was_training)
            self.latest = [self.to_image(o).cpu() for o in outs]
        return self.latest

    def fresh(self) -> None:
        """A new epoch's weights: the next outputs() runs the model again."""
        self.latest = None

    def scores(self, outputs) -> list:
        """[{psnr, ssim}] per picture, or [{}] where there is no clean picture."""
        if not self.pictures.targets:
            return [{} for _ in outputs]
        rows = []
        for out, clean in zip(outputs, self.pictures.targets):
            a, b = out[None].float(), clean[None].float()
            rows.append({"psnr": round(psnr(a, b).item(), 4), "ssim": round(ssim(a, b).item(), 5)})
        return rows

    def input_scores(self) -> list:
        return [{f"input_{k}": v for k, v in row.items()} for row in self.scores(self.pictures.shown_inputs)]


def read_scores(run_dir) -> dict:
    """The run's scores.json, or an empty record."""
    path = Path(run_dir) / FOLDER / SCORES
    if not path.is_file():
        return {"pictures": [], "epochs": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"pictures": [], "epochs": {}}


def output_path(run_dir, epoch: int, index: int) -> Path:
    return Path(run_dir) / FOLDER / f"epoch_{int(epoch):03d}" / f"{int(index):02d}.png"


def input_path(run_dir, index: int, kind: str = "inputs") -> Path:
    return Path(run_dir) / FOLDER / kind / f"{int(index):02d}.png"


class HeldoutRecord(Callback):
    """After every epoch: the held-out outputs as PNGs and their scores in scores.json."""

    order = 22  # after the sample grid (which computes the outputs), before the checkpoint

    def __init__(self, heldout: HeldoutSet, run_dir, score: str = "psnr"):
        self.heldout, self.root, self.score = heldout, Path(run_dir) / FOLDER, score

    def keep_epochs_up_to(self, epoch: int) -> None:
        """On resume: forget the epochs that will run again."""
        record = read_scores(self.root.parent)
        record["epochs"] = {k: v for k, v in record.get("epochs", {}).items() if int(k) <= epoch}
        if self.root.is_dir():
            self._write_scores(record)

    def before_fit(self):
        pictures = self.heldout.pictures
        for kind, images in (("inputs", pictures.shown_inputs), ("targets", pictures.targets or [])):
            (self.root / kind).mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(images):
                if not input_path(self.root.parent, i, kind).is_file():
                    save_image(to_pil(image), input_path(self.root.parent, i, kind))
        record = read_scores(self.root.parent)
        record.update(pictures=list(pictures.names), score=self.score, inputs=self.heldout.input_scores())
        record.setdefault("epochs", {})
        self._write_scores(record)

    def before_epoch(self):
        self.heldout.fresh()

    def _write_scores(self, record: dict) -> None:
        write_json(record, self.root / SCORES, indent=1)

    def after_epoch(self):
        epoch = self.learner.epoch + 1
        outputs = self.heldout.outputs(self.learner.model)
        folder = self.root / f"epoch_{epoch:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, out in enumerate(outputs):
            save_image(to_pil(out), folder / f"{i:02d}.png")
        record = read_scores(self.root.parent)
        record.setdefault("epochs", {})[str(epoch)] = self.heldout.scores(outputs)
        self._write_scores(record)
        self.heldout.fresh()


# --- reading the record -------------------------------------------------------------
def mean_scores(record: dict, score: str | None = None) -> dict:
    """{epoch: mean score over the held-out pictures}, epochs as ints, where scores exist."""
    score = score or record.get("score", "psnr")
    means = {}
    for epoch, rows in record.get("epochs", {}).items():
        values = [r[score] for r in rows if score in r]
        if values:
            means[int(epoch)] = sum(values) / len(values)
    return dict(sorted(means.items()))


def best_epoch(record: dict, score: str | None = None, higher_is_better: bool = True) -> int | None:
    """The suggested epoch: the argmax of the mean recorded score (the earliest on a tie)."""
    means = mean_scores(record, score)
    if not means:
        return None
    pick_ = max if higher_is_better else min
    return pick_(means, key=lambda e: (means[e], -e) if higher_is_better else (means[e], e))


def gan_stop_epoch(record: dict, score: str | None = None, tolerance: float = GAN_TOLERANCE_DB) -> int | None:
    """The stopping rule for a GAN (the course's, made a number): its critic and generator losses
    stay level by design and say little, so the held-out score decides; GAN training past the
    score's peak mostly adds artefacts, so the suggestion is the first epoch that comes within
    `tolerance` dB of the best score (where the score's rise levels off)."""
    means = mean_scores(record, score)
    if not means:
        return None
    top = max(means.values())
    return min(e for e, v in means.items() if v >= top - tolerance)


def picture_table(record: dict, score: str | None = None) -> tuple:
    """(headers, rows): one row per held-out picture, one column per epoch with its score and
    whether it got better (+), worse (-) or stayed (=) since the epoch before."""
    score = score or record.get("score", "psnr")
    epochs = sorted(int(e) for e in record.get("epochs", {}))
    headers = ["picture", "input"] + [f"epoch {e}" for e in epochs]
    rows = []
    for i, name in enumerate(record.get("pictures", [])):
        inputs = record.get("inputs") or []
        start = inputs[i].get(f"input_{score}") if i < len(inputs) else None
        row, before = [name, "" if start is None else f"{start:.2f}"], start
        for e in epochs:
            cells = record["epochs"][str(e)]
            value = cells[i].get(score) if i < len(cells) else None
            if value is None:
                row.append("")
                continue
            mark = (
                "" if before is None else ("=" if abs(value - before) < SAME_DB else ("+" if value > before else "-"))
            )
            row.append(f"{value:.2f} {mark}".strip())
            before = value
        rows.append(row)
    return headers, rows
