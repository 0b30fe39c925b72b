"""GAN networks: a DCGAN generator that draws images from noise, and a critic.

The generator (Radford et al.) turns a latent vector into a 4x4 map with a transposed
convolution, then doubles the grid with stride-2 transposed convolutions, batch norm and ReLU,
and ends in tanh, so it draws images in [-1, 1].

The critic halves the grid with stride-2 convolutions and leaky ReLUs until it is 4x4 or
smaller, then a 3x3 convolution gives one score per position, averaged to one score per image
(so any input size works). It has no batch norm: a Wasserstein critic's gradient penalty is
taken per image, and batch statistics would mix images. With `spectral=True` every convolution
is spectrally normalised (Miyato et al.: its weight is divided by its largest singular value,
estimated by a power iteration at each training forward), which keeps the critic Lipschitz;
the restoration GAN's critic uses it, as fastai's does. Self-attention (SAGAN) is optional.
"""
import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .unet import SelfAttention


class Generator(nn.Module):
    def __init__(self, size: int = 64, latent: int = 100, width: int = 64, channels: int = 3):
        super().__init__()
        if size < 8 or size & (size - 1):
            raise ValueError(f"The generator draws square images whose side is a power of two from 8 up; {size} is not.")
        self.size, self.latent = size, latent
        doublings = int(math.log2(size)) - 3  # 4x4 -> size/2 by doublings, then the output layer
        nf = width * 2 ** doublings
        layers = [nn.ConvTranspose2d(latent, nf, 4, 1, 0, bias=False), nn.BatchNorm2d(nf), nn.ReLU(True)]
        for _ in range(doublings):
            layers += [nn.ConvTranspose2d(nf, nf // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(nf // 2), nn.ReLU(True)]
            nf //= 2
        layers += [nn.ConvTranspose2d(nf, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        for m in self.modules():  # DCGAN's initialisation
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def noise(self, n: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
        """n latent points; a seeded `generator` gives the same points every time."""
        return torch.randn(n, self.latent, 1, 1, generator=generator).to(device)

    def forward(self, z):
        return self.net(z.view(z.shape[0], self.latent, 1, 1))


class Critic(nn.Module):
    def __init__(self, size: int = 64, width: int = 64, channels: int = 3, spectral: bool = True,
                 self_attention: bool = False, max_width: int = 512):
        super().__init__()
        norm = spectral_norm if spectral else (lambda m: m)
        layers = [norm(nn.Conv2d(channels, width, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        grid, nf = size // 2, width
        first = True
        while grid > 4:
            nf_out = min(nf * 2, max_width)
            layers += [norm(nn.Conv2d(nf, nf_out, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            nf, grid = nf_out, grid // 2
            if self_attention and first:  # at the second level, where the grid is still fine
                attention = SelfAttention(nf)
                if spectral:
                    for name in ("query", "key", "value"):
                        setattr(attention, name, spectral_norm(getattr(attention, name)))
                layers.append(attention)
                first = False
        layers.append(norm(nn.Conv2d(nf, 1, 3, 1, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).mean(dim=(1, 2, 3))  # one score per image, whatever the input size


def spectrally_normalised_layers(model: nn.Module) -> list:
    """The modules whose weight carries a spectral-norm parametrization."""
    return [m for m in model.modules()
            if hasattr(m, "parametrizations") and "weight" in m.parametrizations]
