"""The fast MTCNN cascade: same nets as facenet-pytorch, exact packing and strips, same faces."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from fsanet.detect import mtcnn
from fsanet.detect.mtcnn import MTCNN, pack_levels, shared_mtcnn
from fsanet.errors import WeightsUnavailableError
from fsanet.pipeline.estimate import box_iou

from .conftest import DATA, ROOT, require_shared

ENGINES = ("torch", "onnx")


@pytest.fixture(scope="module")
def cascade() -> MTCNN:
    return shared_mtcnn("cpu", 20)


@pytest.fixture(scope="module")
def facenet():
    from fsanet.utils.torchvision_compat import ensure_torchvision

    ensure_torchvision()
    from facenet_pytorch import MTCNN as FacenetMTCNN

    return FacenetMTCNN(keep_all=True, device="cpu", select_largest=False)


def _photos() -> list[np.ndarray]:
    folder = require_shared(DATA / "aflw2000-sample16")
    photos = [np.asarray(Image.open(jpg).convert("RGB")) for jpg in sorted(folder.glob("*.jpg"))]
    astronaut = skimage.data.astronaut()
    group = np.full((720, 1280, 3), 180, np.uint8)
    for i in range(5):  # five heads, as in bench/bench_pipeline.py
        x, y = 20 + i * 250, 120 + (i % 2) * 300
        group[y : y + 240, x : x + 190] = astronaut[20:260, 130:320]
    return [*photos, astronaut, group]


@pytest.mark.parametrize("engine", ENGINES)
def test_nets_compute_what_facenets_nets_compute(facenet, engine):
    """Same weights, same layer order (including the Caffe flatten order of the dense layers), through
    torch and through ONNX Runtime; batch sizes and the P-net's input size other than the exported ones."""
    cascade = shared_mtcnn("cpu", 20, engine)
    torch.manual_seed(0)
    inputs = {
        "pnet": torch.randn(3, 3, 40, 52),
        "rnet": torch.randn(7, 3, 24, 24),
        "onet": torch.randn(5, 3, 48, 48),
    }
    with torch.inference_mode():
        for name, x in inputs.items():
            ours = getattr(cascade, name)(np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy()))
            theirs = getattr(facenet, name)(x)
            probs, offsets = theirs[-1][:, 1], theirs[0]
            np.testing.assert_allclose(ours[0], probs.numpy(), atol=1e-5, rtol=1e-4)
            np.testing.assert_allclose(ours[1], offsets.numpy(), atol=1e-5, rtol=1e-4)
            if name == "onet":
                np.testing.assert_allclose(ours[2], theirs[1].numpy(), atol=1e-5, rtol=1e-4)


def test_packed_levels_do_not_overlap_and_sit_at_even_corners():
    sizes = [(290, 386), (206, 274), (146, 194), (104, 138), (74, 98), (52, 70), (38, 50), (26, 36), (20, 26)]
    corners, (height, width) = pack_levels(sizes)
    canvas = np.zeros((height, width), np.int32)
    for (y, x), (h, w) in zip(corners, sizes, strict=True):
        assert y % 2 == 0 and x % 2 == 0
        canvas[y : y + h, x : x + w] += 1
    assert canvas.max() == 1 and canvas.sum() == sum(h * w for h, w in sizes)
    assert height * width < 1.3 * canvas.sum()  # shelves waste little


def test_pnet_on_the_packed_canvas_in_strips_equals_the_pnet_per_level(cascade, monkeypatch):
    """Every full-window cell of every level, odd sizes included, scores as the P-net on that level alone."""
    image = skimage.data.astronaut()[:301, :417]  # odd sides: some levels get an edge row/column
    monkeypatch.setattr(mtcnn, "STRIP_PIXELS", 20_000)  # many strips
    seen = {}

    def record(canvas):
        seen["canvas"] = canvas
        seen["maps"] = MTCNN._pnet_in_strips(cascade, canvas)
        return seen["maps"]

    monkeypatch.setattr(cascade, "_pnet_in_strips", record)
    cascade._propose(image.astype(np.float32))
    probs, _ = seen["maps"]
    levels = cascade.pyramid(*image.shape[:2])
    images = mtcnn._resample(image.astype(np.float32), levels)
    corners, _ = pack_levels([(h + h % 2, w + w % 2) for _, h, w in levels])
    with torch.inference_mode():
        for level, (y, x) in zip(images, corners, strict=True):
            alone = cascade.pnet(mtcnn._normalise(level[None]))[0][0]
            rows, cols = (level.shape[0] - 12) // 2 + 1, (level.shape[1] - 12) // 2 + 1  # full windows
            alone = alone[:rows, :cols]
            packed = probs[y // 2 : y // 2 + rows, x // 2 : x // 2 + cols]
            np.testing.assert_allclose(packed, alone, atol=1e-5)


def test_same_faces_as_facenets_mtcnn(cascade, facenet):
    """Same faces, scores and (near) boxes as facenet-pytorch's ``detect_face``.

    Not identical: the pyramid and crops are resampled by OpenCV rather than torch's ``area``
    mode, which moves some P-net proposals and hence the final regression by a few pixels.
    Measured: box IoU 0.83-0.97 (median 0.95), scores within 0.006, landmarks within 11% of
    the box side (profile faces).
    """
    ious = []
    for photo in _photos():
        boxes, scores, landmarks = facenet.detect(photo, landmarks=True)
        ours, our_scores, our_landmarks = cascade.detect(photo)
        assert len(ours) == len(boxes)
        for box, score, points in zip(boxes, scores, landmarks, strict=True):
            overlaps = [box_iou(tuple(box), tuple(mine)) for mine in ours]
            match = int(np.argmax(overlaps))
            ious.append(overlaps[match])
            assert abs(our_scores[match] - score) < 0.01
            assert np.abs(our_landmarks[match] - points).max() < 0.15 * (box[2] - box[0])
    assert min(ious) > 0.8 and np.median(ious) > 0.93, ious


def test_no_face_and_tiny_images_give_empty_results(cascade):
    blank, tiny, sliver = (
        np.full((300, 400, 3), 128, np.uint8),
        np.zeros((11, 11, 3), np.uint8),
        np.zeros((40, 3, 3), np.uint8),
    )
    for image in (blank, tiny, sliver):
        boxes, scores, landmarks = cascade.detect(image)
        assert boxes.shape == (0, 4) and scores.shape == (0,) and landmarks.shape == (0, 5, 2)
    for wrong in (np.zeros((64, 64), np.uint8), np.zeros((64, 64, 4), np.uint8)):  # gray, RGBA
        with pytest.raises(ValueError, match=r"RGB image of shape \(H, W, 3\)"):
            cascade.detect(wrong)


def test_a_jpeg_round_trip_keeps_the_face(cascade):
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.astronaut()).save(buffer, "JPEG", quality=60)
    boxes, scores, _ = cascade.detect(np.asarray(Image.open(buffer)))
    assert len(boxes) == 1 and scores[0] > 0.99


def test_missing_facenet_weights_say_how_to_install_them(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsUnavailableError, match="pip install facenet-pytorch"):
        mtcnn.weights_file("pnet")


ALLOCATOR_SCRIPT = """
import ctypes
import numpy as np
from fsanet.runtime.optimize import tune_allocator

class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
applied = tune_allocator()
mapped = libc.mallinfo2().hblks
activation = np.ones((1, 10, 124, 768), np.float32)  # P-net conv1 on one strip: 3.8 MB
print(applied, libc.mallinfo2().hblks - mapped)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the allocator tuning is glibc's mallopt")
def test_allocator_tuning_serves_activations_from_the_heap():
    """Tuned, an activation-sized block comes from glibc's heap, which keeps its pages between calls; with
    glibc's defaults it is a fresh mmap, page-faulted in again on every call. FSANET_TUNE_MALLOC=0 keeps the
    defaults. (The page faults themselves, a noisy count, are reported by bench/bench_allocator.py.)"""
    runs = {}
    for setting in ("1", "0"):
        env = {**os.environ, "FSANET_TUNE_MALLOC": setting, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-c", ALLOCATOR_SCRIPT]
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        runs[setting] = out.stdout.split()
    assert runs == {"1": ["True", "0"], "0": ["False", "1"]}


def test_crops_run_in_chunks_with_the_same_result(cascade, monkeypatch):
    image = skimage.data.astronaut()
    whole = cascade.detect(image)
    monkeypatch.setattr(cascade, "chunks", {"rnet": 7, "onet": 7})  # stage 2 sees far more than 7 candidates
    for ours, reference in zip(cascade.detect(image), whole, strict=True):
        np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_concurrent_detections_match_serial_ones():
    """The MTCNN detector runs requests in parallel (no lock), so the cascade must keep no call state."""
    from concurrent.futures import ThreadPoolExecutor

    from fsanet.detect.detectors import create_detector

    detector = create_detector("mtcnn")
    assert detector.thread_safe
    photos = _photos()
    serial = [detector.detect(photo) for photo in photos]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(detector.detect, photos * 2))
    assert parallel == serial * 2


def test_onnx_runtime_cascade_finds_the_same_faces_as_torch():
    """The nets on ONNX Runtime against torch: same count, box IoU >= 0.99, on the AFLW2000 samples, the
    astronaut and the five-face scene."""
    engines = {engine: shared_mtcnn("cpu", 20, engine) for engine in ENGINES}
    assert {engine: cascade.engine for engine, cascade in engines.items()} == {e: e for e in ENGINES}
    for photo in _photos():
        (ours, our_scores, our_points), (theirs, scores, points) = (c.detect(photo) for c in engines.values())
        assert len(ours) == len(theirs) > 0
        for box, score, landmarks in zip(theirs, scores, points, strict=True):
            overlaps = [box_iou(tuple(box), tuple(mine)) for mine in ours]
            match = int(np.argmax(overlaps))
            assert overlaps[match] >= 0.99
            assert abs(our_scores[match] - score) < 1e-3
            assert np.abs(our_points[match] - landmarks).max() < 0.5  # pixels
