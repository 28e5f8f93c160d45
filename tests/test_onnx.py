"""ONNX export and the ONNX Runtime engine: the exported file in a bare runtime, parity for every shipped
model (both protocols, the fusion) against torch and the official outputs, the engine switch, the cache
and the thread settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

import fsanet
from fsanet.errors import FSANetError
from fsanet.models.families.fusion import PoseEnsemble
from fsanet.models.families.timm_head import create_timm_model
from fsanet.runtime import onnx_engine
from fsanet.runtime.onnx_engine import OPSET, OnnxPoseModel, choose_engine, onnx_pose_model
from fsanet.runtime.optimize import InferenceModel, optimize_for_inference
from fsanet.runtime.threads import configure_threads
from fsanet.utils.files import TEMP_PREFIX
from tests.conftest import REFERENCE, ROOT, require_shared
from tests.test_parity import BROKEN, PROTOCOLS, bgr_nhwc_to_rgb_nchw, load_official, shipped_models

ENGINE_TOL = 1e-3  # degrees, ONNX Runtime vs torch (the bound); measured <= 2.5e-4
OFFICIAL_TOL = {"random": 1e-3, "face": 1e-4}  # as tests/test_parity.py holds the torch port to

# Runs with `python -I -S`: no PYTHONPATH, no working directory, no site processing (so no editable install
# of this project); sys.path gets only the folders holding onnxruntime and NumPy (argv[3:]).
BARE_SCRIPT = """
import json, sys
sys.path.extend(sys.argv[3:])
import numpy as np, onnxruntime as ort
try:
    import fsanet
    sys.exit("fsanet is importable: not a bare runtime")
except ImportError:
    pass
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
inputs = np.load(sys.argv[2])
(single_input,), (output,) = session.get_inputs(), session.get_outputs()
result = {
    "metadata": session.get_modelmeta().custom_metadata_map,
    "input": [single_input.name, single_input.type, single_input.shape],
    "output": [output.name, output.shape],
    "batched": session.run(None, {single_input.name: inputs})[0].tolist(),
    "single": [session.run(None, {single_input.name: row[None]})[0][0].tolist() for row in inputs],
}
print(json.dumps(result))
"""


def run_fsanet(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "fsanet", *args], env=env, capture_output=True, text=True)


def run_bare(model_path, inputs: np.ndarray, tmp_path) -> dict:
    np.save(tmp_path / "inputs.npy", inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    folders = sorted({str(Path(module.__file__).parents[1]) for module in (np, onnxruntime)})
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            BARE_SCRIPT,
            str(model_path),
            str(tmp_path / "inputs.npy"),
            *folders,
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def references():
    return np.load(require_shared(REFERENCE / "reference_all_variants.npz"))


def test_exported_fusion_runs_in_a_bare_onnxruntime(tmp_path, references):
    """The command as the README spells it; the file alone gives the model's angles, batch 1 and 8."""
    out = tmp_path / "fusion.onnx"
    result = run_fsanet("export", "fsanet_fusion.300w_lp", "--format", "onnx", "--out", str(out))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    model = fsanet.create_model("fsanet_fusion.300w_lp", pretrained=True)
    assert printed["identity"] == fsanet.model_identity(model).key and printed["opset"] == OPSET

    inputs = bgr_nhwc_to_rgb_nchw(references["inputs_face"]).numpy()
    bare = run_bare(out, inputs, tmp_path)
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs)).numpy()
    assert np.abs(np.array(bare["batched"]) - expected).max() <= ENGINE_TOL
    assert np.abs(np.array(bare["single"]) - np.array(bare["batched"])).max() <= 1e-4
    official = references["300W_LP/fsanet_capsule_fusion/face"]
    assert np.abs(np.array(bare["batched"]) - official).max() <= OFFICIAL_TOL["face"]

    metadata = bare["metadata"]
    assert metadata["fsanet.name"] == "fsanet_fusion.300w_lp"
    assert json.loads(metadata["fsanet.config"]) == json.loads(json.dumps(model.config))
    assert metadata["fsanet.identity"] == fsanet.model_identity(model).key
    assert metadata["fsanet.input_size"] == "64"
    name, dtype, shape = bare["input"]
    assert (name, dtype, shape[1:]) == ("input", "tensor(float)", [3, 64, 64])
    assert isinstance(shape[0], str) and isinstance(bare["output"][1][0], str)  # dynamic batch
    assert [op.version for op in onnx.load(out).opset_import if op.domain in ("", "ai.onnx")] == [OPSET]


def test_export_of_a_timm_model_folder_keeps_its_input_size(tmp_path):
    """``fsanet_timm_*`` models are exported from their saved folder; their own input size and contract."""
    torch.manual_seed(0)
    model = create_timm_model("mobilenetv3_small_100", image_size=96).eval()
    fsanet.save_pretrained(model, tmp_path / "timm")
    result = run_fsanet("export", str(tmp_path / "timm"), "--out", str(tmp_path / "timm.onnx"))
    assert result.returncode == 0, result.stderr
    inputs = np.random.default_rng(0).uniform(0, 255, (3, 3, 96, 96)).astype(np.float32)
    bare = run_bare(tmp_path / "timm.onnx", inputs, tmp_path)
    with torch.no_grad():
        expected = model(torch.from_numpy(inputs)).numpy()
    assert np.abs(np.array(bare["batched"]) - expected).max() <= ENGINE_TOL
    assert bare["metadata"]["fsanet.input_size"] == "96"

    engine = optimize_for_inference(model, engine="onnx", cache=False)  # the leaderboard's 64x64 crops
    crops = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        torch.testing.assert_close(engine(crops), model(crops))


def test_export_cli_refuses_bad_input_in_one_line(tmp_path):
    unknown = run_fsanet("export", "no_such_model", "--out", str(tmp_path / "x.onnx"))
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1, unknown.stderr
    assert "Traceback" not in unknown.stderr and not (tmp_path / "x.onnx").exists()
    wrong_format = run_fsanet("export", "ssrnet_md.biwi", "--format", "tflite", "--out", str(tmp_path / "x"))
    assert wrong_format.returncode == 2 and "invalid choice" in wrong_format.stderr


@pytest.mark.parametrize(("protocol", "official"), shipped_models())
def test_onnx_engine_matches_torch_and_official_outputs(references, protocol, official):
    """ONNX Runtime vs torch within 1e-3 degrees, vs the official outputs as tight as the torch port,
    and every face alone gives what the batch gives."""
    if (protocol, official) in BROKEN:
        pytest.skip("300W_LP fsanet_var_netvlad is NaN as shipped: loading refuses it (test_parity.py)")
    model = load_official(protocol, official)
    engine = optimize_for_inference(model, engine="onnx")
    assert isinstance(engine, OnnxPoseModel)
    for kind, tolerance in OFFICIAL_TOL.items():
        inputs = bgr_nhwc_to_rgb_nchw(references[f"inputs_{kind}"])
        with torch.no_grad():
            expected = model(inputs).numpy()
        batched = engine(inputs).numpy()
        assert np.abs(batched - expected).max() <= ENGINE_TOL, kind
        assert np.abs(batched - references[f"{protocol}/{official}/{kind}"]).max() <= tolerance, kind
        if kind == "face":
            single = np.concatenate([engine(inputs[i : i + 1]).numpy() for i in range(len(inputs))])
            assert np.abs(single - batched).max() <= 1e-4


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_fusion_on_onnx_matches_official(references, protocol):
    members = [
        load_official(protocol, f"fsanet_{v}_3_16_2_{n}_5")
        for v, n in (("capsule", 21), ("var_capsule", 21), ("noS_capsule", 192))
    ]
    fusion = PoseEnsemble({"architecture": "ensemble", "members": []}, members).eval()
    engine = optimize_for_inference(fusion, engine="onnx")
    for kind, tolerance in OFFICIAL_TOL.items():
        inputs = bgr_nhwc_to_rgb_nchw(references[f"inputs_{kind}"])
        with torch.no_grad():
            assert np.abs(engine(inputs).numpy() - fusion(inputs).numpy()).max() <= ENGINE_TOL
        official = references[f"{protocol}/fsanet_capsule_fusion/{kind}"]
        assert np.abs(engine(inputs).numpy() - official).max() <= tolerance


def test_engine_follows_argument_then_env_then_default(monkeypatch):
    model = fsanet.create_model("ssrnet_md")
    monkeypatch.delenv("FSANET_ENGINE", raising=False)
    assert isinstance(optimize_for_inference(model, cache=False), OnnxPoseModel)  # CPU default
    monkeypatch.setenv("FSANET_ENGINE", "torch")
    assert isinstance(optimize_for_inference(model, cache=False), InferenceModel)
    assert isinstance(optimize_for_inference(model, engine="onnx", cache=False), OnnxPoseModel)
    monkeypatch.setenv("FSANET_ENGINE", "onnx")
    assert isinstance(optimize_for_inference(model, cache=False), OnnxPoseModel)
    monkeypatch.setenv("FSANET_ENGINE", "tensorrt")
    with pytest.raises(FSANetError, match="FSANET_ENGINE"):
        optimize_for_inference(model)
    monkeypatch.delenv("FSANET_ENGINE")
    assert choose_engine(None, torch.device("cpu")) == "onnx"  # auto: ONNX Runtime on CPU, MTCNN's nets too
    assert choose_engine(None, torch.device("cuda")) == "torch"  # auto: torch on CUDA
    with pytest.raises(FSANetError, match="runs on CPU"):
        choose_engine("onnx", torch.device("cuda"))
    monkeypatch.setattr(onnx_engine, "onnxruntime_available", lambda: False)
    assert choose_engine(None, torch.device("cpu")) == "torch"  # not installed: torch, no error
    with pytest.raises(FSANetError, match="pip install onnxruntime"):
        choose_engine("onnx", torch.device("cpu"))


def test_engine_keeps_the_model_identity_and_mode():
    model = fsanet.create_model("fsanet_caps_var").train()
    engine = optimize_for_inference(model, cache=False)
    assert (engine.name, engine.config, engine.input_size) == (model.name, model.config, 64)
    assert model.training  # exporting did not switch the caller's model to eval
    assert engine(torch.rand(2, 3, 64, 64, dtype=torch.float64) * 255).dtype == torch.float32


def test_exported_graph_is_cached_by_identity_and_opset(monkeypatch, tmp_path):
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path))
    model = fsanet.create_model("fsanet_caps_1x1")
    x = torch.rand(3, 3, 64, 64) * 255
    first = optimize_for_inference(model)(x)
    cached = tmp_path / "onnx" / f"{fsanet.model_identity(model).key}.opset{OPSET}.onnx"
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == [cached.name]  # no temporary file left

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the graph is cached")

    monkeypatch.setattr(onnx_engine, "pose_onnx_bytes", no_export)
    torch.testing.assert_close(optimize_for_inference(model)(x), first)
    monkeypatch.undo()
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path))

    cached.write_bytes(b"truncated")  # a damaged file is exported again, atomically
    torch.testing.assert_close(optimize_for_inference(model)(x), first)
    assert onnx.load(cached).metadata_props and not list(tmp_path.glob(f"onnx/{TEMP_PREFIX}*"))

    other = fsanet.create_model("fsanet_caps_1x1")  # other weights: another file, other angles
    assert not torch.allclose(optimize_for_inference(other)(x), first)
    assert len(list((tmp_path / "onnx").iterdir())) == 2


def test_a_read_only_cache_still_gives_an_engine(monkeypatch, tmp_path):
    (tmp_path / "onnx").write_text("a file where the cache folder should be")  # any write fails
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path))
    model = fsanet.create_model("ssrnet_md")
    with pytest.warns(UserWarning, match="could not cache the ONNX graph"):
        engine = optimize_for_inference(model)
    x = torch.rand(2, 3, 64, 64) * 255
    with torch.no_grad():
        torch.testing.assert_close(engine(x), model(x), atol=1e-3, rtol=0)


def test_sessions_use_the_configured_threads_and_never_spin():
    before = torch.get_num_threads()
    try:
        threads = configure_threads(max(1, os.cpu_count() or 1))
        assert threads == int(os.environ.get("OMP_NUM_THREADS") or 1) == torch.get_num_threads()
        engine = onnx_pose_model(fsanet.create_model("ssrnet_md"), cache=False)
        options = engine.session.get_session_options()
        assert options.intra_op_num_threads == threads and options.inter_op_num_threads == 1
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    finally:
        onnx_engine_threads_reset(before)


def onnx_engine_threads_reset(torch_threads: int) -> None:
    import fsanet.runtime.threads as threads_module

    threads_module._configured = None
    torch.set_num_threads(torch_threads)
