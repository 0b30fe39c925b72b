"""ResNet classifiers in the course's shape: a torchvision body and a small new head."""
import torch
from torch import nn
import torchvision

from .weights import load_pretrained_state

RESNETS = ("resnet18", "resnet34", "resnet50")


def resnet_body(arch: str, pretrained: bool) -> nn.Sequential:
    """The ResNet without its average pool and fully connected layer."""
    if arch not in RESNETS:
        raise ValueError(f"Unknown ResNet {arch!r}; choose one of {', '.join(RESNETS)}.")
    model = torchvision.models.get_model(arch, weights=None)
    if pretrained:
        model.load_state_dict(load_pretrained_state(arch))
    return nn.Sequential(*list(model.children())[:-2])


def body_channels(body: nn.Sequential) -> int:
    """Output channels of a ResNet body (512 for 18/34, 2048 for 50)."""
    last_block = body[-1][-1]
    convs = [m for m in last_block.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


class AdaptiveConcatPool2d(nn.Module):
    """Average and max pooling side by side: the head sees both (fastai's choice)."""

    def __init__(self):
        super().__init__()
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.max = nn.AdaptiveMaxPool2d(1)

    def forward(self, x):
        return torch.cat([self.max(x), self.avg(x)], dim=1)


def classifier_head(in_channels: int, n_classes: int, hidden: int = 512, dropout: float = 0.5) -> nn.Sequential:
    return nn.Sequential(
        AdaptiveConcatPool2d(),
        nn.Flatten(),
        nn.BatchNorm1d(2 * in_channels),
        nn.Dropout(dropout / 2),
        nn.Linear(2 * in_channels, hidden),
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(hidden),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_classes),
    )


class ResNetClassifier(nn.Module):
    def __init__(self, arch: str, n_classes: int, pretrained: bool = False):
        super().__init__()
        self.body = resnet_body(arch, pretrained)
        self.head = classifier_head(body_channels(self.body), n_classes)

    def forward(self, x):
        return self.head(self.body(x))

    def precompute_split(self) -> tuple:
        """(fixed, trainable) with self(x) == trainable(fixed(x)): the body and the head's
        parameter-free pooling, then the rest of the head. Precompute (precompute.py) caches what
        the fixed part gives while the body is frozen: 2 x channels numbers a picture."""
        return nn.Sequential(self.body, self.head[0], self.head[1]), self.head[2:]

    def layer_groups(self) -> list:
        """Three groups for discriminative learning rates: stem+early layers, late layers, head.
        Freezing trains only the last group."""
        return [self.body[:6], self.body[6:], self.head]
