"""Image loading: every source type, EXIF orientation, mode conversion and the refusals."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fsanet.data.imageio import array_to_rgb, is_video, load_image, open_image
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


def read_size(source, **caps) -> tuple[int, int]:
    """What the Space learns before it takes a slot: the checked header's size, nothing decoded."""
    with open_image(source, **caps) as opened:
        return opened.size


def test_open_image_reads_the_header_only_and_messages_name_the_upload_not_the_path(tmp_path):
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


def _photo_bytes(fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)).save(
        buffer, fmt, **options
    )
    return buffer.getvalue()


def _after_idat(png: bytes, chunk: bytes) -> bytes:
    """``chunk`` inserted just before IEND (Pillow reads it only when the pixels are loaded)."""
    return png[:-12] + chunk + png[-12:]


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt", b"iCCP"])
def test_compressed_chunk_bombs_are_one_line_refusals(kind):
    from tests.hostile_images import compressed_chunk, png_with_compressed_chunk

    png = _photo_bytes()
    early = png_with_compressed_chunk(png, kind)  # parsed when the file is opened
    assert len(early) < 300_000  # 200 MB once inflated
    with pytest.raises(InvalidImageError, match=r"^bomb.png is refused as a decompression bomb: [^\n]*$"):
        load_image(early, name="bomb.png")
    late = _after_idat(png, compressed_chunk(kind))  # parsed when the pixels are loaded
    with pytest.raises(InvalidImageError, match=r"^late.png is refused as a decompression bomb: [^\n]*$"):
        load_image(late, name="late.png")


@pytest.mark.parametrize(
    "data",
    [
        b"P6\n64 abc\n255\n" + bytes(100),  # letters where the height must be
        b"P5\n" + b"9" * 200 + b" 64\n255\n",  # a number longer than Pillow's token limit
        b"P6\n64 48\n99999999\n" + bytes(100),  # maxval beyond 16 bits
        b"P3\n2 2\n255\n1 2 3 x y z\n",  # plain PPM with letters for samples
    ],
)
def test_malformed_pnm_headers_are_one_line_refusals(data):
    with pytest.raises(
        InvalidImageError, match=r"^bad.ppm (could not be read|is truncated or corrupt): [^\n]+$"
    ):
        load_image(data, name="bad.ppm")


@pytest.mark.parametrize(
    "exception", [IndexError("list index out of range"), struct.error("unpack"), EOFError()]
)
def test_any_exception_the_decoder_raises_is_a_refusal_naming_the_file(monkeypatch, exception):
    from PIL import ImageFile

    def broken_decoder(self):
        raise exception

    monkeypatch.setattr(ImageFile.ImageFile, "load", broken_decoder)
    with pytest.raises(InvalidImageError, match=r"^photo.png is truncated or corrupt: \w"):
        load_image(_photo_bytes(), name="photo.png")


def test_a_jpeg_whose_data_cannot_hold_its_claimed_size_is_refused_before_decoding(monkeypatch):
    from PIL import ImageFile

    from tests.hostile_images import jpeg_claiming

    decoded = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or original(self))
    photo = _photo_bytes("JPEG", quality=90)
    forged = jpeg_claiming(photo, 8000, 7999)  # Pillow alone decodes it, 64 MP of gray blocks
    for read in (load_image, read_size):  # the Space reads the header first, to size its slot
        with pytest.raises(
            InvalidImageError, match=r"^x.jpg is truncated: its [\d,]+ bytes cannot hold the 8000x7999"
        ):
            read(forged, name="x.jpg")
    assert decoded == []
    assert load_image(jpeg_claiming(photo, 64, 48)).shape == (48, 64, 3)  # the same bytes, honest size
    assert decoded and set(decoded) == {(64, 48)}  # the check itself never stops an honest file


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("L", {}),
        ("L", {"progressive": True}),
        ("RGB", {"subsampling": 0}),
        ("RGB", {"subsampling": 1, "progressive": True}),
        ("RGB", {"subsampling": 2}),
        ("RGB", {"subsampling": 2, "progressive": True}),
        ("RGB", {"subsampling": 2, "restart_marker_blocks": 1}),
        ("CMYK", {}),
    ],
)
def test_the_jpeg_size_floor_accepts_the_most_compressible_complete_files(mode, options):
    """A flat image at quality 1 with optimised Huffman tables is as small as a complete JPEG gets."""
    flat = Image.new(mode, (1600, 1200), 0 if mode != "RGB" else (128, 128, 128))
    data = _jpeg(flat, quality=1, optimize=True, **options)
    assert len(data) * 8 < 10 * (1600 // 8) * (1200 // 8)  # a few bits per 8x8 block: near the floor
    assert load_image(data).shape == (1200, 1600, 3)
    assert load_image(_jpeg(_halves().convert(mode), quality=95, **options)).shape == (20, 40, 3)
