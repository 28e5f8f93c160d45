"""Image loading: every source type, EXIF orientation, mode conversion and the refusals."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fsanet.data.imageio import array_to_rgb, is_video, load_image
from fsanet.errors import InvalidImageError

from .conftest import DATA, require_shared


def _png(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **params)
    return buffer.getvalue()


def _halves() -> Image.Image:
    """40 wide, 20 high: left half red, right half blue."""
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, :20] = (255, 0, 0)
    array[:, 20:] = (0, 0, 255)
    return Image.fromarray(array)


def test_every_source_type_gives_the_same_rgb_array(tmp_path):
    path = require_shared(DATA / "aflw2000-sample16" / "image00050.jpg")
    expected = np.asarray(Image.open(path).convert("RGB"))
    data = path.read_bytes()
    sources = [path, str(path), data, bytearray(data), io.BytesIO(data), Image.open(path), expected.copy()]
    for source in sources:
        image = load_image(source)
        assert image.dtype == np.uint8 and image.shape == expected.shape
        np.testing.assert_array_equal(image, expected)


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the left (red) half ends up on top
    image = load_image(_png(_halves(), exif=exif))
    assert image.shape == (40, 20, 3)
    np.testing.assert_array_equal(image[5, 10], (255, 0, 0))
    np.testing.assert_array_equal(image[35, 10], (0, 0, 255))


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 77, (77, 77, 77)),
        ("1", 1, (255, 255, 255)),
        ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("I;16", 0x8000, (128, 128, 128)),
        ("I", 0x4000, (64, 64, 64)),
        ("F", 0.5, (128, 128, 128)),
        ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
        ("RGBA", (10, 20, 30, 0), (255, 255, 255)),  # transparent: white paper, not the hidden colour
        ("LA", (0, 0), (255, 255, 255)),
    ],
)
def test_modes_convert_to_rgb(mode, value, expected):
    image = load_image(Image.new(mode, (8, 6), value))
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[3, 4], expected)


def test_palette_image_converts_through_its_palette():
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    np.testing.assert_array_equal(load_image(_png(palette))[0, 0], (200, 100, 50))


def test_sixteen_bit_png_keeps_its_top_byte():
    gray16 = Image.fromarray(np.full((5, 5), 0xFF00, np.uint16))
    np.testing.assert_array_equal(load_image(_png(gray16))[2, 2], (255, 255, 255))


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((4, 4), 9, np.uint8), (9, 9, 9)),
        (np.full((4, 4, 1), 9, np.uint8), (9, 9, 9)),
        (np.full((4, 4, 3), 0.5, np.float32), (128, 128, 128)),
        (np.full((4, 4, 3), 200.0, np.float64), (200, 200, 200)),
        (np.full((4, 4, 3), 0xFFFF, np.uint16), (255, 255, 255)),
        (np.ones((4, 4), bool), (255, 255, 255)),
    ],
)
def test_arrays_convert_to_uint8_rgb(array, expected):
    np.testing.assert_array_equal(array_to_rgb(array)[1, 1], expected)


def test_not_an_image_is_refused_with_its_name(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is text, not a JPEG")
    with pytest.raises(InvalidImageError, match="not an image"):
        load_image(path)


def test_truncated_file_is_refused():
    data = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(data, "JPEG")
    with pytest.raises(InvalidImageError, match="truncated|corrupt"):
        load_image(data.getvalue()[: len(data.getvalue()) // 2])


@pytest.mark.parametrize("source", [b"", "missing.png", np.zeros((0, 10, 3), np.uint8)])
def test_empty_or_missing_input_is_refused(source, tmp_path):
    if isinstance(source, str):
        source = tmp_path / source
    with pytest.raises(InvalidImageError):
        load_image(source)


def test_zero_byte_file_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(path)


def test_decompression_bomb_is_refused_from_the_header():
    bomb = _png(Image.new("1", (9000, 9000)))  # 81 MP in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(InvalidImageError, match="cap"):
        load_image(bomb)
    with pytest.raises(InvalidImageError, match="cap"):
        load_image(_png(Image.new("L", (100, 100))), max_pixels=5_000)


def test_absurd_aspect_ratio_is_refused():
    with pytest.raises(InvalidImageError, match="aspect"):
        load_image(_png(Image.new("RGB", (2000, 20))))
    assert load_image(_png(Image.new("RGB", (200, 20)))).shape == (20, 200, 3)


def test_bad_array_shapes_and_values_are_refused():
    with pytest.raises(InvalidImageError):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InvalidImageError, match="NaN"):
        load_image(np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(InvalidImageError):
        load_image(12345)


def test_video_suffixes():
    assert is_video("clip.MP4") and is_video("a/b.avi") and not is_video("photo.jpg")


def test_png_with_fewer_rows_than_declared_is_refused_as_truncated():
    from tests.hostile_images import png_declaring_more_rows

    data = png_declaring_more_rows(7999, 7999, 4)
    assert len(data) < 400  # a tiny file claiming 64 MP, which Pillow alone decodes as a black image
    with pytest.raises(InvalidImageError, match="truncated"):
        load_image(data)
    complete = png_declaring_more_rows(30, 7, 7)
    assert load_image(complete).shape == (7, 30, 3)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "I;16", "P", "1"])
@pytest.mark.parametrize("interlace", [False, True])
def test_complete_pngs_of_every_mode_and_interlacing_load(mode, interlace):
    image = _halves().convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image, np.uint16) * 257)
    data = _png(image, optimize=False) if not interlace else _interlaced_png(image)
    assert load_image(data).shape == (20, 40, 3)
    with pytest.raises(InvalidImageError, match="(?i)truncated"):
        load_image(data[: len(data) * 2 // 3])


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _interlaced_png(image: Image.Image) -> bytes:
    """An Adam7-interlaced RGB PNG (Pillow writes none), written pass by pass with filter 0."""
    from tests.hostile_images import _chunk

    pixels = np.asarray(image.convert("RGB"))
    rows = [b"\x00" + row.tobytes() for x0, y0, dx, dy in ADAM7 for row in pixels[y0::dy, x0::dx] if row.size]
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, 2, 0, 0, 1)
    idat = zlib.compress(b"".join(rows))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_read_size_reads_the_header_only_and_messages_name_the_upload_not_the_path(tmp_path):
    from fsanet.data.imageio import read_size
    from tests.hostile_images import png_header_only

    assert read_size(png_header_only(6000, 4000, 2)) == (6000, 4000)  # no pixel data at all
    with pytest.raises(InvalidImageError, match="holiday.png has 13000x13000") as caught:
        read_size(png_header_only(13000, 13000, 0), name="holiday.png")
    path = tmp_path / "secret-server-folder" / "photo.png"
    path.parent.mkdir()
    path.write_bytes(b"not a png")
    with pytest.raises(InvalidImageError) as caught:
        load_image(path, name="photo.png")
    assert "secret-server-folder" not in str(caught.value) and "photo.png" in str(caught.value)
    path.write_bytes(_png(_halves()))
    with pytest.raises(InvalidImageError, match="more than the cap of"):
        load_image(path, name="photo.png", max_bytes=10)
