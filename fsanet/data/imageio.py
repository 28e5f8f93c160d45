"""Load any user image into the RGB ``uint8`` ``(H, W, 3)`` array the rest of the library expects.

Accepts a path, ``bytes``, a binary file object, a PIL image or a NumPy array. Decoding goes
through Pillow so that EXIF orientation is honoured and every mode (grayscale, palette, RGBA,
CMYK, 16-bit, float) is converted the same way. Every failure a user can cause (not an image,
truncated file, zero size, too many pixels, absurd aspect ratio, a compressed-text bomb, a header
Pillow's parser chokes on: any exception the decoder raises) becomes
:class:`fsanet.errors.InvalidImageError` with a one-line message that names the problem.
:func:`open_image` reads a file once and checks its header (a server sizes its work from it), then
decodes it on demand; :func:`load_image` does both at once.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fsanet.errors import InvalidImageError

# 64 MP: a 9000x7000 photo still loads, a decompression bomb (a tiny file that claims
# gigapixels) is refused from its header before any pixel is decoded.
MAX_PIXELS = 64_000_000
# Panoramas reach ~10:1; a 1x10000 strip is not a photo of a face.
MAX_ASPECT = 20.0

ImageSource = str | os.PathLike | bytes | bytearray | IO[bytes] | Image.Image | np.ndarray

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video file (by extension), to be read frame by frame."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_size(
    width: int, height: int, max_pixels: int = MAX_PIXELS, max_aspect: float = MAX_ASPECT, name: str = "image"
) -> None:
    """Refuse empty, oversized and absurdly elongated images before decoding them."""
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{name} is empty ({width}x{height} pixels)")
    if width * height > max_pixels:
        raise InvalidImageError(
            f"{name} has {width}x{height} = {width * height:,} pixels, more than the cap of {max_pixels:,}"
        )
    aspect = max(width, height) / min(width, height)
    if aspect > max_aspect:
        raise InvalidImageError(
            f"{name} is {width}x{height}, an aspect ratio of {aspect:.0f}:1 (more than {max_aspect:g}:1)"
        )


def load_image(
    source: ImageSource,
    max_pixels: int = MAX_PIXELS,
    max_aspect: float = MAX_ASPECT,
    name: str | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Decode, validate, orient and convert ``source`` to an RGB ``uint8`` ``(H, W, 3)`` array.

    NumPy arrays are taken as RGB (or gray/RGBA) already, in the usual ``(H, W[, C])`` layout.
    ``name`` replaces the path in messages (a server must not show its own paths); files larger
    than ``max_bytes`` are refused before they are read.
    """
    if isinstance(source, np.ndarray):
        return array_to_rgb(source, max_pixels, max_aspect)
    if isinstance(source, Image.Image):
        return pil_to_rgb(source, max_pixels, max_aspect, name=name or "image")
    with open_image(source, max_pixels, max_aspect, name, max_bytes) as opened:
        return opened.decode()


class OpenedImage:
    """An image file whose header was read and checked (:func:`open_image`): its ``size`` is known and
    within the caps, no pixel is decoded yet."""

    def __init__(self, image: Image.Image, name: str):
        self.image, self.name = image, name

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` from the header (before any EXIF rotation)."""
        return self.image.width, self.image.height

    def decode(self) -> np.ndarray:
        """The pixels as RGB ``uint8`` ``(H, W, 3)``, EXIF-oriented. A PNG whose compressed data inflates to
        less than its header's size is refused first (inflating is work: done here, not at opening)."""
        if self.image.format == "PNG" and isinstance(self.image.fp, io.BytesIO):
            if _png_data_short(self.image.fp.getvalue()):
                raise InvalidImageError(f"{self.name} is truncated: its pixel data ends before the last row")
        return _decoded(self.image, self.name)


@contextlib.contextmanager
def open_image(
    source: str | os.PathLike | bytes | IO[bytes],
    max_pixels: int = MAX_PIXELS,
    max_aspect: float = MAX_ASPECT,
    name: str | None = None,
    max_bytes: int | None = None,
) -> Iterator[OpenedImage]:
    """``source`` read once (a path: its size checked against ``max_bytes`` first) and its header checked:
    the pixel count and aspect ratio against the caps, and a JPEG's data against the size it claims (see
    :func:`_jpeg_data_short`). Nothing is decoded: a server sizes its work by ``size``, waits for a slot, then
    calls ``decode()``. Every failure is an :class:`InvalidImageError` naming ``name`` (default: the path)."""
    with _open_header(source, name, max_bytes) as (label, image):
        check_size(image.width, image.height, max_pixels, max_aspect, label)
        _check_jpeg_data(image, label)
        yield OpenedImage(image, label)


def _check_jpeg_data(image: Image.Image, label: str) -> None:
    """Refuse a JPEG whose data is too short for the size its header claims, before decoding: Pillow fills
    what is missing with gray blocks instead of failing, so a tiny file could otherwise claim 64 MP and
    cost a full decode. A scan of the bytes for markers, cheap enough for a header read (PNG's check
    inflates its data: :meth:`OpenedImage.decode`)."""
    if image.format != "JPEG" or not isinstance(image.fp, io.BytesIO):  # a caller's own stream: not at hand
        return
    data = image.fp.getvalue()
    if _jpeg_data_short(data):
        raise InvalidImageError(
            f"{label} is truncated: its {len(data):,} bytes cannot hold the "
            f"{image.width}x{image.height} pixels its header claims"
        )


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_data_short(data: bytes) -> bool:
    """Whether a PNG's compressed data inflates to fewer bytes than its header's size requires.

    Inflates in 1 MiB steps and stops as soon as enough bytes came out, so a bomb costs no memory.
    """
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    bits = _PNG_CHANNELS.get(color, 4) * depth
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    needed = 0
    for x0, y0, dx, dy in passes:
        columns, rows = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if columns > 0 and rows > 0:
            needed += rows * (1 + -(-columns * bits // 8))
    inflater = zlib.decompressobj()
    produced, offset = 0, 8
    while offset + 8 <= len(data) and produced < needed:
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            pending = data[offset + 8 : offset + 8 + length]
            while pending and produced < needed:
                try:
                    produced += len(inflater.decompress(pending, 2**20))
                except zlib.error:
                    return True
                pending = inflater.unconsumed_tail
        offset += 12 + length
    return produced < needed


_JPEG_HUFFMAN_DCT = (0xC0, 0xC1, 0xC2)  # SOF0-2: baseline, extended and progressive, Huffman-coded
_JPEG_OTHER_FRAMES = frozenset({0xC3, *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # a marker that ends entropy-coded data


def _jpeg_data_short(data: bytes) -> bool:
    """Whether a Huffman-coded JPEG's scans hold fewer bits than their 8x8 blocks need.

    A scan that codes DC coefficients (every sequential scan, every progressive DC scan) spends at least
    one bit per block of each of its components (a Huffman code is never shorter; a DC refinement bit
    is one bit). Counting the bytes between each scan header and the next marker therefore proves a
    file truncated or forged without decoding it; real photos hold 100-1000x this floor. Arithmetic-
    coded and lossless JPEGs have no such floor and are left to the pixel cap, like PNG.
    """
    components: dict[int, tuple[int, int]] = {}
    width = height = 0
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return False  # not a marker where one must be: let the decoder report it
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker == 0xD9:  # EOI
            break
        if marker in _JPEG_STANDALONE:
            offset += 2
            continue
        length = struct.unpack(">H", data[offset + 2 : offset + 4])[0]
        segment = data[offset + 4 : offset + 2 + length]
        offset += 2 + length
        if marker in _JPEG_OTHER_FRAMES:
            return False
        if marker in _JPEG_HUFFMAN_DCT and len(segment) >= 6:
            height, width, count = struct.unpack(">HHB", segment[1:6])
            entries = segment[6 : 6 + 3 * count]
            components = {
                entries[i]: (entries[i + 1] >> 4, entries[i + 1] & 15) for i in range(0, len(entries), 3)
            }
        elif marker == 0xDA and components and len(segment) >= 1:  # SOS, then its entropy-coded data
            count = segment[0]
            ids = segment[1 : 1 + 2 * count : 2]
            spectral_start = segment[1 + 2 * count] if len(segment) > 1 + 2 * count else 0
            end = _JPEG_SCAN_END.search(data, offset)
            stop = end.start() if end else len(data)
            if spectral_start == 0 and (stop - offset) * 8 < _jpeg_blocks(ids, components, width, height):
                return True
            offset = stop
    return False


def _jpeg_blocks(ids: bytes, components: dict[int, tuple[int, int]], width: int, height: int) -> int:
    """8x8 blocks of the scan's components at their own sampling (fewest possible: no MCU padding)."""
    h_max = max(max(h for h, _ in components.values()), 1)
    v_max = max(max(v for _, v in components.values()), 1)
    blocks = 0
    for component in ids:
        h, v = components.get(component, (0, 0))
        blocks += _ceil_div(_ceil_div(width * h, h_max), 8) * _ceil_div(_ceil_div(height * v, v_max), 8)
    return blocks


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def header_size(head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the first bytes of an image file (the rest may still be on its way), or None
    when they are not the start of an image Pillow reads. No cap applies: the caller decides."""
    try:
        with _open_header(head, None, None) as (_, image):
            return image.width, image.height
    except InvalidImageError:
        return None


@contextlib.contextmanager
def _open_header(source: Any, name: str | None, max_bytes: int | None) -> Iterator[tuple[str, Image.Image]]:
    label, stream = _open_stream(source, name, max_bytes)
    with warnings.catch_warnings(), _decoding(label, "could not be read"):
        # Pillow only warns between its own limit and twice it; our explicit cap decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(stream)
    with image:
        yield label, image


# Pillow's own limits on inflating PNG text and ICC profile chunks (a few kB that inflate to gigabytes).
_PILLOW_INFLATE_LIMITS = ("Decompressed data too large", "Too much memory used in text chunks")


@contextlib.contextmanager
def _decoding(label: str, failure: str) -> Iterator[None]:
    """Turn whatever Pillow raises on a bad file into one :class:`InvalidImageError` line naming it.

    Pillow's plugins raise OSError, ValueError, SyntaxError, struct.error, EOFError, IndexError...
    on malformed data (a PNM header with letters for digits, a text-chunk bomb): all of them are the
    file's fault, none may escape as a traceback.
    """
    try:
        yield
    except InvalidImageError:
        raise
    except UnidentifiedImageError:
        raise InvalidImageError(f"{label} is not an image in a format Pillow can read") from None
    except Image.DecompressionBombError as error:
        raise InvalidImageError(f"{label} is refused as a decompression bomb: {error}") from None
    except Exception as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, ValueError) and detail.startswith(_PILLOW_INFLATE_LIMITS):
            raise InvalidImageError(
                f"{label} is refused as a decompression bomb: a compressed text or colour-profile chunk "
                "inflates past Pillow's limit"
            ) from None
        raise InvalidImageError(f"{label} {failure}: {detail}") from None


def _open_stream(source: Any, name: str | None = None, max_bytes: int | None = None) -> tuple[str, IO[bytes]]:
    if isinstance(source, bytes | bytearray | memoryview):
        label = name or "image data"
        _check_bytes(len(source), max_bytes, label)
        return label, io.BytesIO(bytes(source))
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise InvalidImageError(f"{label} does not exist or is not a file")
        _check_bytes(path.stat().st_size, max_bytes, label)
        return label, io.BytesIO(path.read_bytes())
    if hasattr(source, "read"):
        return name or getattr(source, "name", "image stream"), source
    raise InvalidImageError(f"cannot read an image from a {type(source).__name__}")


def _check_bytes(size: int, max_bytes: int | None, name: str) -> None:
    if size == 0:
        raise InvalidImageError(f"{name} is empty (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise InvalidImageError(
            f"{name} is {size / 2**20:.1f} MB, more than the cap of {max_bytes / 2**20:g} MB for images"
        )


def pil_to_rgb(
    image: Image.Image, max_pixels: int = MAX_PIXELS, max_aspect: float = MAX_ASPECT, name: str = "image"
) -> np.ndarray:
    """Validate a PIL image from its header, decode it, apply EXIF orientation, convert to RGB."""
    check_size(image.width, image.height, max_pixels, max_aspect, name)
    return _decoded(image, name)


def _decoded(image: Image.Image, name: str) -> np.ndarray:
    """An image whose size was checked, decoded, EXIF-oriented and converted to RGB."""
    with _decoding(name, "is truncated or corrupt"):  # "image file is truncated", broken data stream, ...
        image.load()
        image = ImageOps.exif_transpose(image)
        return _mode_to_rgb(image)


def _mode_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels keep arbitrary colours underneath; show them as white paper.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    if image.mode.startswith("I;16"):  # 16-bit gray: keep the top byte, as viewers display it
        return array_to_rgb((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8))
    if image.mode in ("I", "F"):  # 32-bit integer or float gray
        return array_to_rgb(np.asarray(image))
    return np.asarray(image.convert("RGB"))


def array_to_rgb(
    array: np.ndarray, max_pixels: int = MAX_PIXELS, max_aspect: float = MAX_ASPECT
) -> np.ndarray:
    """A gray, RGB or RGBA array of any numeric dtype -> RGB ``uint8`` ``(H, W, 3)``."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), not {array.shape}")
    check_size(array.shape[1], array.shape[0], max_pixels, max_aspect, name="image array")
    array = _to_uint8(array)
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    if array.shape[2] == 4:
        alpha = array[:, :, 3:].astype(np.float32) / 255.0
        return (array[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InvalidImageError("the image array contains NaN or infinite values")
        # Floats in [0, 1] are the usual normalised images; anything larger is on the 0..255 scale.
        scale = 255.0 if array.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(array * scale, 0, 255).round().astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        # Deep integer images (16-bit PNG/TIFF) keep their top byte, as viewers display them.
        if array.max(initial=0) > 255:
            return np.clip(array.astype(np.int64) >> 8, 0, 255).astype(np.uint8)
        return np.clip(array, 0, 255).astype(np.uint8)
    raise InvalidImageError(f"an image array of dtype {array.dtype} is not supported")
