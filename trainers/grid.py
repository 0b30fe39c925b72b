"""Sample grids: tensors to PIL images, tiles with captions, side-by-side rows."""
import math

import torch
from PIL import Image, ImageDraw, ImageFont


def to_pil(x: torch.Tensor) -> Image.Image:
    """A CHW float tensor in [0, 1] (or HW) to an RGB image."""
    x = x.detach().float().cpu().clamp(0, 1)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    array = (x.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    return Image.fromarray(array, "RGB")


TILE = 160  # a sample tile's width in pixels


def caption_size(tile: int) -> int:
    """A caption's font size for a tile `tile` pixels wide: a tenth of it, at least 14 px, so that
    a grid shown at half its size on the page still reads (12 px captions on 128 px tiles did not)."""
    return max(14, tile // 10)


def captioned(image: Image.Image, caption: str, colour=(230, 230, 230), tile=TILE) -> Image.Image:
    """The image scaled to `tile` pixels wide with a caption strip under it."""
    image = image.resize((tile, max(1, round(image.height * tile / image.width))), Image.NEAREST)
    size = caption_size(tile)
    font = ImageFont.load_default(size=size)
    canvas = Image.new("RGB", (tile, image.height + size + 8), (24, 24, 24))
    canvas.paste(image, (0, 0))
    ImageDraw.Draw(canvas).text((4, image.height + 3), caption, fill=colour, font=font)
    return canvas


def enlarged(image: Image.Image, min_side: int) -> Image.Image:
    """The image scaled up by a whole factor (nearest neighbour: pixels stay sharp) until its
    shorter side is at least `min_side`; larger images are returned as they are."""
    factor = -(-min_side // max(1, min(image.size)))
    return image if factor <= 1 else image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def grid(images, columns=None, pad=4, background=(24, 24, 24), min_side=None) -> Image.Image:
    """Tiles of equal size in rows; with `min_side`, small tiles are enlarged to it first."""
    images = list(images)
    if not images:
        return Image.new("RGB", (64, 64), background)
    if min_side:
        images = [enlarged(im, min_side) for im in images]
    columns = columns or math.ceil(math.sqrt(len(images)))
    w = max(im.width for im in images)
    h = max(im.height for im in images)
    rows = math.ceil(len(images) / columns)
    canvas = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + pad) + pad), background)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        canvas.paste(im, (pad + c * (w + pad), pad + r * (h + pad)))
    return canvas


def side_by_side(rows) -> Image.Image:
    """Each row is a list of images (e.g. input | prediction | target); one row per item."""
    rows = [list(r) for r in rows]
    columns = max(len(r) for r in rows)
    return grid([im for r in rows for im in r], columns=columns)
