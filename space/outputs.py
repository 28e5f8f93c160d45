"""Files the Space returns (annotated images, videos, result downloads), in one folder pruned by age.

Gradio saves a returned array to a cache path named by its content and rewrites that file in place,
so two requests that produce the same image (the same photo uploaded twice at once) can truncate
the file while it is being downloaded. A path returned to Gradio is instead copied into its cache
with a rename, which is safe; the files here are pruned after ``MAX_AGE_S``. A download named after the
upload (``clip_pose.mp4``) gets a folder of its own (:func:`new_folder`): Gradio keeps a file's name.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

MAX_AGE_S = 3600.0
JPEG_QUALITY = 90
_last_prune = 0.0
_prune_lock = threading.Lock()


def output_dir() -> Path:
    directory = Path(tempfile.gettempdir()) / f"fsanet-space-outputs-{os.getuid()}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_jpeg(rgb: np.ndarray) -> str:
    """Write ``rgb`` as a JPEG named by its sha256 (rename into place) and return the path."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return save_bytes(buffer.getvalue(), ".jpg")


def save_bytes(data: bytes, suffix: str, stem: str = "") -> str:
    """Write ``data`` to ``{stem}-{sha256}{suffix}`` in the pruned folder (rename into place); its path."""
    directory = output_dir()
    digest = hashlib.sha256(data).hexdigest()[:32]
    path = directory / (f"{stem}-{digest}{suffix}" if stem else f"{digest}{suffix}")
    if path.exists():
        path.touch()  # the same content again: keep the file young so pruning cannot delete it under Gradio
    else:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".", suffix=suffix, delete=False) as handle:
            handle.write(data)
        os.replace(handle.name, path)
    _prune(directory)
    return str(path)


def new_folder() -> Path:
    """A fresh, unique folder in the pruned one, for files named after an upload (a video and its JSON)."""
    directory = output_dir()
    _prune(directory)
    return Path(tempfile.mkdtemp(dir=directory))


def _prune(directory: Path) -> None:
    """Delete files and folders older than ``MAX_AGE_S``, at most once a minute."""
    global _last_prune
    now = time.time()
    with _prune_lock:
        if now - _last_prune < 60:
            return
        _last_prune = now
    for path in directory.iterdir():
        try:
            if now - path.stat().st_mtime > MAX_AGE_S:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError:  # another process pruned it first
            continue
