"""6DRepNet and HopeNet are their authors' models: the original code's outputs, reproduced from the original
checkpoint formats through ``python -m fsanet convert``, in torch and in the exported ONNX file.

``../shared/peers`` holds the outputs of the upstream code (6DRepNet at 464b2ba, deep-head-pose at f7bbb99)
on 32 images, with deterministic synthetic weights its README shows how to regenerate bit for bit from the key
lists. Each test regenerates them (every tensor checked against its published sha256), writes them as the
authors' files are written (6DRepNet: a plain state dict ``.pth`` and the ``{'model_state_dict': ...}``
wrapping; HopeNet: a legacy-format ``.pkl`` without ``num_batches_tracked``), converts them with the CLI,
loads the result with :func:`fsanet.load_model` and compares every output the README lists. Tolerances are the
README's for a float32 port: angles 1e-3 degrees, rotation entries 1e-5, logits 1e-4.

About 2 minutes on the project's 2-core machine, most of it 6DRepNet's forward passes (32 images at
224x224 through 39M parameters, twice) and its ONNX export.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch
from PIL import Image

import fsanet
from fsanet.cli.main import main
from fsanet.data.recipes import crop_face
from fsanet.errors import InvalidWeightsError, WeightsUnavailableError
from fsanet.models.catalogue import converter_for, family, model_entry, recipe_of
from fsanet.models.family import registered
from fsanet.runtime.onnx_engine import export_onnx
from fsanet.utils.downloads import ChecksumMismatchError
from tests.conftest import DATA, ROOT, SHARED, require_shared

PEERS = SHARED / "peers"
ANGLE_TOL, ROTATION_TOL, LOGIT_TOL = 1e-3, 1e-5, 1e-4
# The README's recipe: per-rank gains of the fan-in scaled weights ("Recipe adjustments").
GAINS = {"sixdrepnet": {4: math.sqrt(2.0), 2: 1.0}, "hopenet": {4: 1.0, 2: 4.0}}


# ---------------------------------------------------------------------------------- the synthetic weights
def synthetic_tensor(key: str, shape: list[int], dtype: torch.dtype, gains: dict[int, float]) -> torch.Tensor:
    """The README's weight recipe, tensor by tensor (one seeded CPU generator per key)."""
    size = tuple(shape)
    if not dtype.is_floating_point:
        return torch.zeros(size, dtype=dtype)
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("running_var"):
        return 1.0 + 0.5 * torch.rand(size, generator=generator)
    if key.endswith("running_mean"):
        return 0.1 * torch.randn(size, generator=generator)
    if key.endswith(".weight") and len(size) == 1:
        return 1.0 + 0.1 * torch.randn(size, generator=generator)
    if len(size) >= 2:
        fan_in = math.prod(size[1:])
        return torch.randn(size, generator=generator) * (gains[len(size)] / math.sqrt(max(1, fan_in)))
    return 0.01 * torch.randn(size, generator=generator)


def synthetic_state(model: str) -> OrderedDict[str, torch.Tensor]:
    """The original ``state_dict()`` of ``model``, regenerated and checked tensor by tensor."""
    keys = json.loads(require_shared(PEERS / f"{model}_keys.json").read_text())
    state = OrderedDict(
        (key, synthetic_tensor(key, shape, getattr(torch, dtype), GAINS[model])) for key, shape, dtype in keys
    )
    published = dict(json.loads((PEERS / f"{model}_weights_sha256.json").read_text()))
    wrong = [
        key for key, t in state.items() if hashlib.sha256(t.numpy().tobytes()).hexdigest() != published[key]
    ]
    assert wrong == [], f"the recipe does not regenerate {len(wrong)} tensors, e.g. {wrong[:3]}"
    return state


def convert_with_cli(path: Path, out: Path) -> fsanet.PoseModel:
    """``python -m fsanet convert FILE OUT`` as a user runs it, then :func:`fsanet.load_model` of OUT."""
    result = subprocess.run(
        [sys.executable, "-m", "fsanet", "convert", str(path), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return fsanet.load_model(str(out))


def onnx_angles(model: fsanet.PoseModel, x: np.ndarray, path: Path) -> np.ndarray:
    """The model exported as ``python -m fsanet export`` writes it, run in a bare ONNX Runtime session."""
    import onnxruntime as ort

    export_onnx(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.transpose(0, 3, 1, 2).astype(np.float32)})[0]


def nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module")
def sixdrepnet_files(tmp_path_factory):
    state = synthetic_state("sixdrepnet")
    folder = tmp_path_factory.mktemp("sixdrepnet")
    torch.save(state, folder / "6DRepNet_300W_LP_AFLW2000.pth")
    torch.save({"model_state_dict": state}, folder / "wrapped.pth")
    return folder


@pytest.fixture(scope="module")
def hopenet_files(tmp_path_factory):
    state = synthetic_state("hopenet")
    folder = tmp_path_factory.mktemp("hopenet")
    without_counters = OrderedDict((k, v) for k, v in state.items() if not k.endswith("num_batches_tracked"))
    torch.save(without_counters, folder / "hopenet_alpha1.pkl", _use_new_zipfile_serialization=False)
    torch.save(state, folder / "with_counters.pkl")  # a file saved by a newer torch: zip format, counters
    return folder


# ------------------------------------------------------------------------------------------- 6DRepNet
def test_sixdrepnet_equals_the_original_code(sixdrepnet_files, tmp_path):
    reference = np.load(require_shared(PEERS / "sixdrepnet_reference.npz"))
    model = convert_with_cli(sixdrepnet_files / "6DRepNet_300W_LP_AFLW2000.pth", tmp_path / "sixdrepnet")
    assert model.config["architecture"] == "sixdrepnet" and not model.training and model.input_size == 224
    # demo.py / regressor.py: Resize(224) + CenterCrop(224), the identity here; test.py: Resize(256) +
    # CenterCrop(224), whose crops the reference holds (test256_images).
    for prefix, images in (("", "images"), ("test256_", "test256_images")):
        with torch.no_grad():
            ours = {k: v.numpy() for k, v in model.forward_intermediates(nchw(reference[images])).items()}
        assert np.abs(ours["raw6d"] - reference[f"{prefix}raw6d"]).max() <= ROTATION_TOL
        assert (
            np.abs(ours["rotation_matrices"] - reference[f"{prefix}rotation_matrices"]).max() <= ROTATION_TOL
        )
        assert np.abs(ours["euler_pyr"] - reference[f"{prefix}euler_pyr_deg"]).max() <= ANGLE_TOL
        for column, angle in enumerate(("yaw", "pitch", "roll")):  # [pitch, yaw, roll] -> [yaw, pitch, roll]
            assert np.abs(ours["angles"][:, column] - reference[f"{prefix}{angle}_deg"]).max() <= ANGLE_TOL
    few = reference["images"][:4]  # the public call: uint8 NHWC, as users pass crops
    with torch.no_grad():
        assert np.abs(model(few).numpy() - reference["euler_pyr_deg"][:4][:, [1, 0, 2]]).max() <= ANGLE_TOL
    onnx = onnx_angles(model, reference["test256_images"][:8], tmp_path / "sixdrepnet.onnx")
    assert np.abs(onnx - reference["test256_euler_pyr_deg"][:8][:, [1, 0, 2]]).max() <= ANGLE_TOL


def test_sixdrepnet_wrapped_checkpoint_is_the_same_model(sixdrepnet_files, tmp_path, capsys):
    """``{'model_state_dict': ...}`` (what test.py and demo.py also accept) converts to the same weights."""
    for name in ("6DRepNet_300W_LP_AFLW2000.pth", "wrapped.pth"):
        assert main(["convert", str(sixdrepnet_files / name), str(tmp_path / name)]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["architecture"] == "sixdrepnet"
    plain, wrapped = (
        fsanet.load_model(str(tmp_path / name)) for name in ("6DRepNet_300W_LP_AFLW2000.pth", "wrapped.pth")
    )
    assert fsanet.model_identity(plain).weights == fsanet.model_identity(wrapped).weights


# -------------------------------------------------------------------------------------------- HopeNet
def test_hopenet_equals_the_original_code(hopenet_files, tmp_path):
    reference = np.load(require_shared(PEERS / "hopenet_reference.npz"))
    model = convert_with_cli(hopenet_files / "hopenet_alpha1.pkl", tmp_path / "hopenet")
    assert model.config["architecture"] == "hopenet" and not model.training and model.input_size == 224
    with torch.no_grad():
        ours = {k: v.numpy() for k, v in model.forward_intermediates(nchw(reference["images"])).items()}
    assert np.abs(ours["logits"] - reference["logits"]).max() <= LOGIT_TOL  # (3, N, 66): yaw, pitch, roll
    assert np.abs(ours["probs"] - reference["probs"]).max() <= LOGIT_TOL
    assert (ours["logits"].argmax(axis=-1) == reference["bin_argmax"]).all()
    assert np.abs(ours["angles"] - reference["angles_ypr_deg"]).max() <= ANGLE_TOL
    for column, angle in enumerate(("yaw", "pitch", "roll")):
        assert np.abs(ours["angles"][:, column] - reference[f"{angle}_deg"]).max() <= ANGLE_TOL
    with torch.no_grad():
        assert (
            np.abs(model(reference["images"][:4]).numpy() - reference["angles_ypr_deg"][:4]).max()
            <= ANGLE_TOL
        )
    onnx = onnx_angles(model, reference["images"][:8], tmp_path / "hopenet.onnx")
    assert np.abs(onnx - reference["angles_ypr_deg"][:8]).max() <= ANGLE_TOL


def test_hopenet_file_with_counters_and_vestigial_layer_is_the_same_model(hopenet_files, tmp_path, capsys):
    """A file with ``num_batches_tracked`` (saved by torch >= 0.4.1) and one without are one model; the
    vestigial ``fc_finetune`` is left out of both."""
    for name in ("hopenet_alpha1.pkl", "with_counters.pkl"):
        assert main(["convert", str(hopenet_files / name), str(tmp_path / name)]) == 0
    capsys.readouterr()
    legacy, current = (
        fsanet.load_model(str(tmp_path / name)) for name in ("hopenet_alpha1.pkl", "with_counters.pkl")
    )
    assert fsanet.model_identity(legacy).weights == fsanet.model_identity(current).weights
    assert not any(key.startswith("fc_finetune") for key in legacy.state_dict())


def test_converters_refuse_what_is_not_their_file(hopenet_files, sixdrepnet_files, tmp_path):
    state = torch.load(sixdrepnet_files / "6DRepNet_300W_LP_AFLW2000.pth", weights_only=True)
    del state["layer3.7.rbr_reparam.bias"]
    torch.save(state, tmp_path / "truncated.pth")
    with pytest.raises(InvalidWeightsError, match=r"missing tensors \['layer3.7.rbr_reparam.bias'\]"):
        converter_for(tmp_path / "truncated.pth").converter.convert(tmp_path / "truncated.pth", None)
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    (tmp_path / "text.pkl").write_text("not a checkpoint")
    for path in (tmp_path / "other.pth", tmp_path / "text.pkl"):
        with pytest.raises(InvalidWeightsError, match="not an original weight file of any family"):
            converter_for(path)
    assert converter_for(hopenet_files / "hopenet_alpha1.pkl").architecture == "hopenet"


# ----------------------------------------------------------------------------------- the authors' crops
def _authors_crop(image: Image.Image, box: tuple[float, ...], resize: int) -> np.ndarray:
    """``datasets.AFLW2000`` (HopeNet's, 6DRepNet's too), ``Resize(resize)``, ``CenterCrop(224)``, in PIL."""
    x_min, y_min, x_max, y_max = box
    x_min -= 0.4 * abs(x_max - x_min)
    y_min -= 0.4 * abs(y_max - y_min)
    x_max += 0.4 * abs(x_max - x_min)
    y_max += 0.12 * abs(y_max - y_min)
    crop = image.crop((int(x_min), int(y_min), int(x_max), int(y_max)))
    width, height = crop.size
    size = (
        (resize, int(resize * height / width)) if width <= height else (int(resize * width / height), resize)
    )
    crop = crop.resize(size, Image.BILINEAR)
    left, top = round((size[0] - 224) / 2), round((size[1] - 224) / 2)
    return np.asarray(crop.crop((left, top, left + 224, top + 224)), np.float64)


@pytest.mark.parametrize(("name", "resize"), [("hopenet", 224), ("sixdrepnet", 256)])
def test_each_family_crops_as_its_authors_benchmark(name, resize):
    """The recipe's crop of the AFLW2000 samples' landmark boxes is the authors' PIL crop (black past the
    photo's edge included) up to resampling: a few grey levels, where a shifted box costs tens."""
    recipe = recipe_of(model_entry(name).config())
    differences = []
    for jpg in sorted(require_shared(DATA / "aflw2000-sample16").glob("*.jpg")):
        image = Image.open(jpg).convert("RGB")
        points = sio.loadmat(jpg.with_suffix(".mat"))["pt2d"]
        box = (points[0].min(), points[1].min(), points[0].max(), points[1].max())
        ours = crop_face(np.asarray(image), box, recipe).astype(np.float64)
        differences.append(np.abs(ours - _authors_crop(image, box, resize)).mean())
    assert np.mean(differences) < 2.5 and max(differences) < 6, differences


# ----------------------------------------------------------------------------- where the weights come from
def test_offline_the_released_weights_say_where_they_are(monkeypatch, tmp_path):
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SIXDREPNET_OFFICIAL_MIRROR", raising=False)
    monkeypatch.delenv("HOPENET_OFFICIAL_MIRROR", raising=False)
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE is set") as offline:
        fsanet.create_model("sixdrepnet.300w_lp", pretrained=True)
    assert "SIXDREPNET_OFFICIAL_MIRROR" in str(offline.value) and "45331224e5c7" in str(offline.value)
    for tag in ("300w_lp_alpha1", "300w_lp_alpha2", "300w_lp_robust"):
        with pytest.raises(WeightsUnavailableError, match="no checksum is published") as unpinned:
            fsanet.create_model(f"hopenet.{tag}", pretrained=True)
        assert "HOPENET_OFFICIAL_MIRROR" in str(unpinned.value) and "drive.google.com" in str(unpinned.value)


def test_a_mirror_serves_only_the_pinned_file(monkeypatch, tmp_path, sixdrepnet_files, hopenet_files):
    """6DRepNet's file is checked against its pinned sha256 (the synthetic one is refused); HopeNet's, with
    no published checksum, is converted from an operator's mirror folder with its own sha256 recorded."""
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "cache"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "model.pth").write_bytes((sixdrepnet_files / "6DRepNet_300W_LP_AFLW2000.pth").read_bytes())
    monkeypatch.setenv("SIXDREPNET_OFFICIAL_MIRROR", str(mirror))
    with pytest.raises(ChecksumMismatchError, match="9bdcd0e072df"):
        fsanet.create_model("sixdrepnet.300w_lp", pretrained=True)
    (mirror / "hopenet_alpha1.pkl").write_bytes((hopenet_files / "hopenet_alpha1.pkl").read_bytes())
    monkeypatch.setenv("HOPENET_OFFICIAL_MIRROR", str(mirror))
    model = fsanet.create_model("hopenet.300w_lp_alpha1", pretrained=True)
    digest = hashlib.sha256((mirror / "hopenet_alpha1.pkl").read_bytes()).hexdigest()
    assert (
        model.config["source"]["sha256"] == digest and "none published" in model.config["source"]["checksum"]
    )
    assert model.config["trained_on"] == "300W-LP" and model.config["protocol"] == "protocol 1"
    assert (tmp_path / "cache" / "hopenet.300w_lp_alpha1" / "model.safetensors").is_file()


def test_reported_numbers_name_real_models_and_benchmarks():
    """Every paper number a family declares is for a benchmark of the board, in its protocol, and names a
    registry ``name.tag`` that exists (or none, for a model never released); its mean is its axes' mean."""
    from leaderboard.protocol.benchmarks import BENCHMARKS

    reported = [r for fam in registered().values() for r in fam.reported]
    assert {family(a).method for a in ("ensemble", "whenet", "hopenet", "sixdrepnet")} <= {
        fam.method for fam in registered().values() if fam.reported
    }
    for row in reported:
        assert BENCHMARKS[row.benchmark].protocol == row.protocol, row
        assert abs(sum(row.mae[:3]) / 3 - row.mae[3]) < 0.011, row
        if row.model is not None:
            assert row.model in fsanet.list_models(pretrained=True), row
