"""Hostile pictures and archives: each is refused or converted, with a sentence saying why."""
import io
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image

from studio.datasets.errors import DatasetError
from studio.datasets.safe_io import UnreadableImage, extract_zip, open_image


def png_bytes(im: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def two_colour(w=20, h=10) -> Image.Image:
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)
    a[:, w // 2:] = (0, 0, 255)
    return Image.fromarray(a)


# ---------- pictures ----------

def test_truncated_png_is_refused(tmp_path):
    data = png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="cut.png is damaged or truncated"):
        open_image(tmp_path / "cut.png")


def test_text_with_image_extension_is_refused(tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    with pytest.raises(UnreadableImage, match="notes.jpg is not an image"):
        open_image(tmp_path / "notes.jpg")


def test_decompression_bomb_is_refused_from_its_header(tmp_path):
    Image.new("1", (10_000, 5_000)).save(tmp_path / "bomb.png")  # tiny file, 50 M pixels
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    with pytest.raises(UnreadableImage, match="decompression bomb"):
        open_image(tmp_path / "bomb.png")
    Image.new("RGB", (20, 20)).save(tmp_path / "small.png")
    with pytest.raises(UnreadableImage, match="over the limit of 100"):
        open_image(tmp_path / "small.png", max_pixels=100)
    assert open_image(tmp_path / "small.png").size == (20, 20)


@pytest.mark.parametrize("mode", ["CMYK", "P", "L", "1", "LA"])
def test_modes_become_rgb(tmp_path, mode):
    src = two_colour().convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    path = tmp_path / f"m.{fmt.lower()}"
    src.save(path, fmt)
    im = open_image(path)
    assert im.mode == "RGB" and im.size == (20, 10)


def test_palette_keeps_colours(tmp_path):
    two_colour().convert("P", palette=Image.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    im = open_image(tmp_path / "p.png")
    assert im.getpixel((0, 0)) == (255, 0, 0) and im.getpixel((19, 0)) == (0, 0, 255)


def test_rgba_is_composited_on_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 0] = 255
    a[:, :2, 3] = 255  # left half opaque red, right half fully transparent
    Image.fromarray(a, "RGBA").save(tmp_path / "alpha.png")
    im = open_image(tmp_path / "alpha.png")
    assert im.getpixel((0, 0)) == (255, 0, 0) and im.getpixel((3, 0)) == (255, 255, 255)


def test_16_bit_grayscale_is_rescaled_not_clipped(tmp_path):
    a = np.array([[0, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    im = open_image(tmp_path / "deep.png")
    assert [im.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_exif_rotated_photo_comes_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    two_colour(20, 10).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    im = open_image(tmp_path / "phone.jpg")
    assert im.size == (10, 20)
    top, bottom = np.asarray(im)[2, 5], np.asarray(im)[17, 5]
    assert top[0] > 200 and bottom[2] > 200  # red (the left) turned to the top


def test_non_ascii_name_opens(tmp_path):
    path = tmp_path / "café_ñ_写真.png"
    two_colour().save(path)
    assert open_image(path).size == (20, 10)


# ---------- archives ----------

def make_zip(path, entries):
    """entries: (ZipInfo or name, bytes)."""
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def assert_nothing_extracted(tmp_path, dest):
    assert not dest.exists()
    assert not any(p.name == "evil.png" for p in tmp_path.parent.rglob("evil.png"))


@pytest.mark.parametrize("entry", ["../evil.png", "a/../../evil.png", "/tmp/evil.png", "..\\evil.png", "C:/evil.png"])
def test_zip_escaping_paths_are_refused(tmp_path, entry):
    z = make_zip(tmp_path / "bad.zip", [("ok/fine.png", b"x"), (entry, b"evil")])
    dest = tmp_path / "out" / "contents"
    with pytest.raises(DatasetError, match="refused and nothing was extracted"):
        extract_zip(z, dest)
    assert_nothing_extracted(tmp_path, dest)


def test_zip_symlink_entry_is_refused(tmp_path):
    info = zipfile.ZipInfo("cats/link.png")
    info.external_attr = (0o120777 << 16)
    z = make_zip(tmp_path / "link.zip", [(info, "/etc/passwd")])
    with pytest.raises(DatasetError, match="symbolic link"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_with_huge_declared_size_is_refused_before_extraction(tmp_path):
    z = make_zip(tmp_path / "huge.zip", [(f"f{i}.png", b"tiny") for i in range(3)])
    data = bytearray(z.read_bytes())
    # Claim 2 GB per entry in the central directory (uncompressed size at offset 24).
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) != -1:
        struct.pack_into("<I", data, pos + 24, 0x7FFF_FFFF)
        pos += 4
    z.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="refused before extraction"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_that_is_not_a_zip(tmp_path):
    (tmp_path / "fake.zip").write_text("hello")
    with pytest.raises(DatasetError, match="not a readable zip"):
        extract_zip(tmp_path / "fake.zip", tmp_path / "out")


def test_good_zip_extracts_non_ascii_names_and_skips_clutter(tmp_path):
    pic = png_bytes(two_colour())
    z = make_zip(tmp_path / "good.zip", [("données/chats/é.png", pic), ("__MACOSX/._x", b"junk"), ("données/.DS_Store", b"x")])
    dest = extract_zip(z, tmp_path / "out")
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert files == ["données/chats/é.png"]


def zeros_zip(path, size, name="zeros.png"):
    """One entry of `size` zero bytes, written in blocks (the zip stays tiny: deflate ~1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(name, "w", force_zip64=True) as out:
        block = bytes(1 << 20)
        for _ in range(size // len(block)):
            out.write(block)
    return path


def test_a_ratio_zip_bomb_is_refused_before_anything_is_written(tmp_path):
    z = zeros_zip(tmp_path / "bomb.zip", 300 * 1024**2)  # 300 MB in a zip of a few hundred KB
    assert z.stat().st_size < 2 * 1024**2
    with pytest.raises(DatasetError, match="zip bomb and was refused before extraction.*expands 1,0[0-9][0-9] times"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # within the limits (4 MB of zeros is too small to matter) the same kind of file unpacks
    small = zeros_zip(tmp_path / "small.zip", 4 * 1024**2)
    assert (extract_zip(small, tmp_path / "ok") / "zeros.png").stat().st_size == 4 * 1024**2


def test_the_size_limit_is_exact_and_says_by_how_much(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("a.png", b"x" * 1000), ("b.png", b"y" * 1001)])
    with pytest.raises(DatasetError, match="unpack to 2,001 bytes, 1 byte over the limit of 2,000 bytes"):
        extract_zip(z, tmp_path / "out", max_bytes=2000)
    assert extract_zip(z, tmp_path / "ok", max_bytes=2001).is_dir()


def test_imports_at_once_share_one_scratch_budget(tmp_path):
    from studio.datasets import safe_io

    z = make_zip(tmp_path / "a.zip", [("a.png", b"x" * 1000)])
    with safe_io._ScratchBudget(1500, "other.zip", 2000):  # another import in progress holds 1,500 bytes
        with pytest.raises(DatasetError, match="other imports in progress"):
            extract_zip(z, tmp_path / "out", max_scratch=2000)
        assert not (tmp_path / "out").exists()
    assert extract_zip(z, tmp_path / "out", max_scratch=2000).is_dir()  # released when it ended


def test_check_pixels_reads_the_header_only(tmp_path):
    from studio.datasets.safe_io import check_pixels

    big = tmp_path / "big.png"
    Image.new("1", (7000, 7000)).save(big)  # 49 MP of zeros: small on disk
    with pytest.raises(UnreadableImage, match="7000x7000 pixels, over the limit of 40,000,000"):
        check_pixels(big, "big.png")
    assert check_pixels(tmp_path / "big.png", max_pixels=10**8) == (7000, 7000)
    (tmp_path / "no.png").write_bytes(b"not a picture")
    with pytest.raises(UnreadableImage, match="not a picture"):
        check_pixels(tmp_path / "no.png")
