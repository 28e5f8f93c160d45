"""TFLite flatbuffer -> ONNX graph, for the float convolutional nets the project ships as detectors.

The ``.tflite`` file is parsed with the ``tflite`` package (the generated flatbuffer schema) and every
operator becomes ONNX nodes directly, with no TensorFlow and no tracing. Covered: the operators of
MediaPipe's BlazeFace models (``CONV_2D``, ``DEPTHWISE_CONV_2D``, ``ADD``, ``RELU``, ``MAX_POOL_2D``,
``PAD``, ``RESHAPE``, ``CONCATENATION``, ``RESIZE_BILINEAR``, and ``DEQUANTIZE`` of float16 constants,
folded into float32 initialisers exactly); any other operator, or a quantised tensor, is refused with
its name.

Layout: TFLite is NHWC, ONNX convolutions are NCHW. The graph keeps the TFLite input (``(1, H, W, C)``
float32) and outputs, transposes the input once and keeps every 4-D activation NCHW; tensors leaving the
4-D world (a ``RESHAPE``) are transposed back first, so every output equals TFLite's element for element.
``SAME`` padding becomes TensorFlow's explicit (bottom/right-heavy) pads.

``tests/test_blazeface.py`` checks the converted graphs on ONNX Runtime against the TFLite runtime
(``ai-edge-litert``) on real photos.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fsanet.utils.tflite_file import (
    UnsupportedTFLiteError,
    builtin_options,
    constant_value,
    operator_name,
    read_model,
    tensor_shape,
)

# ONNX IR version of opset 17 files: readable by every ONNX Runtime the project targets, onnxruntime-web too.
IR_VERSION = 8
OPSET = 17
NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
_ACTIVATIONS = {0: None, 1: "Relu", 3: "Relu6"}


@dataclass
class _Graph:
    """ONNX nodes and initialisers being built, and the ONNX name and layout of every TFLite tensor."""

    model: object
    subgraph: object
    nodes: list = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)  # tflite tensor index -> ONNX value name
    constants: dict[int, np.ndarray] = field(default_factory=dict)
    counter: int = 0

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}__{self.counter}"

    def shape(self, index: int) -> list[int]:
        return tensor_shape(self.subgraph, index)

    def constant(self, index: int) -> np.ndarray | None:
        """The value of a constant tensor (float16 data as stored), else ``None``."""
        if index in self.constants:
            return self.constants[index]
        value = constant_value(self.model, self.subgraph, index)
        if value is None:
            return None
        self.constants[index] = value
        return value

    def add_initializer(self, hint: str, value: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers[name] = np.ascontiguousarray(value)
        return name

    def node(self, op_type: str, inputs: list[str], output: str | None = None, **attributes) -> str:
        from onnx import helper

        output = output or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attributes))
        return output

    def value(self, index: int) -> str:
        """The ONNX name of a TFLite tensor: an activation already made, or a constant as an initialiser."""
        if index in self.names:
            return self.names[index]
        data = self.constant(index)
        if data is None:
            raise UnsupportedTFLiteError(f"tensor {index} is used before it is produced")
        name = self.add_initializer(self.subgraph.Tensors(index).Name().decode(), data.astype(np.float32))
        self.names[index] = name
        return name


def _same_pads(in_size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding (begin, end) of one spatial axis: the odd pixel goes at the end."""
    effective = (kernel - 1) * dilation + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2


def _spatial_pads(graph: _Graph, index: int, kernel: tuple[int, int], strides, padding, dilations=(1, 1)):
    if padding == 1:  # VALID
        return [0, 0, 0, 0]
    _, height, width, _ = graph.shape(index)
    top, bottom = _same_pads(height, kernel[0], strides[0], dilations[0])
    left, right = _same_pads(width, kernel[1], strides[1], dilations[1])
    return [top, left, bottom, right]


def _activate(graph: _Graph, value: str, activation: int, output: str) -> str:
    if activation not in _ACTIVATIONS:
        raise UnsupportedTFLiteError(f"fused activation {activation} is not supported")
    kind = _ACTIVATIONS[activation]
    if kind is None:
        return graph.node("Identity", [value], output)
    if kind == "Relu6":
        low = graph.add_initializer("zero", np.array(0.0, np.float32))
        high = graph.add_initializer("six", np.array(6.0, np.float32))
        return graph.node("Clip", [value, low, high], output)
    return graph.node("Relu", [value], output)


def _conv(graph: _Graph, op, depthwise: bool) -> None:
    import tflite

    options = builtin_options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
    x, w, b = (int(i) for i in op.InputsAsNumpy()[:3])
    kernel = graph.constant(w).astype(np.float32)
    if depthwise:  # (1, KH, KW, C*multiplier) -> (C*multiplier, 1, KH, KW), one group per input channel
        weights = kernel.transpose(3, 0, 1, 2)
        group = graph.shape(x)[3]
    else:  # (O, KH, KW, I) -> (O, I, KH, KW)
        weights, group = kernel.transpose(0, 3, 1, 2), 1
    strides = (options.StrideH(), options.StrideW())
    dilations = (options.DilationHFactor(), options.DilationWFactor())
    pads = _spatial_pads(graph, x, weights.shape[2:], strides, options.Padding(), dilations)
    inputs = [graph.value(x), graph.add_initializer("weight", weights)]
    if b >= 0:
        inputs.append(graph.add_initializer("bias", graph.constant(b).astype(np.float32)))
    out = graph.node(
        "Conv", inputs, kernel_shape=list(weights.shape[2:]), strides=list(strides), pads=pads,
        dilations=list(dilations), group=group,
    )  # fmt: skip
    _activate(graph, out, options.FusedActivationFunction(), _output(graph, op))


def _output(graph: _Graph, op) -> str:
    index = int(op.OutputsAsNumpy()[0])
    graph.names[index] = graph.fresh(graph.subgraph.Tensors(index).Name().decode())
    return graph.names[index]


def _add(graph: _Graph, op) -> None:
    import tflite

    a, b = (int(i) for i in op.InputsAsNumpy())
    if graph.constant(a) is not None or graph.constant(b) is not None:
        raise UnsupportedTFLiteError("ADD of a constant is not supported")
    out = graph.node("Add", [graph.value(a), graph.value(b)])
    activation = builtin_options(op, tflite.AddOptions).FusedActivationFunction()
    _activate(graph, out, activation, _output(graph, op))


def _relu(graph: _Graph, op) -> None:
    graph.node("Relu", [graph.value(int(op.InputsAsNumpy()[0]))], _output(graph, op))


def _max_pool(graph: _Graph, op) -> None:
    import tflite

    options = builtin_options(op, tflite.Pool2DOptions)
    x = int(op.InputsAsNumpy()[0])
    kernel, strides = (options.FilterHeight(), options.FilterWidth()), (options.StrideH(), options.StrideW())
    pads = _spatial_pads(graph, x, kernel, strides, options.Padding())
    out = graph.node("MaxPool", [graph.value(x)], kernel_shape=list(kernel), strides=list(strides), pads=pads)
    _activate(graph, out, options.FusedActivationFunction(), _output(graph, op))


def _pad(graph: _Graph, op) -> None:
    x, paddings = (int(i) for i in op.InputsAsNumpy()[:2])
    nhwc = graph.constant(paddings).astype(np.int64)  # (4, 2): begin, end per NHWC axis
    nchw = nhwc[list(NHWC_TO_NCHW)]
    pads = graph.add_initializer("pads", np.concatenate([nchw[:, 0], nchw[:, 1]]))
    graph.node("Pad", [graph.value(x), pads], _output(graph, op), mode="constant")


def _reshape(graph: _Graph, op) -> None:
    x = int(op.InputsAsNumpy()[0])
    value = graph.value(x)
    if len(graph.shape(x)) == 4:  # back to TFLite's element order before flattening
        value = graph.node("Transpose", [value], perm=list(NCHW_TO_NHWC))
    target = graph.shape(int(op.OutputsAsNumpy()[0]))
    if len(graph.shape(x)) == 4 and len(target) == 3:  # an SSD head's (N, H, W, C) -> (N, H * W * k, D)
        target = [0, -1, target[2]]  # for any batch and frame size: a fully convolutional net stays one
    shape = graph.add_initializer("shape", np.array(target, np.int64))
    graph.node("Reshape", [value, shape], _output(graph, op))


def _concatenation(graph: _Graph, op) -> None:
    import tflite

    options = builtin_options(op, tflite.ConcatenationOptions)
    inputs = [int(i) for i in op.InputsAsNumpy()]
    rank = len(graph.shape(inputs[0]))
    axis = options.Axis() % rank
    if rank == 4:
        axis = NHWC_TO_NCHW.index(axis)
    out = graph.node("Concat", [graph.value(i) for i in inputs], axis=axis)
    _activate(graph, out, options.FusedActivationFunction(), _output(graph, op))


def _resize_bilinear(graph: _Graph, op) -> None:
    import tflite

    options = builtin_options(op, tflite.ResizeBilinearOptions)
    x, size = (int(i) for i in op.InputsAsNumpy()[:2])
    batch, _, _, channels = graph.shape(x)
    height, width = (int(v) for v in graph.constant(size))
    if options.AlignCorners():
        mode = "align_corners"
    elif options.HalfPixelCenters():
        mode = "half_pixel"
    else:
        mode = "asymmetric"
    sizes = graph.add_initializer("sizes", np.array([batch, channels, height, width], np.int64))
    graph.node(
        "Resize", [graph.value(x), "", "", sizes], _output(graph, op), mode="linear",
        coordinate_transformation_mode=mode,
    )  # fmt: skip


def _dequantize(graph: _Graph, op) -> None:
    source, target = int(op.InputsAsNumpy()[0]), int(op.OutputsAsNumpy()[0])
    data = graph.constant(source)
    if data is None or data.dtype != np.float16:
        raise UnsupportedTFLiteError("only DEQUANTIZE of float16 constants is supported")
    graph.constants[target] = data.astype(np.float32)  # exact: every float16 is a float32


_CONVERTERS: dict[str, Callable[[_Graph, object], None]] = {
    "CONV_2D": lambda g, op: _conv(g, op, depthwise=False),
    "DEPTHWISE_CONV_2D": lambda g, op: _conv(g, op, depthwise=True),
    "ADD": _add,
    "RELU": _relu,
    "MAX_POOL_2D": _max_pool,
    "PAD": _pad,
    "RESHAPE": _reshape,
    "CONCATENATION": _concatenation,
    "RESIZE_BILINEAR": _resize_bilinear,
    "DEQUANTIZE": _dequantize,
}


def tflite_to_onnx(data: bytes, metadata: dict[str, str] | None = None):
    """The ``.tflite`` model ``data`` (its first subgraph) as an ``onnx.ModelProto`` with the same input
    and output names, shapes and values (see the module docstring)."""
    import onnx
    from onnx import helper, numpy_helper

    model = read_model(data)
    subgraph = model.Subgraphs(0)
    graph = _Graph(model, subgraph)
    (input_index,) = (int(i) for i in subgraph.InputsAsNumpy())
    input_name = subgraph.Tensors(input_index).Name().decode()
    graph.names[input_index] = graph.node("Transpose", [input_name], perm=list(NHWC_TO_NCHW))
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        name = operator_name(model, op)
        if name not in _CONVERTERS:
            raise UnsupportedTFLiteError(f"TFLite operator {name} is not supported by the converter")
        _CONVERTERS[name](graph, op)
    outputs = []
    for index in (int(i) for i in subgraph.OutputsAsNumpy()):
        name = subgraph.Tensors(index).Name().decode()
        graph.node("Identity", [graph.names[index]], name)
        outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, graph.shape(index)))
    inputs = [helper.make_tensor_value_info(input_name, onnx.TensorProto.FLOAT, graph.shape(input_index))]
    initializers = [numpy_helper.from_array(value, name) for name, value in graph.initializers.items()]
    onnx_graph = helper.make_graph(graph.nodes, "tflite", inputs, outputs, initializers)
    result = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fsanet.tflite_convert"
    )
    result.ir_version = IR_VERSION
    for key, value in (metadata or {}).items():
        result.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(result)
    return result
