"""What scoring a model costs in memory, from its size and input alone (known before a weight is read).

One evaluation process holds the runtime itself (Python, torch, ONNX Runtime, the benchmark's arrays), the
model and the copies of its weights its ONNX export and session make, and the activations of one chunk of
crops (:data:`~leaderboard.protocol.runner.CHUNK_PIXELS` at most, or one crop). A submission whose estimate
is over the evaluation's memory budget (``LEADERBOARD_EVAL_MEMORY_MB``) is refused at submit, and the default
budget (4096 MB) covers the largest model the default caps accept (50 M parameters at 448 px: 3.4 GB), so
what is accepted can be scored.

Measured (the evaluation's peak address space, what ``RLIMIT_AS`` caps, ``bench/bench_board_work.py``): an
FSA head on timm ``resnet50`` (24 M parameters) 2.1 GB at 224 px and 2.2 GB at 448 px (estimated 2.4 and
2.5), on ``resnet18`` at 224 px 1.7 GB (2.0), the registry's EfficientNet-B0 model at 224 px 1.7 GB (1.8),
``fsanet_caps_1x1`` 1.5 GB (1.7).
"""

from __future__ import annotations

from ..protocol.runner import CHUNK_PIXELS

RUNTIME_BYTES = 1600 * 2**20  # the process before any model: imports, the benchmark, the predictions
WEIGHT_COPIES = 8  # float32 weights held at once: the module, the traced graph, the ONNX bytes, the session
BYTES_PER_INPUT_PIXEL = 1024  # activations of one chunk, per input pixel (a ResNet-50 needs about 450)


def evaluation_bytes(params: int, input_side: int) -> int:
    """Address space one evaluation needs: a model of ``params`` parameters and input side ``input_side``."""
    chunk_pixels = max(CHUNK_PIXELS, input_side * input_side)  # one crop at least
    return RUNTIME_BYTES + WEIGHT_COPIES * 4 * params + BYTES_PER_INPUT_PIXEL * chunk_pixels
