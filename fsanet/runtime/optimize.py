"""Inference-time speed-ups that keep the outputs within float rounding of the plain modules.

On CPU with onnxruntime installed, :func:`optimize_for_inference` returns the model exported to ONNX
and run by ONNX Runtime (:mod:`fsanet.runtime.onnx_engine`): 6-10x faster than the torch path below
at batch 1 on the 2-core CPU (README, Benchmarks). ``engine="torch"`` (or ``FSANET_ENGINE=torch``),
CUDA, and a model the exporter cannot handle take the torch path: a copy of the model with every
BatchNorm folded into the pointwise convolution before it, the graph traced and frozen with
TorchScript (constants folded, e.g. the capsule weights' bmm layout) and, on CPU, convolutions moved
to oneDNN's layout by ``torch.jit.optimize_for_inference``; large batches run in cache-sized chunks.
The parity tests run both engines against the official outputs too.

Measured on the 2-core CPU (``python -m fsanet bench``): ``channels_last`` helped the eager
modules but was slower than this once frozen (7.0 vs 3.4 ms at batch 1 for the uniform
capsule variant), so it is not used here.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import sys
import warnings

import torch
from torch import nn

from fsanet.models.layers import SeparableConvBlock
from fsanet.runtime.engine import EngineModel
from fsanet.runtime.onnx_engine import ONNX_CHUNK, choose_engine, onnx_pose_model, requested_engine
from fsanet.utils.settings import tune_malloc


def fold_batchnorm(block: SeparableConvBlock) -> None:
    """Fold the block's eval-mode BatchNorm into its pointwise conv, in place."""
    bn, conv = block.bn, block.pointwise
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    with torch.no_grad():
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
    block.bn = nn.Identity()


# glibc serves blocks above its mmap threshold (128 KiB at first) with fresh mmap()s and gives freed
# heap tops back to the OS, so a forward pass page-faults its activations in again on every call.
# Blocks up to 32 MiB (glibc's maximum) from the heap and 256 MiB of freed heap kept: on the 2-core
# CPU, a 640x480 photo end to end (detect, pose, draw) went from 65-69 to 46-53 ms.
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 256 * 1024 * 1024


@functools.cache
def tune_allocator() -> bool:
    """Keep activation-sized blocks on glibc's heap (see above); ``False`` where not applied.

    Process-wide and idempotent; :func:`optimize_for_inference` and the MTCNN detector call it.
    ``FSANET_TUNE_MALLOC=0`` leaves the allocator alone; other C libraries are left alone too.
    """
    if not tune_malloc() or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(mallopt(m_trim_threshold, TRIM_THRESHOLD))


# Batches are run in chunks of this size on the torch engine: the activations of 32 crops stay in cache,
# and on a 2-core CPU two chunks of 32 ran ~35% faster than one batch of 64 (ONNX Runtime: ONNX_CHUNK).
DEFAULT_CHUNK = 32


def optimize_for_inference(
    model: nn.Module,
    script: bool = True,
    example_batch: int = 8,
    chunk: int | None = None,
    engine: str | None = None,
    cache: bool = True,
) -> nn.Module:
    """A faster copy of ``model`` for inference (same forward contract, no gradients).

    ``engine``: ``"onnx"``, ``"torch"`` or ``"auto"`` (default: ``$FSANET_ENGINE``, else ``auto``: ONNX
    Runtime on CPU when installed). ``cache=False`` does not write the exported graph to the cache.
    Batches larger than ``chunk`` run in chunks (default: the engine's own, :data:`DEFAULT_CHUNK` on torch,
    :data:`fsanet.runtime.onnx_engine.ONNX_CHUNK` on ONNX Runtime). Torch path: ``script=False`` only folds
    the BatchNorms.
    The result keeps ``name``/``config``/``input_size`` of the original.
    """
    tune_allocator()
    device = next(model.parameters()).device
    if choose_engine(engine, device) == "onnx":
        try:
            return onnx_pose_model(model, cache=cache, chunk=chunk or ONNX_CHUNK)
        except (torch.onnx.errors.OnnxExporterError, RuntimeError) as error:
            if requested_engine(engine) == "onnx":
                raise
            name = getattr(model, "name", "the model")
            warnings.warn(f"ONNX export of {name} failed ({error}); using torch", stacklevel=2)
    optimized = copy.deepcopy(model).eval()
    for module in optimized.modules():
        if isinstance(module, SeparableConvBlock) and isinstance(module.bn, nn.BatchNorm2d):
            fold_batchnorm(module)
    if script:
        size = int(getattr(model, "input_size", 64))
        example = torch.zeros(example_batch, 3, size, size, device=device)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # torch.jit is deprecated in 2.13 but is the fastest CPU path measured here.
            warnings.simplefilter("ignore", DeprecationWarning)
            optimized = torch.jit.freeze(torch.jit.trace(optimized, example, check_trace=False))
            if device.type == "cpu":
                optimized = torch.jit.optimize_for_inference(optimized)
    return InferenceModel(optimized, model, chunk or DEFAULT_CHUNK)


class InferenceModel(EngineModel):
    """An optimised torch graph standing in for its source model."""

    def __init__(self, graph: nn.Module, source: nn.Module, chunk: int = DEFAULT_CHUNK):
        super().__init__(source, chunk)
        self.graph = graph

    def run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if len(x) <= self.chunk:
                return self.graph(x)
            return torch.cat([self.graph(part) for part in x.split(self.chunk)])
