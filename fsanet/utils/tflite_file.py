"""Reading a TFLite flatbuffer: its operators, their options, tensor shapes and constant values.

Parsed with the ``tflite`` package (the generated flatbuffer schema): no TensorFlow. Used by the
TFLite -> ONNX converter of the detectors (:mod:`fsanet.detect.tflite_convert`) and by the families whose
original weights are ``.tflite`` files (FaceMesh). Only float tensors are read: float32 as stored, float16 as
stored (every float16 is a float32, so widening is exact); a quantised tensor is refused with its name.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from fsanet.errors import FSANetError

_TENSOR_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}


class UnsupportedTFLiteError(FSANetError):
    """A ``.tflite`` file using an operator or tensor type this project does not cover."""


def read_model(data: bytes) -> Any:
    """The ``tflite.Model`` of a flatbuffer's bytes (its first subgraph: ``model.Subgraphs(0)``)."""
    import tflite

    return tflite.Model.GetRootAsModel(data, 0)


@functools.cache
def _operator_names() -> dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator

    return {value: key for key, value in vars(BuiltinOperator).items() if not key.startswith("_")}


def operator_name(model: Any, op: Any) -> str:
    """The builtin name of operator ``op`` (``"CONV_2D"``), ``"?"`` for a custom one."""
    code = model.OperatorCodes(op.OpcodeIndex())
    return _operator_names().get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")


def builtin_options(op: Any, options_class: type) -> Any:
    """Operator ``op``'s options table read as ``options_class`` (``tflite.Conv2DOptions``...)."""
    table = op.BuiltinOptions()
    options = options_class()
    options.Init(table.Bytes, table.Pos)
    return options


def tensor_shape(subgraph: Any, index: int) -> list[int]:
    return [int(v) for v in subgraph.Tensors(index).ShapeAsNumpy()]


def tensor_name(subgraph: Any, index: int) -> str:
    return subgraph.Tensors(index).Name().decode()


def constant_value(model: Any, subgraph: Any, index: int) -> np.ndarray | None:
    """Constant tensor ``index``'s value as stored (float16 stays float16); ``None`` for an activation."""
    tensor = subgraph.Tensors(index)
    quantization = tensor.Quantization()
    if quantization is not None and quantization.ScaleLength():
        raise UnsupportedTFLiteError(f"tensor {tensor_name(subgraph, index)} is quantised: not supported")
    buffer = model.Buffers(tensor.Buffer())
    if buffer is None or buffer.DataLength() == 0:
        return None
    dtype = _TENSOR_TYPES.get(tensor.Type())
    if dtype is None:
        raise UnsupportedTFLiteError(f"tensor {tensor_name(subgraph, index)} has TFLite type {tensor.Type()}")
    return buffer.DataAsNumpy().view(dtype).reshape(tensor_shape(subgraph, index))
