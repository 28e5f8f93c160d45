"""Metrics, the runner and the results store, on the AFLW2000 sample and the authors' weights."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import scipy.io
import torch

import fsanet
from fsanet.data.geometry import geodesic_distance, rotation_matrix
from leaderboard.display.columns import board_frame
from leaderboard.display.downloads import format_table
from leaderboard.protocol.data import write_dataset
from leaderboard.protocol.importers import prepare_aflw2000
from leaderboard.protocol.metrics import (
    cumulative_curve,
    keep_mask,
    mae_by_yaw_bin,
    summarize,
    transform_faces,
    transform_labels,
)
from leaderboard.protocol.runner import predict
from leaderboard.service.evaluation import evaluate
from leaderboard.storage.results import ResultsStore
from tests.conftest import DATA, require_shared

AFLW = DATA / "aflw2000-sample16"
MODEL = "fsanet_caps_1x1.300w_lp"


@pytest.fixture(scope="module")
def aflw(tmp_path_factory):
    require_shared(AFLW)
    require_shared(DATA.parent / "fsanet-official")
    return prepare_aflw2000(AFLW, tmp_path_factory.mktemp("aflw") / "aflw2000")


@pytest.fixture(scope="module")
def model():
    require_shared(DATA.parent / "fsanet-official")
    return fsanet.load_model(MODEL)


def _hand_mae(model) -> float:
    """The authors' test recipe written out: landmark box crop, raw pixels, MAE against the .mat angles."""
    faces, labels = [], []
    for mat_path in sorted(AFLW.glob("*.mat")):
        mat = scipy.io.loadmat(str(mat_path))
        pts = mat["pt2d"]
        keep = pts[0] > 0 if (pts[0] > 0).sum() <= (pts[1] > 0).sum() else pts[1] > 0
        x0, x1 = int(pts[0][keep].min()), int(pts[0][keep].max())
        y0, y1 = int(pts[1][keep].min()), int(pts[1][keep].max())
        w, h = x1 - x0, y1 - y0
        image = cv2.imread(str(mat_path.with_suffix(".jpg")))[..., ::-1]
        H, W = image.shape[:2]
        crop = image[
            max(int(y0 - 0.6 * h), 0) : min(int(y1 + 0.6 * h), H - 1),
            max(int(x0 - 0.6 * w), 0) : min(int(x1 + 0.6 * w), W - 1),
        ]
        faces.append(cv2.resize(crop, (64, 64)))
        pitch, yaw, roll = np.degrees(mat["Pose_Para"][0, :3])
        labels.append([yaw, pitch, roll])
    x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        pred = model(x).double().numpy()
    labels = np.array(labels)
    kept = np.all(np.abs(labels) <= 99, axis=1)
    return float(np.abs(pred - labels)[kept].mean())


def test_evaluate_matches_the_hand_computed_mae_and_is_stored_once(aflw, model, tmp_path):
    store = ResultsStore(tmp_path / "board", repo="")
    first = evaluate(MODEL, aflw, store, progress=False, robustness=False)
    row = first.row
    assert row.mae == pytest.approx(_hand_mae(model), abs=1e-4)
    assert row.n == 16 and row.n_dropped == 0
    identity = fsanet.model_identity(model)
    assert row.identity == identity and first.key.identity == identity
    assert row.namespace == "official" and first.path.parent.name == "official"  # a registry name
    predictions = store.predictions(first.key)
    assert len(predictions) == 16 and predictions["mae"].mean() == pytest.approx(row.mae)

    mtime = first.path.stat().st_mtime_ns
    again = evaluate(MODEL, aflw, store, progress=False, robustness=False)
    assert again.cached and again.path == first.path and first.path.stat().st_mtime_ns == mtime
    forced = evaluate(MODEL, aflw, store, force=True, progress=False, robustness=False)
    assert not forced.cached and forced.row.mae == row.mae
    table = board_frame(store.snapshot())
    assert len(table) == 1
    assert table["params"][0] == sum(p.numel() for p in model.parameters())  # the model-size column


def test_official_filter_drops_and_counts_out_of_range_samples(model, tmp_path):
    rng = np.random.default_rng(1)
    labels = [[10, 5, 0], [120, 0, 0], [0, -99, 99], [0, 0, -99.5]]
    rows = [
        {
            "sample_id": f"s{i}",
            "image": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
            "box": None,
            "yaw": float(y),
            "pitch": float(p),
            "roll": float(r),
            "source_revision": "synthetic",
        }
        for i, (y, p, r) in enumerate(labels)
    ]
    path = write_dataset(iter(rows), tmp_path / "aflw2000", {"benchmark": "aflw2000"})
    result = evaluate(
        MODEL, path, ResultsStore(tmp_path / "board", repo=""), progress=False, robustness=False
    )
    scored = result.row
    assert (scored.n, scored.n_dropped) == (2, 2)
    faces = np.stack([r["image"] for r in rows])
    # evaluate() runs the inference-optimised graph (parity-tested to 1e-4 deg): compare like with like.
    pred = predict(fsanet.optimize_for_inference(model), faces, torch.device("cpu"))
    assert scored.mae == pytest.approx(np.abs(pred - np.array(labels))[[0, 2]].mean(), abs=1e-9)


def test_corrupt_and_foreign_result_files_are_reported_and_skipped(aflw, tmp_path):
    store = ResultsStore(tmp_path / "board", repo="")
    evaluate(MODEL, aflw, store, progress=False, robustness=False)
    folder = store.results_dir / "community"
    folder.mkdir()
    (folder / "broken.json").write_text('{"config": {"model_name": ')
    (folder / "foreign.json").write_text(json.dumps({"config": {"model_name": "x"}, "results": {}}))
    (folder / "binary.json").write_bytes(b"\xff\xfe\x00")
    snapshot = store.snapshot()
    assert len(snapshot.rows) == 1 and len(snapshot.problems) == 3
    table = board_frame(snapshot)
    assert list(table["model"]) == [MODEL]
    for fmt in ("csv", "json", "markdown"):
        assert MODEL in format_table(table, fmt)


def test_summary_pieces():
    labels = np.array([[0.0, 0, 0], [20, 0, 0], [50, 10, 0], [95, 0, 0]])
    pred = labels + np.array([[1.0, 0, 0], [0, 3, 0], [0, 0, 6], [3, 3, 3]])
    summary = summarize(["a", "b", "c", "d"], pred, labels)
    assert summary["mae_yaw"] == pytest.approx(1.0) and summary["mae"] == pytest.approx(19 / 12)
    assert [w["sample_id"] for w in summary["worst_samples"]][:2] == ["d", "c"]
    bins = {b["bin"]: b for b in mae_by_yaw_bin(np.abs(pred - labels).mean(axis=1), labels)}
    assert (
        bins["0-15"]["n"] == 1 and bins["90-99"]["mae"] == pytest.approx(3.0) and bins["75-90"]["mae"] is None
    )
    curve = cumulative_curve(np.array([0.5, 1.5, 2.5, 10]))
    assert curve[0] == [0.0, 0.0] and curve[1] == [1.0, 0.25] and curve[-1][1] == 1.0
    assert keep_mask(np.array([[99.0, -99, 0], [99.01, 0, 0]])).tolist() == [True, False]
    with pytest.raises(ValueError):
        summarize(["a"], np.zeros((1, 3)), np.full((1, 3), 100.0))


def test_transformed_labels_are_exact_rotations():
    rng = np.random.default_rng(0)
    labels = rng.uniform(-60, 60, (50, 3))
    flat = np.array([[0.0, 0.0, 10.0]])
    np.testing.assert_allclose(transform_labels(flat, 15, False), [[0, 0, -5]], atol=1e-9)  # CCW: roll drops
    np.testing.assert_allclose(transform_labels(labels, 0, True), labels * [-1, 1, -1], atol=1e-9)
    back = transform_labels(transform_labels(labels, 20, False), -20, False)
    np.testing.assert_allclose(back, labels, atol=1e-9)
    # A rigid change of the camera leaves the angle between two poses unchanged.
    other = labels + rng.normal(0, 5, labels.shape)
    before = geodesic_distance(rotation_matrix(*labels.T), rotation_matrix(*other.T))
    a, b = transform_labels(labels, 30, True), transform_labels(other, 30, True)
    np.testing.assert_allclose(
        geodesic_distance(rotation_matrix(*a.T), rotation_matrix(*b.T)), before, atol=1e-6
    )


def test_model_follows_the_transformed_labels(aflw, model):
    from leaderboard.protocol.data import iter_batches, load_benchmark_data

    _, faces, labels = next(iter_batches(load_benchmark_data(aflw).dataset, 64))
    for angle, flip in ((25.0, False), (-25.0, False), (0.0, True)):
        pred = predict(model, transform_faces(faces, angle, flip), torch.device("cpu"))
        against_new = np.abs(pred - transform_labels(labels, angle, flip))[:, [0, 2]].mean()
        against_old = np.abs(pred - labels)[:, [0, 2]].mean()
        assert against_new < against_old, (angle, flip, against_new, against_old)


def test_a_failed_hub_sync_keeps_the_local_result(aflw, tmp_path, caplog):
    store = ResultsStore(tmp_path / "board", repo="someone/results")  # HF_HUB_OFFLINE=1: the upload fails
    result = evaluate(MODEL, aflw, store, progress=False, robustness=False)
    assert result.path.exists() and store.snapshot().rows[0].model_name == MODEL
    assert "could not sync" in caplog.text
