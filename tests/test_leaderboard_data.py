"""Importers and the canonical dataset format, on the real samples in ../shared/data."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import scipy.io
from scipy.spatial.transform import Rotation

from leaderboard.protocol.data import (
    DatasetUnavailableError,
    iter_batches,
    load_benchmark_data,
    write_dataset,
)
from leaderboard.protocol.importers import biwi_angles, prepare_aflw2000, prepare_biwi, prepare_npz
from tests.conftest import DATA, require_shared

AFLW = DATA / "aflw2000-sample16"
BIWI = DATA / "biwi-sample1" / "hpdb"


def _rows(path):
    data = load_benchmark_data(path)
    ids, faces, labels = zip(*iter_batches(data.dataset, 5), strict=True)
    return data, sum(ids, []), np.concatenate(faces), np.concatenate(labels)


@pytest.fixture(scope="module")
def aflw_dataset(tmp_path_factory):
    require_shared(AFLW)
    return prepare_aflw2000(AFLW, tmp_path_factory.mktemp("aflw") / "aflw2000")


def test_aflw2000_labels_and_crops_match_the_mat_files(aflw_dataset):
    data, ids, faces, labels = _rows(aflw_dataset)
    mats = sorted(AFLW.glob("*.mat"))
    assert ids == [p.stem for p in mats]
    assert data.meta["n"] == len(mats) and data.revision.startswith("sha256:")
    for mat_path, face, label in zip(mats, faces, labels, strict=True):
        mat = scipy.io.loadmat(str(mat_path))
        pitch, yaw, roll = mat["Pose_Para"][0, :3] * 180 / np.pi
        np.testing.assert_allclose(label, [yaw, pitch, roll], atol=1e-4)
        # The authors' crop, written out from TYY_create_db_type1.py: positive landmarks, truncated box,
        # margin 0.6 of the box size, exclusive end, cv2.resize on the BGR image.
        pts = mat["pt2d"]
        keep = pts[0] > 0 if (pts[0] > 0).sum() <= (pts[1] > 0).sum() else pts[1] > 0
        x0, x1 = int(pts[0][keep].min()), int(pts[0][keep].max())
        y0, y1 = int(pts[1][keep].min()), int(pts[1][keep].max())
        w, h = x1 - x0, y1 - y0
        bgr = cv2.imread(str(mat_path.with_suffix(".jpg")))
        H, W = bgr.shape[:2]
        crop = bgr[
            max(int(y0 - 0.6 * h), 0) : min(int(y1 + 0.6 * h), H - 1),
            max(int(x0 - 0.6 * w), 0) : min(int(x1 + 0.6 * w), W - 1),
        ]
        np.testing.assert_array_equal(face, cv2.resize(crop, (64, 64))[..., ::-1])


def test_existing_dataset_is_not_overwritten(aflw_dataset):
    before = load_benchmark_data(aflw_dataset).revision
    with pytest.raises(FileExistsError):
        prepare_aflw2000(AFLW, aflw_dataset)
    assert load_benchmark_data(aflw_dataset).revision == before


def test_biwi_label_conversion_matches_the_pose_file():
    pose = require_shared(BIWI / "01" / "frame_00003_pose.txt")
    yaw, pitch, roll = biwi_angles(pose)
    np.testing.assert_allclose([yaw, pitch, roll], [3.29, 7.61, -1.57], atol=0.01)
    # Independently: BIWI's matrix transposed is Rz(-roll) Ry(-yaw) Rx(pitch).
    matrix = np.loadtxt(pose, max_rows=3)
    z, y, x = Rotation.from_matrix(matrix.T).as_euler("ZYX", degrees=True)
    np.testing.assert_allclose([yaw, pitch, roll], [-y, x, -z], atol=1e-4)


def _fixed_detector(box, score=0.99):
    return lambda image: [SimpleNamespace(box=box, score=score)]


@pytest.mark.parametrize("benchmark", ["biwi", "biwi_70_30"])
def test_prepare_biwi_crops_the_detector_box_with_margin_04(tmp_path, benchmark):
    require_shared(BIWI)
    box = [250.0, 120.0, 390.0, 300.0]
    out = prepare_biwi(BIWI, tmp_path / benchmark, benchmark, _fixed_detector(box), test_sequences=[1])
    data, ids, faces, labels = _rows(out)
    assert ids == ["01/frame_00003"]
    np.testing.assert_allclose(labels[0], biwi_angles(BIWI / "01" / "frame_00003_pose.txt"), atol=1e-4)
    bgr = cv2.imread(str(BIWI / "01" / "frame_00003_rgb.png"))
    x, y, w, h = 250, 120, 140, 180  # inclusive end, as TYY_create_db_biwi.py
    crop = bgr[int(y - 0.4 * h) : int(y + h + 0.4 * h) + 1, int(x - 0.4 * w) : int(x + w + 0.4 * w) + 1]
    np.testing.assert_array_equal(faces[0], cv2.resize(crop, (64, 64))[..., ::-1])
    assert data.meta["benchmark"] == benchmark and data.meta["skipped_frames"] == 0


def test_prepare_biwi_drops_frames_without_a_confident_face(tmp_path):
    require_shared(BIWI)
    with pytest.raises(ValueError, match="no samples"):
        prepare_biwi(BIWI, tmp_path / "b", "biwi", _fixed_detector([250, 120, 390, 300], score=0.5))
    assert not (tmp_path / "b").exists()


def test_prepare_npz_converts_bgr_and_keeps_labels(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)
    poses = rng.uniform(-120, 120, (7, 3))
    np.savez(tmp_path / "AFLW2000.npz", image=images, pose=poses, img_size=64)
    _, ids, faces, labels = _rows(prepare_npz(tmp_path / "AFLW2000.npz", tmp_path / "out", "aflw2000"))
    assert len(ids) == 7 and len(set(ids)) == 7
    np.testing.assert_array_equal(faces, images[..., ::-1])
    np.testing.assert_allclose(labels, poses, atol=1e-9)


def test_prepare_npz_refuses_pickled_arrays(tmp_path):
    np.savez(tmp_path / "evil.npz", image=np.array([object()], dtype=object), pose=np.zeros((1, 3)))
    with pytest.raises(ValueError, match="pickle"):
        prepare_npz(tmp_path / "evil.npz", tmp_path / "out", "aflw2000")
    assert not (tmp_path / "out").exists()


def test_unloadable_sources_are_reported(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    for source in (tmp_path / "junk", tmp_path / "missing" / "x", "someone/absent-dataset"):
        with pytest.raises(DatasetUnavailableError):
            load_benchmark_data(source)
    with pytest.raises(ValueError, match="no samples"):
        write_dataset(iter(()), tmp_path / "empty", {})


def test_prepare_biwi_with_the_projects_mtcnn(tmp_path):
    require_shared(BIWI)
    from leaderboard.protocol.importers import default_detector

    detect = default_detector()
    image = cv2.imread(str(BIWI / "01" / "frame_00003_rgb.png"))[..., ::-1].copy()
    (face,) = [f for f in detect(image) if f.score > 0.9]
    raw_boxes = np.asarray(detect.__self__.net.detect(image)[0], np.float64)
    np.testing.assert_allclose(face.box, raw_boxes[0], atol=1e-3)  # not remapped
    _, ids, faces, labels = _rows(prepare_biwi(BIWI, tmp_path / "biwi", "biwi", detect))
    assert ids == ["01/frame_00003"]
    x1, y1, x2, y2 = face.box  # the raw MTCNN box, enlarged by 0.4 with an inclusive end
    w, h = x2 - x1, y2 - y1
    crop = image[
        max(int(y1 - 0.4 * h), 0) : int(y2 + 0.4 * h) + 1, max(int(x1 - 0.4 * w), 0) : int(x2 + 0.4 * w) + 1
    ]
    np.testing.assert_array_equal(faces[0], cv2.resize(crop, (64, 64)))
