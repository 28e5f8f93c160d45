"""Process-wide state of the Space: the device (chosen once), models and estimators (loaded once).

Every request shares the same :class:`fsanet.pipeline.estimate.PoseEstimator` per (model, detector,
detection size); the model weights are shared between estimators of the same model.

Environment variables:

* ``FSANET_DEVICE``: ``auto`` (default: CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:1``...
* ``OMP_NUM_THREADS``: CPU threads per request, torch and ONNX Runtime (default: cores / concurrent
  requests; decided by :func:`fsanet.runtime.threads.configure_threads`, called before any model loads).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from fsanet import FSANetError, load_model, optimize_for_inference
from fsanet.detect.detectors import Detector, create_detector
from fsanet.pipeline.estimate import DETECT_MAX_SIDE, PoseEstimator
from fsanet.runtime.onnx_engine import pose_graph_file
from fsanet.runtime.threads import configure_threads  # noqa: F401 - called as runtime.configure_threads
from fsanet.utils import settings

F = TypeVar("F", bound=Callable[..., Any])
_lock = threading.Lock()


@functools.cache
def device() -> torch.device:
    """The inference device, decided once per process from ``FSANET_DEVICE``."""
    return settings.device()


@functools.cache
def _model(name: str) -> nn.Module:
    # Optimised once here, so the photo and webcam estimators share one frozen graph.
    return optimize_for_inference(load_model(name).to(device()).eval())


@functools.cache
def detector(name: str) -> Detector:
    """The shared detector of that name (every estimator of the Space uses it)."""
    return create_detector(name)


@functools.cache
def pose_graph(name: str) -> tuple[Path, str]:
    """The model's ONNX file (``python -m fsanet export``'s bytes) and weights sha256, for the Webcam tab."""
    return pose_graph_file(load_model(name).eval())


@functools.cache
def _estimator(model: str, detector_name: str, detect_max_side: int) -> PoseEstimator:
    return PoseEstimator(
        _model(model), detector(detector_name), device=device(), detect_max_side=detect_max_side
    )


def estimator(model: str, detector: str, detect_max_side: int = DETECT_MAX_SIDE) -> PoseEstimator:
    """The shared estimator; the first call loads it (under a lock, so concurrent requests load once)."""
    with _lock:
        return _estimator(model, detector, detect_max_side)


def gpu(fn: F) -> F:
    """``spaces.GPU`` (Hugging Face ZeroGPU) when the ``spaces`` package is importable, else ``fn``."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


_status: dict[str, str] = {}


def preload(model: str, detector: str) -> threading.Thread:
    """Load (and warm up) an estimator in the background; :func:`weights_status` reports the outcome."""

    def work() -> None:
        _status[model] = "loading"
        try:
            estimator(model, detector).estimate_rgb(np.zeros((64, 64, 3), np.uint8))
        except FSANetError as error:
            _status[model] = str(error)
        else:
            _status[model] = "ready"

    thread = threading.Thread(target=work, name=f"preload-{model}", daemon=True)
    thread.start()
    return thread


def weights_status(model: str) -> str | None:
    """``None`` when ``model`` is loaded (or not preloaded), else what is happening or what went wrong."""
    state = _status.get(model)
    return None if state in (None, "ready") else state
