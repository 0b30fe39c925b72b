"""Johnson et al.'s feed-forward style network: one pass stylises a photo.

Downsampling (a 9x9 convolution, then two stride-2 3x3 ones), residual blocks at 1/4 size, and
upsampling (nearest-neighbour then a convolution, which avoids the checkerboard of transposed
convolutions), every convolution after reflection padding so the borders carry no dark frame.
Instance norm (Ulyanov et al.'s improvement over the paper's batch norm) normalises each image
alone. Each upsampling goes back to the exact size of the matching encoder level, so the output
has the input's size whatever it is; a sigmoid keeps it in [0, 1].
"""
import torch
import torch.nn.functional as F
from torch import nn


def conv(ni, nf, ks, stride=1, norm=True, relu=True):
    layers = [nn.ReflectionPad2d(ks // 2), nn.Conv2d(ni, nf, ks, stride)]
    if norm:
        layers.append(nn.InstanceNorm2d(nf, affine=True))
    if relu:
        layers.append(nn.ReLU(True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.body = nn.Sequential(conv(n, n, 3), conv(n, n, 3, relu=False))

    def forward(self, x):
        return x + self.body(x)


class StyleNet(nn.Module):
    def __init__(self, width: int = 32, residual_blocks: int = 5):
        super().__init__()
        w = width
        self.down = nn.ModuleList([conv(3, w, 9), conv(w, 2 * w, 3, stride=2), conv(2 * w, 4 * w, 3, stride=2)])
        self.res = nn.Sequential(*[ResidualBlock(4 * w) for _ in range(residual_blocks)])
        self.up = nn.ModuleList([conv(4 * w, 2 * w, 3), conv(2 * w, w, 3)])
        self.out = conv(w, 3, 9, norm=False, relu=False)

    def forward(self, x):
        sizes = []
        for layer in self.down:
            sizes.append(x.shape[-2:])
            x = layer(x)
        x = self.res(x)
        for layer, size in zip(self.up, reversed(sizes[1:])):
            x = layer(F.interpolate(x, size=tuple(size), mode="nearest"))
        return torch.sigmoid(self.out(x))
