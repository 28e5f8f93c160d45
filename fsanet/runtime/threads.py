"""How many threads one inference call may use: decided here, for torch and ONNX Runtime alike.

A CPU serving ``concurrency`` requests at once gives each its share of the cores; two requests each
running one thread per core oversubscribe the CPU, and spinning worker threads (OpenMP's, or ONNX
Runtime's by default) then make every request many times slower on a busy machine. ONNX Runtime
sessions are therefore made with spinning off (``session.intra_op.allow_spinning = 0``).
"""

from __future__ import annotations

import os

import torch

from fsanet.utils.settings import omp_threads

_configured: int | None = None


def inference_threads() -> int:
    """Threads per inference call: :func:`configure_threads`'s choice, else ``OMP_NUM_THREADS``,
    else every core."""
    if _configured is not None:
        return _configured
    return omp_threads() or os.cpu_count() or 1


def configure_threads(concurrency: int) -> int:
    """Give each of ``concurrency`` parallel requests its share of the cores (``OMP_NUM_THREADS`` wins).

    Sets torch's intra-op threads now; ONNX Runtime sessions created afterwards use the same number.
    """
    global _configured
    threads = omp_threads() or max(1, (os.cpu_count() or 1) // max(1, concurrency))
    torch.set_num_threads(threads)
    _configured = threads
    return threads
