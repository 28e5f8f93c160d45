"""Every environment variable the library reads, read here and nowhere else (the README's table names them).

* ``FSANET_CACHE``: converted weights, detector files and ONNX graphs (default ``~/.cache/fsanet``).
* ``HF_HUB_OFFLINE``: never touch the network.
* ``FSANET_HUB_REPO``: a Hub model repo of converted weights, tried before the authors' files.
* ``FSANET_OFFICIAL_MIRROR`` (and the ``*_MIRROR`` variable any other family declares): where a family's
  original weight files are fetched from.
* ``FSANET_SSD_DIR``: OpenCV's SSD face detector files.
* ``FSANET_ASSETS``: weight files that no pip install provides (BlazeFace's ``.tflite``), looked up
  before the installed packages (default: ``assets/`` beside the ``fsanet`` package: the Space bundle's).
* ``FSANET_DEVICE``: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``...
* ``FSANET_ENGINE``: ``auto``, ``onnx`` or ``torch`` for :func:`fsanet.optimize_for_inference`.
* ``FSANET_TUNE_MALLOC``: ``0`` leaves glibc's allocator alone.
* ``OMP_NUM_THREADS``: CPU threads per inference call.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fsanet.errors import FSANetError

DEVICE_ENV = "FSANET_DEVICE"
ENGINE_ENV = "FSANET_ENGINE"
TRUE_WORDS = {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """``$FSANET_CACHE``, default ``~/.cache/fsanet``: converted weights and detector files."""
    return Path(os.environ.get("FSANET_CACHE") or Path.home() / ".cache" / "fsanet")


def offline() -> bool:
    """``HF_HUB_OFFLINE`` set: no download is attempted, so a missing file fails at once."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_WORDS


def hub_repo() -> str | None:
    """``$FSANET_HUB_REPO``: a Hub model repo with converted weights (a ``name.tag/`` folder each)."""
    return os.environ.get("FSANET_HUB_REPO") or None


def mirror(variable: str, default: str) -> str:
    """A family's weight mirror: ``$variable`` (a directory or base URL), else its pinned upstream URL."""
    return os.environ.get(variable) or default


ASSETS = "assets"  # the default assets folder, beside the ``fsanet`` package (where the Space bundle puts it)


def assets_dir() -> Path:
    """``$FSANET_ASSETS``, default :data:`ASSETS` beside the ``fsanet`` package (the Space bundle's)."""
    return Path(os.environ.get("FSANET_ASSETS") or Path(__file__).resolve().parents[2] / ASSETS)


def ssd_dir() -> str | None:
    return os.environ.get("FSANET_SSD_DIR") or None


def tune_malloc() -> bool:
    return os.environ.get("FSANET_TUNE_MALLOC", "1") != "0"


def engine() -> str:
    return (os.environ.get(ENGINE_ENV) or "auto").strip().lower()


def omp_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value else None


def device(choice: str | torch.device | None = None) -> torch.device:
    """The device to run on: ``choice``, else ``$FSANET_DEVICE``, else ``auto`` (CUDA when available)."""
    if isinstance(choice, torch.device):
        return choice
    name = (choice or os.environ.get(DEVICE_ENV) or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(name)
    except RuntimeError:
        raise FSANetError(f"{name!r} is not a device (auto, cpu, cuda, cuda:1, ...)") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise FSANetError(f"device {name} was asked for ({DEVICE_ENV} or --device) but CUDA is not available")
    return chosen
