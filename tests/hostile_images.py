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
    }
    expected = {}
    for name, (data, outcome) in cases.items():
        (folder / name).write_bytes(data)
        expected[name] = outcome
    return expected
