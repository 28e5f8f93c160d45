"""Atomic file writes (temp file in the same folder, then rename), file hashes, and the rule on what a
path given by a user may be (:func:`check_regular`)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from fsanet.errors import FSANetError

# Files being written start with this prefix: readers skip them, so a crash leaves nothing half-visible.
TEMP_PREFIX = ".tmp-"
MAX_STEM_BYTES = 200  # file names hold 255 bytes
# What a path must not be: reading a named pipe blocks until someone writes to it, and writing to any of
# these replaces it (or fills a device such as /dev/full).
SPECIAL_FILES = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def annotated_name(source: str | os.PathLike, suffix: str) -> str:
    """The file name of an input's annotated copy, ``<stem>_pose<suffix>`` (``clip.mp4``: ``clip_pose.mp4``),
    what ``fsanet predict --out`` writes and the Space's downloads are called. A stem too long for a file
    name is cut."""
    stem = Path(source).stem.encode()[:MAX_STEM_BYTES].decode(errors="ignore") or "input"
    return f"{stem}_pose{suffix}"


def check_regular(path: str | os.PathLike, flag: str = "") -> Path:
    """``path`` if it is a regular file, a folder or absent (a target to create), else :class:`FSANetError`.

    The one rule for every path a user gives as a source or a target: a named pipe, a device or a socket
    is refused by its type (one ``stat``, following links), before anything opens or replaces it. ``flag``
    (``--out``) starts the message.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):  # absent, or unreachable: whatever opens it next says why
        return path
    kind = next((kind for is_kind, kind in SPECIAL_FILES if is_kind(mode)), None)
    if kind is None:
        return path
    named = f"{flag} {path}" if flag else str(path)
    raise FSANetError(f"{named} is {kind}, not a regular file or folder: refused")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place.

    The file gets the permissions of any new file (``0o666`` less the umask), and ``path`` must pass
    :func:`check_regular`: a named pipe or a device is never replaced.
    """
    check_regular(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _new_temp_file(path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_temp_file(directory: Path) -> tuple[int, Path]:
    """A new, exclusively created file in ``directory``: mode 0o666 less the umask (``tempfile.mkstemp``
    would make it 0o600, which the rename would keep)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # 2^-64 per try: only a name taken a moment ago
            continue


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
