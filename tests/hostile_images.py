"""The hostile image set of issue 14, made from one real face photo: every file a user can throw at us.

Each entry says whether a face must be found (the file is a legitimate, if unusual, image) or
which words the refusal must contain. The CLI and the Space must give the same outcome for each.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

FACES = "faces"  # the expected outcome of a legitimate image: at least one face


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int, color_type: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` and holds no pixel data (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def png_declaring_more_rows(width: int, height: int, rows: int) -> bytes:
    """A gray PNG that declares ``height`` rows but holds only ``rows`` of them (all black)."""
    raw = b"".join(b"\x00" + bytes(width) for _ in range(rows))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def compressed_chunk(kind: bytes, inflated_mb: int = 200) -> bytes:
    """A ``zTXt``, ``iTXt`` or ``iCCP`` PNG chunk of ~200 kB that inflates to ``inflated_mb`` MB."""
    bomb = zlib.compress(bytes(inflated_mb * 2**20), 9)
    prefix = {b"zTXt": b"Comment\0\0", b"iTXt": b"Comment\0\1\0\0\0", b"iCCP": b"profile\0\0"}[kind]
    return _chunk(kind, prefix + bomb)


def png_with_compressed_chunk(png: bytes, kind: bytes) -> bytes:
    """``png`` with a compressed-chunk bomb right after its IHDR (8 + 25 bytes), read when the file opens."""
    return png[:33] + compressed_chunk(kind) + png[33:]


def jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """``jpeg`` with its frame header (SOF0-2) rewritten to claim ``width`` x ``height`` pixels."""
    data = bytearray(jpeg)
    offset = 2
    while data[offset + 1] not in (0xC0, 0xC1, 0xC2):
        offset += 2 + struct.unpack(">H", data[offset + 2 : offset + 4])[0]
    data[offset + 5 : offset + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def hostile_set(face_photo: Path, folder: Path) -> dict[str, str]:
    """Write the set into ``folder``; file name -> ``FACES`` or words the refusal must contain."""
    face = Image.open(face_photo).convert("RGB")
    jpeg, png = _encoded(face, "JPEG", quality=92), _encoded(face, "PNG")
    gray16 = Image.fromarray((np.asarray(face.convert("L"), np.uint16) * 257).astype(np.uint16))
    rgba = face.copy()
    rgba.putalpha(Image.new("L", face.size, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view
    rotated = face.transpose(Image.Transpose.ROTATE_90)  # stored sideways, upright once EXIF is applied
    frames = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    cases: dict[str, tuple[bytes, str]] = {
        "not_an_image.jpg": (b"this is a text file, not a photo\n" * 10, "not an image"),
        "empty.png": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 3], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "bomb_rgb.png": (png_header_only(30000, 30000, 2), "900000000 pixels"),
        "bomb_gray.png": (png_header_only(13000, 13000, 0), "169,000,000 pixels"),
        "strip_1x20000.png": (_encoded(Image.new("L", (1, 20000)), "PNG"), "aspect ratio"),
        "declares_7999x7999_holds_4_rows.png": (png_declaring_more_rows(7999, 7999, 4), "truncated"),
        "cmyk.jpg": (_encoded(face.convert("CMYK"), "JPEG", quality=92), FACES),
        "gray16.png": (_encoded(gray16, "PNG"), FACES),
        "rgba.png": (_encoded(rgba, "PNG"), FACES),
        "palette.png": (_encoded(face.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"), FACES),
        "exif_rotated.jpg": (_encoded(rotated, "JPEG", quality=92, exif=exif), FACES),
        "animated.gif": (_encoded(frames[0], "GIF", save_all=True, append_images=frames[1:]), FACES),
        "svg_renamed.png": (
            b'<svg xmlns="http://www.w3.org/2000/svg" width="9999" height="9999"/>',
            "not an image",
        ),
        "html_renamed.jpg": (
            b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>",
            "not an image",
        ),
        "ztxt_bomb.png": (png_with_compressed_chunk(png, b"zTXt"), "decompression bomb"),
        "itxt_bomb.png": (png_with_compressed_chunk(png, b"iTXt"), "decompression bomb"),
        "iccp_bomb.png": (png_with_compressed_chunk(png, b"iCCP"), "decompression bomb"),
        "letters_in_header.ppm": (b"P6\n64 abc\n255\n" + bytes(100), "could not be read"),
        "endless_number.pgm": (b"P5\n" + b"9" * 200 + b" 64\n255\n", "could not be read"),
        # A 450x450 photo's 20 kB claiming 64 MP: Pillow would decode it in full (gray blocks) in seconds.
        "claims_8000x7999.jpg": (jpeg_claiming(jpeg, 8000, 7999), "cannot hold the 8000x7999 pixels"),
    }
    expected = {}
    for name, (data, outcome) in cases.items():
        (folder / name).write_bytes(data)
        expected[name] = outcome
    return expected
