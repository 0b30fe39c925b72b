"""Sample grids that read on the page: caption sizes, enlarged small tiles, the wgan's square."""
import numpy as np
import torch
from PIL import Image

from trainers.grid import caption_size, captioned, enlarged, grid
from trainers.tasks.wgan import FixedNoiseSampler


def test_captions_grow_with_the_tile_and_never_fall_below_14_px():
    assert caption_size(128) == 14 and caption_size(320) == 32
    tile = captioned(Image.new("RGB", (32, 32), (255, 0, 0)), "7 (7)", tile=160)
    assert tile.size == (160, 160 + caption_size(160) + 8)
    strip = np.asarray(tile)[160:]
    assert (strip > 200).any()  # the caption's light pixels are drawn in the strip


def test_small_tiles_are_enlarged_by_a_whole_factor_and_large_ones_kept():
    small = Image.new("RGB", (40, 30))
    assert enlarged(small, 128).size == (200, 150)  # factor 5: the shorter side 150 >= 128
    assert enlarged(Image.new("RGB", (300, 200)), 128).size == (300, 200)
    assert grid([small] * 4, columns=2, min_side=128, pad=4).size == (2 * 204 + 4, 2 * 154 + 4)


class TinyGenerator(torch.nn.Module):
    """Latents of size 4 to 16 x 16 pictures in [-1, 1], as the wgan's generator draws them."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 3 * 16 * 16)

    def noise(self, count, generator, device):
        return torch.randn(count, 4, generator=generator).to(device)

    def forward(self, z):
        return torch.tanh(self.layer(z)).view(-1, 3, 16, 16)


def test_a_wgan_sample_grid_is_a_square_of_tiles_at_a_useful_size():
    sampler = FixedNoiseSampler(TinyGenerator(), 16, seed=0, device="cpu")
    picture = sampler(TinyGenerator())
    tile = 128 + 4
    assert picture.size == (4 * tile + 4, 4 * tile + 4)  # 4 x 4 tiles of 128 px (16 px drawn, x8)
