"""Neural style loss (Gatys et al.): content is where VGG activations are, style is which of them
fire together (their Gram matrices), both measured on an ImageNet VGG16-BN.

Layers are named by VGG block, 1 to 5: the activation at the end of each block, just before its
max pool (the course's lesson 13 choice). The loss is
  content_weight * sum over content blocks of MSE(activations(image), activations(content photo))
+ style_weight * sum over style blocks of MSE(Gram(image), Gram(style image)),
with Gram matrices scaled by C*H*W (trainers.losses.gram_matrix), so a style image of another
size still compares. Default weights (1 and 1e6) are those of PyTorch's neural-style tutorial,
whose Gram matrices are scaled the same way. Images come in [0, 1] and are ImageNet-normalised here.
"""
import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .augment import IMAGENET_MEAN, IMAGENET_STD
from .errors import ConfigError
from .losses import gram_matrix
from .models.vgg_features import layers_before_pools

CONTENT_BLOCKS = (4,)
STYLE_BLOCKS = (1, 2, 3, 4, 5)


def check_blocks(blocks, name) -> tuple:
    if (not isinstance(blocks, (list, tuple)) or not blocks
            or not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 5 for b in blocks)):
        raise ConfigError(f"'extra.{name}' must be a list of VGG block numbers from 1 to 5, e.g. [1, 2, 3], not {blocks!r}.")
    return tuple(sorted(set(blocks)))


class StyleLoss(nn.Module):
    def __init__(self, features: nn.Sequential, style_image: torch.Tensor, content_blocks=CONTENT_BLOCKS,
                 style_blocks=STYLE_BLOCKS, content_weight=1.0, style_weight=1e6):
        super().__init__()
        ends = layers_before_pools(features)
        self.content_ids = [ends[b - 1] for b in content_blocks]
        self.style_ids = [ends[b - 1] for b in style_blocks]
        self.features = features[: max(self.content_ids + self.style_ids) + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.content_weight, self.style_weight = float(content_weight), float(style_weight)
        # A dtype to run the VGG in under autocast (Gatys sets bf16 where the hardware has it);
        # Gram matrices and losses stay float32 either way.
        self.autocast_dtype = None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        with torch.no_grad():
            grams = [gram_matrix(a) for a in self.activations(style_image[None] if style_image.dim() == 3 else style_image,
                                                               self.style_ids)]
        for i, g in enumerate(grams):
            self.register_buffer(f"style_gram{i}", g)
        self.last = {}
        self._fixed = None

    def fix_content(self, content):
        """Measure a content photo's activations once, for a loop that always passes it (Gatys)."""
        with torch.no_grad():
            self._fixed = (content, self.activations(content, self.content_ids))

    def train(self, mode=True):
        super().train(mode)
        self.features.eval()  # the VGG's batch-norm statistics stay ImageNet's
        return self

    def activations(self, x, ids):
        x = (x.float() - self.mean) / self.std
        found, last = {}, max(ids)
        # No dtype of its own: leave any caller's autocast (the Learner's, for style networks) alone.
        with (torch.autocast(x.device.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
              else contextlib.nullcontext()):
            for i, layer in enumerate(self.features):
                x = layer(x)
                if i in ids:
                    found[i] = x
                if i == last:  # nothing deeper is used: stop the forward here
                    break
        if self.autocast_dtype is not None:  # Gram matrices of bf16 activations would lose too much
            return [found[i].float() for i in ids]
        return [found[i] for i in ids]

    def forward(self, image, content):
        """`image` is what is being made, `content` the photo whose content it must keep.
        self.last holds the two parts of the latest value, for reporting."""
        if self._fixed is not None and content is self._fixed[0]:
            wanted = self._fixed[1]
        else:
            with torch.no_grad():
                wanted = self.activations(content, self.content_ids)
        got = self.activations(image, sorted(set(self.content_ids + self.style_ids)))
        by_id = dict(zip(sorted(set(self.content_ids + self.style_ids)), got))
        content_loss = sum(F.mse_loss(by_id[i], w) for i, w in zip(self.content_ids, wanted))
        style_loss = 0.0
        for k, i in enumerate(self.style_ids):
            g = gram_matrix(by_id[i])
            style_loss = style_loss + F.mse_loss(g, getattr(self, f"style_gram{k}").expand_as(g))
        self.last = {"content_loss": float(content_loss.detach()) * self.content_weight,
                     "style_loss": float(style_loss.detach()) * self.style_weight}
        return self.content_weight * content_loss + self.style_weight * style_loss
