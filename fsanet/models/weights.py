"""Weight tensors: reading ``.safetensors`` with bounded cost, checking them against an architecture, and the
one identity of a set of weights.

No pickle anywhere: weights are read only through ``safetensors``. The same check compares tensors with the
skeleton of the model a config builds, whether they come from a loaded file (:func:`load_weights_file`) or
from a file's header alone (:func:`read_safetensors_header`, before a single weight is read).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes

from fsanet.errors import InvalidWeightsError

WEIGHTS_NAME = "model.safetensors"
MAX_WEIGHTS_BYTES = 512 * 1024 * 1024  # far above any FSA variant (a few MB); stops absurd uploads
MAX_HEADER_BYTES = 1024 * 1024
# safetensors dtypes a weight may have: float weights, integer BatchNorm counters. No float8 & co.
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
INT_DTYPES = frozenset({"I64", "I32"})
TORCH_DTYPES = {
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
}
# Bump only with a change of what the identity covers: every stored result is keyed by it.
IDENTITY_VERSION = b"fsanet-weights-identity-1\n"

TensorSpec = tuple[str, tuple[int, ...]]  # (safetensors dtype, shape)


def tensor_spec(tensor: torch.Tensor) -> TensorSpec:
    return TORCH_DTYPES.get(tensor.dtype, str(tensor.dtype)), tuple(tensor.shape)


def tensor_problems(expected: Mapping[str, torch.Tensor], found: Mapping[str, TensorSpec]) -> list[str]:
    """What keeps tensors ``found`` (name -> dtype, shape) from loading into a model whose state dict is
    ``expected``: missing and unexpected names, wrong shapes, dtypes other than float (integer for the
    integer buffers). Empty when they fit."""
    problems = []
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing[:3]} ({len(missing)} in all)")
    if unexpected:
        names = [name[:60] for name in unexpected[:3]]
        problems.append(f"unexpected tensors {names} ({len(unexpected)} in all)")
    for key in sorted(set(expected) & set(found)):
        dtype, shape = found[key]
        reference = expected[key]
        if shape != tuple(reference.shape):
            problems.append(f"{key}: shape {shape}, architecture needs {tuple(reference.shape)}")
            continue
        allowed = FLOAT_DTYPES if reference.is_floating_point() else INT_DTYPES
        if dtype not in allowed:
            problems.append(f"{key}: dtype {dtype[:12]} is not accepted (use {'/'.join(sorted(allowed))})")
    return problems


def non_finite(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or infinite values as the float32 numbers the model
    runs (a float64 value beyond float32's range is infinite there): such weights give NaN angles."""
    return sorted(
        name
        for name, t in tensors.items()
        if t.is_floating_point() and not torch.isfinite(t.to(torch.float32)).all()
    )


def weights_identity(tensors: Mapping[str, torch.Tensor]) -> str:
    """The identity of a set of weights: sha256 over what the model computes with.

    Every tensor's name and shape, in name order, and the values of every floating-point tensor as the
    float32 numbers the model runs (``-0.0`` counted as ``0.0``). So a lossless re-encoding (float64 or
    float16 holding the same float32 values), another tensor order or other file metadata is the same
    identity; integer tensors (BatchNorm's step counters, unused by an evaluation) count by name and shape.
    """
    digest = hashlib.sha256(IDENTITY_VERSION)
    for name in sorted(tensors):
        tensor = tensors[name].detach()
        floating = tensor.is_floating_point()
        digest.update(json.dumps([name, list(tensor.shape), floating]).encode())
        if floating:
            values = tensor.to("cpu", torch.float32).contiguous() + 0.0  # -0.0 + 0.0 == +0.0
            digest.update(values.numpy().astype("<f4", copy=False).tobytes())
    return digest.hexdigest()


def load_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file with a size cap and a clear error for anything else."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InvalidWeightsError(f"{path.name}: only .safetensors weights are accepted (no pickle files)")
    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise InvalidWeightsError(f"{path.name}: {size} bytes is over the {MAX_WEIGHTS_BYTES}-byte cap")
    try:
        return load_safetensors_bytes(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise InvalidWeightsError(f"{path.name}: corrupt or truncated safetensors file ({error})") from error


def read_safetensors_header(path: Path) -> dict[str, TensorSpec]:
    """``{tensor name: (dtype, shape)}`` from the header alone, checked against the file's size."""
    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise InvalidWeightsError(f"{WEIGHTS_NAME}: truncated (no header)")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise InvalidWeightsError(f"{WEIGHTS_NAME}: corrupt or truncated header ({length} bytes said)")
        try:
            header = json.loads(file.read(length))
        except (ValueError, RecursionError):
            raise InvalidWeightsError(f"{WEIGHTS_NAME}: corrupt header (not JSON)") from None
    if not isinstance(header, dict):
        raise InvalidWeightsError(f"{WEIGHTS_NAME}: corrupt header (not an object)")
    data_bytes = size - 8 - length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            valid = all(isinstance(d, int) and 0 <= d < 2**31 for d in shape) and 0 <= start <= end
        except (TypeError, KeyError, ValueError):
            valid = False
        if not valid or not isinstance(dtype, str):
            raise InvalidWeightsError(f"{WEIGHTS_NAME}: corrupt header entry for {str(name)[:60]!r}")
        if end > data_bytes:
            raise InvalidWeightsError(f"{WEIGHTS_NAME}: truncated ({str(name)[:60]} ends past the file)")
        tensors[str(name)] = (dtype, shape)
    return tensors
