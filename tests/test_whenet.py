"""WHENet is the authors' model: the converted Keras file against their outputs; where its weights come from.

``../shared/reference/whenet_reference.npz`` holds the original Keras model's bin logits and angles on 32
synthetic 224x224 RGB images; the tolerances are the issue's (logits 1e-4, angles 1e-3 degrees).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fsanet
from fsanet.data.preprocess import to_batch
from fsanet.data.recipes import DEMO, crop_face, finish_face
from fsanet.errors import InvalidWeightsError, WeightsUnavailableError
from fsanet.models.families.whenet import convert_whenet_layers, read_keras_layers
from fsanet.models.registry import recipe_of
from fsanet.utils.downloads import ChecksumMismatchError
from tests.conftest import DATA, REFERENCE, WHENET_OFFICIAL, require_shared

NAME = "whenet.300w_lp_panoptic"
LOGIT_TOL, ANGLE_TOL = 1e-4, 1e-3


@pytest.fixture(scope="module")
def reference():
    return np.load(require_shared(REFERENCE / "whenet_reference.npz"))


@pytest.fixture(scope="module")
def model():
    require_shared(WHENET_OFFICIAL / "WHENet.h5")
    return fsanet.create_model(NAME, pretrained=True)


def _inputs(model, images: np.ndarray) -> torch.Tensor:
    """The uint8 images through the model's own recipe (a box on the whole 224x224 image)."""
    recipe = recipe_of(model.config)
    height, width = images.shape[1:3]
    return to_batch(
        [finish_face(crop_face(i, (0, 0, width, height), recipe, DEMO), recipe, DEMO) for i in images]
    )


def test_logits_and_angles_match_the_keras_original(model, reference):
    x = _inputs(model, reference["inputs_rgb_uint8"])
    np.testing.assert_array_equal(x.permute(0, 2, 3, 1).numpy(), reference["inputs_rgb_uint8"])  # untouched
    with torch.no_grad():
        logits = model.logits(x)
        angles = model(x).numpy()
    for ours, key in zip(logits, ("yaw_logits", "pitch_logits", "roll_logits"), strict=True):
        assert np.abs(ours.numpy() - reference[key]).max() <= LOGIT_TOL, key
    assert np.abs(angles - reference["angles"]).max() <= ANGLE_TOL


def test_optimised_and_reloaded_copies_give_the_same_angles(model, reference, tmp_path):
    x = _inputs(model, reference["inputs_rgb_uint8"][:8])
    fast = fsanet.optimize_for_inference(model)
    model.save_pretrained(tmp_path / "whenet")
    reloaded = fsanet.load_model(str(tmp_path / "whenet"))
    assert not reloaded.training and reloaded.input_size == 224
    with torch.no_grad():
        for other in (fast, reloaded):
            assert np.abs(other(x).numpy() - reference["angles"][:8]).max() <= ANGLE_TOL


def test_model_states_its_training_data_and_recipe(model):
    assert model.config["trained_on"] == "300W-LP + CMU Panoptic" and model.config["protocol"] == "protocol 1"
    assert recipe_of(model.config)["box"] == "whenet" and model.input_size == 224
    assert NAME in fsanet.list_models(pretrained=True)


@pytest.fixture(scope="module")
def layers():
    return read_keras_layers(require_shared(WHENET_OFFICIAL / "WHENet.h5"))


def test_converter_uses_every_tensor_exactly_once(layers):
    _, state = convert_whenet_layers(layers)
    stored = sum(array.size for _, weights in layers for array in weights.values())
    converted = sum(t.numel() for k, t in state.items() if not k.endswith("num_batches_tracked"))
    assert stored == converted


def test_converter_fails_on_a_tensor_left_over(layers):
    extra = ("conv2d_99", {"kernel": np.zeros((1, 1, 8, 8), np.float32)})
    with pytest.raises(InvalidWeightsError, match="left over"):
        convert_whenet_layers([*layers[:10], extra, *layers[10:]])
    with_bias = [
        (name, {**w, "bias": np.zeros(w["kernel"].shape[-1])}) if name == "conv2d_1" else (name, w)
        for name, w in layers
    ]
    with pytest.raises(InvalidWeightsError, match="conv_stem.bias"):
        convert_whenet_layers(with_bias)


def test_converter_fails_on_a_tensor_reused(layers):
    with pytest.raises(InvalidWeightsError, match="reused"):
        convert_whenet_layers([*layers[:5], layers[3], *layers[6:]])


def test_converter_fails_on_a_layer_out_of_place(layers):
    swapped = [layers[1], layers[0], *layers[2:]]  # a BatchNorm where the stem conv belongs
    with pytest.raises(InvalidWeightsError, match="not a conv2d layer"):
        convert_whenet_layers(swapped)


def test_mirror_file_with_another_sha256_is_refused(tmp_path, monkeypatch):
    (tmp_path / "WHENet.h5").write_bytes(b"not the authors' file")
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WHENET_OFFICIAL_MIRROR", str(tmp_path))
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        fsanet.create_model(NAME, pretrained=True)
    assert not (tmp_path / "cache" / NAME).exists()


def test_missing_weights_name_the_mirror_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WHENET_OFFICIAL_MIRROR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsUnavailableError, match="WHENET_OFFICIAL_MIRROR"):
        fsanet.create_model(NAME, pretrained=True)


def test_converted_once_then_read_from_the_cache(tmp_path, monkeypatch):
    require_shared(WHENET_OFFICIAL / "WHENet.h5")
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "cache"))
    first = fsanet.create_model(NAME, pretrained=True)
    assert (tmp_path / "cache" / NAME / "model.safetensors").is_file()
    monkeypatch.setenv("WHENET_OFFICIAL_MIRROR", str(tmp_path / "nowhere"))  # the cache alone must do
    second = fsanet.create_model(NAME, pretrained=True)
    assert fsanet.model_identity(first) == fsanet.model_identity(second)


def test_whenet_on_the_aflw2000_sample_through_the_leaderboard(tmp_path):
    """WHENet's MAE on the 16 samples (reported, not asserted tight) and the label signs it finds."""
    require_shared(WHENET_OFFICIAL / "WHENet.h5")
    from leaderboard.protocol.importers import prepare_aflw2000
    from leaderboard.service.evaluation import evaluate
    from leaderboard.storage.results import ResultsStore

    store = ResultsStore(tmp_path / "board", repo="")
    dataset = prepare_aflw2000(require_shared(DATA / "aflw2000-sample16"), tmp_path / "aflw2000")
    result = evaluate(NAME, dataset, store, robustness=False, progress=False)
    row = result.row
    print(
        f"WHENet on the AFLW2000 sample: MAE {row.mae:.2f} (yaw {row.mae_yaw:.2f}, "
        f"pitch {row.mae_pitch:.2f}, roll {row.mae_roll:.2f}), n={row.n}"
    )
    assert row.n == 16 and row.mae < 10  # the paper: 5.42 on all of AFLW2000
    assert row.input_size == 224 and row.method == "WHENet" and row.gflops > 0.3
    predictions = store.predictions(result.key)
    for axis in ("yaw", "pitch", "roll"):
        clear = predictions[f"true_{axis}"].abs() > 10  # signs are meaningful away from zero
        agree = np.sign(predictions.loc[clear, f"pred_{axis}"]) == np.sign(
            predictions.loc[clear, f"true_{axis}"]
        )
        assert clear.sum() > 0 and agree.all(), axis


def test_whenet_in_the_photo_pipeline_and_predict_command(tmp_path, capsys):
    """``python -m fsanet predict --model whenet...`` on a labelled AFLW2000 photo: close to its labels."""
    require_shared(WHENET_OFFICIAL / "WHENet.h5")
    import json

    import scipy.io

    from fsanet.cli.main import main

    jpg = require_shared(DATA / "aflw2000-sample16" / "image00050.jpg")
    pitch, yaw, roll = np.rad2deg(scipy.io.loadmat(jpg.with_suffix(".mat"))["Pose_Para"][0, :3])
    assert main(["predict", str(jpg), "--model", NAME, "--json"]) == 0
    (face,) = json.loads(capsys.readouterr().out)["faces"]
    assert face["model"] == NAME
    found = np.array([face["yaw"], face["pitch"], face["roll"]])
    assert np.abs(found - [yaw, pitch, roll]).max() < 15, (found, (yaw, pitch, roll))


def test_convert_command_recognises_the_whenet_file(tmp_path, capsys):
    from fsanet.cli.main import main

    assert main(["convert", str(require_shared(WHENET_OFFICIAL / "WHENet.h5")), str(tmp_path / "out")]) == 0
    assert '"architecture": "whenet"' in capsys.readouterr().out
    assert fsanet.load_model(str(tmp_path / "out")).input_size == 224


def test_whenet_in_the_spaces_model_picker_and_photo_endpoint():
    require_shared(WHENET_OFFICIAL / "WHENet.h5")
    from space import choices, inference

    labels = dict((name, label) for label, name in choices.model_choices())
    assert labels[NAME].startswith("WHENet") and "CMU Panoptic" in labels[NAME]
    photo = require_shared(DATA / "aflw2000-sample16" / "image00050.jpg")
    annotated, payload = inference.predict(str(photo), NAME, "mtcnn")
    assert annotated.endswith(".jpg") and len(payload["faces"]) == 1
    assert payload["faces"][0]["model"] == NAME


def test_whenet_exports_to_onnx_with_a_dynamic_batch(reference, tmp_path):
    """``python -m fsanet export whenet... --format onnx``: the file alone, in ONNX Runtime, gives the
    Keras original's angles at batch 1 and batch 5."""
    require_shared(WHENET_OFFICIAL / "WHENet.h5")
    import onnxruntime as ort

    from fsanet.cli.main import main

    out = tmp_path / "whenet.onnx"
    assert main(["export", NAME, "--format", "onnx", "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    images = reference["inputs_rgb_uint8"].transpose(0, 3, 1, 2).astype(np.float32)
    for batch in (images[:1], images[1:6]):
        (angles,) = session.run(None, {"input": batch})
        expected = reference["angles"][: len(batch)] if len(batch) == 1 else reference["angles"][1:6]
        assert np.abs(angles - expected).max() <= ANGLE_TOL
