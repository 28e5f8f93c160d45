"""Pipeline: image -> faces -> one batched forward -> poses, on real photos and edge cases."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import skimage.data
import torch
from PIL import Image

from fsanet import create_model
from fsanet.data.geometry import rotation_matrix
from fsanet.data.preprocess import crop_resize, expand_box, to_batch
from fsanet.detect.detectors import Detection, Detector, create_detector
from fsanet.pipeline.estimate import PoseEstimator, PoseResult, PoseSmoother, estimate, to_json

from .conftest import DATA, OFFICIAL, require_shared
from .videos import two_astronauts_clip

AFLW = DATA / "aflw2000-sample16"


# ------------------------------------------------------------------ AFLW2000 helpers (also used by the bench)
def landmark_box(pt2d: np.ndarray) -> tuple[float, float, float, float]:
    """The official AFLW2000 recipe's ``(x, y, w, h)``: the box of the visible 2-D landmarks (-1 = hidden)."""
    visible = pt2d[:, (pt2d[0] > 0) & (pt2d[1] > 0)]
    x1, y1 = visible.min(axis=1)
    x2, y2 = visible.max(axis=1)
    return float(x1), float(y1), float(x2 - x1), float(y2 - y1)


def aflw_samples(folder: Path = AFLW) -> list[tuple[Path, np.ndarray, tuple[float, float, float, float]]]:
    """``(jpg, [yaw, pitch, roll] degrees, landmark box xywh)`` for every labelled sample."""
    samples = []
    for jpg in sorted(folder.glob("*.jpg")):
        mat = scipy.io.loadmat(jpg.with_suffix(".mat"))
        pitch, yaw, roll = np.rad2deg(mat["Pose_Para"][0, :3])
        samples.append((jpg, np.array([yaw, pitch, roll]), landmark_box(mat["pt2d"])))
    return samples


def reference_angles(model: torch.nn.Module, samples) -> np.ndarray:
    """The model on the official landmark-box crops (margin 0.6, exclusive end, no min-max)."""
    crops = []
    for jpg, _, box in samples:
        image = np.asarray(Image.open(jpg).convert("RGB"))
        crop = expand_box(box, (image.shape[1], image.shape[0]), 0.6)
        crops.append(crop_resize(image, crop, inclusive=False).astype(np.float32))
    with torch.inference_mode():
        return model(to_batch(crops)).numpy().astype(np.float64)


def matched_face(result: PoseResult, box_xywh):
    """The detected face whose centre is nearest the landmark box centre, if it lies inside that box."""
    return matched_box(result.faces, box_xywh)


def matched_box(faces, box_xywh):
    """Of ``faces`` (anything with a ``box`` x1, y1, x2, y2), the one :func:`matched_face` would pick."""
    x, y, w, h = box_xywh
    best = None
    for face in faces:
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        if x <= cx <= x + w and y - 0.5 * h <= cy <= y + h:  # the landmark box lacks the forehead
            distance = np.hypot(cx - x - w / 2, cy - y - h / 2)
            if best is None or distance < best[0]:
                best = (distance, face)
    return None if best is None else best[1]


def aflw_scores(estimator: PoseEstimator, samples) -> tuple[float, float, np.ndarray]:
    """(recall, MAE over found faces, per-sample angles with NaN for misses)."""
    angles = np.full((len(samples), 3), np.nan)
    for index, (jpg, _, box) in enumerate(samples):
        face = matched_face(estimator.estimate(jpg), box)
        if face is not None:
            angles[index] = (face.yaw, face.pitch, face.roll)
    labels = np.stack([s[1] for s in samples])
    found = ~np.isnan(angles[:, 0])
    return float(found.mean()), float(np.abs(angles[found] - labels[found]).mean()), angles


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model():
    require_shared(OFFICIAL)
    return create_model("fsanet_fusion.300w_lp", pretrained=True).eval()


@pytest.fixture(scope="module")
def estimator(model):
    return PoseEstimator(model, "mtcnn", device="cpu")


class CountingModel(torch.nn.Module):
    """Wraps a model and records the batch size of every forward."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.name, self.batches = inner, "counting", []

    def forward(self, x):
        self.batches.append(len(x))
        return self.inner(x)


class FixedDetector(Detector):
    """Returns preset boxes (in the coordinates of the image it is given) and records its input size."""

    name = "fixed"

    def __init__(self, boxes):
        super().__init__(min_score=0.0)
        self.boxes, self.seen = boxes, []

    def _detect(self, image):
        self.seen.append(image.shape)
        return [Detection(box, 0.9 - 0.1 * i) for i, box in enumerate(self.boxes)]


def _grid(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.concatenate([np.concatenate([image] * cols, axis=1)] * rows, axis=0)


# ----------------------------------------------------------------------------------------------- tests
@pytest.mark.slow
def test_aflw_pipeline_matches_the_landmark_crops(estimator, model):
    samples = aflw_samples(require_shared(AFLW))
    labels = np.stack([s[1] for s in samples])
    reference_mae = np.abs(reference_angles(model, samples) - labels).mean()
    recall, mae, _ = aflw_scores(estimator, samples)
    print(f"AFLW2000 x16 mtcnn: recall {recall:.3f}, MAE {mae:.2f} (landmark crops {reference_mae:.2f})")
    assert recall == 1.0, "every face must be found"
    assert mae <= reference_mae + 1.0


@pytest.mark.parametrize(
    "source",
    [lambda: DATA / "biwi-sample1" / "hpdb" / "01" / "frame_00003_rgb.png", lambda: skimage.data.astronaut()],
    ids=["biwi", "astronaut"],
)
def test_real_photos_have_their_face_found(estimator, source):
    image = source()
    if isinstance(image, Path):
        require_shared(image)
    result = estimator.estimate(image)
    assert len(result.faces) == 1 and result.message is None
    face = result.faces[0]
    assert face.score > 0.9 and abs(face.yaw) < 60
    np.testing.assert_allclose(face.rotation, rotation_matrix(face.yaw, face.pitch, face.roll))
    assert face.model == "fsanet_fusion.300w_lp"


def test_all_faces_go_through_one_batched_forward(model):
    counting = CountingModel(model)
    estimator = PoseEstimator(counting, "mtcnn", device="cpu")
    face = skimage.data.astronaut()[40:220, 150:300]
    result = estimator.estimate(_grid(face, 2, 3))
    assert len(result.faces) == 6 and counting.batches == [6]
    # The batch gives each face what a forward of that face alone gives.
    single = estimator.predict_angles(_grid(face, 2, 3), [result.faces[3].box])[0]
    np.testing.assert_allclose(
        (result.faces[3].yaw, result.faces[3].pitch, result.faces[3].roll), single, atol=1e-3
    )


def test_the_photo_path_reads_the_file_once_checks_it_once_and_runs_on_numpy(model, tmp_path, monkeypatch):
    """Decode to angles on ONNX Runtime without a torch tensor, the same angles as the model's own call; the
    file read once and its header checked once, by the library and by the Space."""
    import fsanet.data.imageio as imageio
    from fsanet.runtime.onnx_engine import OnnxPoseModel
    from space import inference

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(photo, quality=92)
    estimator = PoseEstimator(model, "blazeface_scan", device="cpu")
    assert isinstance(estimator.model, OnnxPoseModel), "the CPU default engine"
    image = estimator.load(photo)
    boxes = [face.box for face in estimator.estimate_rgb(image).faces]
    through_torch = estimator.model(torch.from_numpy(estimator.crop.batch(image, boxes))).numpy()

    counts = {"read": 0, "check_size": 0, "jpeg scan": 0}

    def counted(key, function):
        def call(*args, **kwargs):
            counts[key] += 1
            return function(*args, **kwargs)

        return call

    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda path: counted("read", read_bytes)(path) if path == photo
                        else read_bytes(path))  # fmt: skip
    monkeypatch.setattr(imageio, "check_size", counted("check_size", imageio.check_size))
    monkeypatch.setattr(imageio, "_jpeg_data_short", counted("jpeg scan", imageio._jpeg_data_short))
    monkeypatch.setattr(torch, "from_numpy", lambda array: pytest.fail("a tensor was made"))
    monkeypatch.setattr(OnnxPoseModel, "run", lambda self, x: pytest.fail("the torch entry was used"))
    result = estimator.estimate(photo)
    assert counts == {"read": 1, "check_size": 1, "jpeg scan": 1}
    angles = [[face.yaw, face.pitch, face.roll] for face in result.faces]
    np.testing.assert_allclose(angles, through_torch, atol=1e-6)
    counts.update(dict.fromkeys(counts, 0))
    _, _, served = inference.estimate_upload(str(photo), "fsanet_fusion.300w_lp", "blazeface_scan", None)
    assert counts == {"read": 1, "check_size": 1, "jpeg scan": 1}
    np.testing.assert_allclose([[f.yaw, f.pitch, f.roll] for f in served.faces], angles, atol=1e-6)


def test_face_cap_keeps_the_best_and_says_so(model):
    boxes = [(10.0 + 60 * i, 10.0, 60.0 + 60 * i, 70.0) for i in range(5)]
    estimator = PoseEstimator(model, FixedDetector(boxes), device="cpu", max_faces=2)
    result = estimator.estimate(np.full((100, 400, 3), 90, np.uint8))
    assert [f.box for f in result.faces] == boxes[:2]
    assert result.truncated and result.num_detected == 5 and "2 best of 5" in result.message


def test_no_face_is_an_empty_list_with_a_message(estimator):
    result = estimator.estimate(np.full((240, 320, 3), 127, np.uint8))
    assert result.faces == [] and result.message == "no face found"
    assert to_json(result, "blank.png") == {"image": "blank.png", "faces": [], "message": "no face found"}


def test_large_images_are_downsized_for_detection_and_boxes_mapped_back(model):
    detector = FixedDetector([(100.0, 50.0, 300.0, 250.0)])
    estimator = PoseEstimator(model, detector, device="cpu", detect_max_side=500)
    result = estimator.estimate(np.full((1000, 2000, 3), 60, np.uint8))
    assert detector.seen == [(250, 500, 3)]
    assert result.faces[0].box == pytest.approx((400.0, 200.0, 1200.0, 1000.0))


def test_every_input_type_gives_the_same_poses(estimator):
    array = skimage.data.astronaut()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    results = [estimator.estimate(s) for s in (array, Image.fromarray(array), buffer.getvalue())]
    assert len({tuple(round(v, 3) for v in (r.faces[0].yaw, r.faces[0].roll)) for r in results}) == 1


def test_estimate_caches_named_estimators_and_serialises(monkeypatch):
    require_shared(OFFICIAL)
    first = estimate(skimage.data.astronaut())
    payload = to_json(first, "astronaut.png")
    assert payload["image"] == "astronaut.png" and len(payload["faces"]) == 1
    assert set(payload["faces"][0]) == {"box", "score", "yaw", "pitch", "roll", "model"}
    assert len(payload["faces"][0]["box"]) == 4
    from fsanet.pipeline import estimate as pipeline

    assert pipeline._cached_estimator("fsanet_fusion.300w_lp", "mtcnn") is pipeline._cached_estimator(
        "fsanet_fusion.300w_lp", "mtcnn"
    )


def test_smoother_averages_matched_faces_only():
    def result(yaw, box):
        faces = [pipeline_face(yaw, box)]
        return PoseResult(faces, (100, 100), 1)

    def pipeline_face(yaw, box):
        from fsanet.pipeline.estimate import FacePose

        return FacePose(box, 1.0, yaw, 0.0, 0.0, "m")

    smoother = PoseSmoother(alpha=0.25)
    smoother(result(40.0, (10, 10, 50, 50)))
    assert smoother(result(0.0, (12, 10, 52, 50))).faces[0].yaw == pytest.approx(30.0)
    assert smoother(result(0.0, (60, 60, 90, 90))).faces[0].yaw == 0.0  # a different face: no history


def test_video_loop_stops_at_the_frame_cap_and_at_a_refused_frame(estimator, tmp_path):
    from fsanet.errors import InvalidImageError
    from fsanet.pipeline.video import estimate_video

    video = two_astronauts_clip(tmp_path / "two.mp4", frames=4)
    seen = []
    assert estimate_video(video, estimator, seen.append, max_frames=2).estimated == 2
    assert [frame.index for frame in seen] == [0, 1]
    assert all(len(frame.result.faces) == 2 and frame.rgb.shape == (256, 512, 3) for frame in seen)

    def refuse_the_second(rgb: np.ndarray) -> None:
        if len(seen) == 1:
            raise InvalidImageError("frame too large")

    seen.clear()
    with pytest.raises(InvalidImageError, match="frame too large"):
        estimate_video(video, estimator, seen.append, check_frame=refuse_the_second)
    assert [frame.index for frame in seen] == [0]


def test_a_video_damaged_in_the_middle_gives_its_other_frames_and_counts_the_lost_ones(estimator, tmp_path):
    from fsanet.pipeline.video import estimate_video
    from tests.videos import damaged_clip

    video = damaged_clip(tmp_path / "clip.mp4", frames=30, damaged=range(8, 12))
    seen = []
    run = estimate_video(video, estimator, seen.append, name="holiday.mp4")
    assert (run.estimated, run.unreadable) == (26, 4)
    assert [frame.index for frame in seen] == list(range(26)), "the frames after the damage are read too"
    assert (
        run.problem
        == "holiday.mp4 is damaged: 4 of its 30 frames could not be decoded (the other 26 were estimated)"
    )
    intact = estimate_video(two_astronauts_clip(tmp_path / "two.mp4"), estimator, lambda frame: None)
    assert (intact.estimated, intact.unreadable, intact.problem) == (3, 0, None)


def test_a_frame_whose_pixels_cannot_be_converted_counts_as_unreadable(estimator, tmp_path, monkeypatch):
    from fsanet.pipeline import video as video_module

    convert, calls = video_module._upright, []

    def fails_on_the_second(frame):
        calls.append(frame)
        if len(calls) == 2:
            raise ValueError("no conversion from this pixel format")
        return convert(frame)

    monkeypatch.setattr(video_module, "_upright", fails_on_the_second)
    clip = two_astronauts_clip(tmp_path / "two.mp4", frames=4)
    run = video_module.estimate_video(clip, estimator, lambda frame: None, name="two.mp4")
    assert (run.estimated, run.unreadable) == (3, 1)


def test_a_video_whose_every_frame_is_damaged_is_refused(estimator, tmp_path):
    from fsanet.errors import InvalidImageError
    from fsanet.pipeline.video import estimate_video
    from tests.videos import damaged_clip

    video = damaged_clip(tmp_path / "clip.mp4", frames=5, damaged=range(5))
    with pytest.raises(
        InvalidImageError, match=r"^clip.mp4 has no readable frame \(5 could not be decoded\)$"
    ):
        estimate_video(video, estimator, lambda frame: None, name="clip.mp4")


def test_video_frames_are_turned_upright_by_the_display_matrix(estimator, tmp_path):
    """Phones store portrait clips sideways with a rotation in the track header (tkhd matrix)."""
    import struct

    from fsanet.pipeline.video import H264Writer, estimate_video

    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, :32] = (255, 0, 0)  # left half red
    video = tmp_path / "portrait.mp4"
    with H264Writer(video, 10.0) as writer:
        writer.write(frame)
    data = bytearray(video.read_bytes())
    matrix = data.find(b"tkhd") + 4 + 40  # version 0: the 3x3 matrix follows 40 bytes of fields
    data[matrix : matrix + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)  # 90° clockwise
    video.write_bytes(data)
    seen = []
    estimate_video(video, estimator, seen.append)
    upright = seen[0].rgb
    assert upright.shape == (64, 32, 3)
    assert upright[2, 16, 0] > 200 and upright[-3, 16, 0] < 50, "the red left half is now the top"


def test_detector_names_are_checked():
    from fsanet.errors import FSANetError

    with pytest.raises(FSANetError, match="unknown detector"):
        create_detector("yolo")
