"""Registry, pretrained resolution (cache -> Hub -> official mirror) and safetensors loading."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import stat
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import fsanet
from fsanet.errors import InvalidWeightsError, WeightsUnavailableError
from fsanet.models.hub import CONFIG_NAME, WEIGHTS_NAME, load_directory
from fsanet.models.registry import model_entry
from fsanet.utils.settings import cache_dir
from tests.conftest import OFFICIAL, REFERENCE, require_shared

H5 = "pre-trained/BIWI_models/fsanet_capsule_3_16_2_21_5/fsanet_capsule_3_16_2_21_5.h5"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def face_inputs() -> tuple[torch.Tensor, np.ndarray]:
    reference = np.load(require_shared(REFERENCE / "reference_all_variants.npz"))
    inputs = torch.from_numpy(np.ascontiguousarray(reference["inputs_face"][..., ::-1])).permute(0, 3, 1, 2)
    return inputs.contiguous(), reference["BIWI/fsanet_capsule_3_16_2_21_5/face"]


def assert_official_angles(model, face_inputs):
    inputs, expected = face_inputs
    with torch.no_grad():
        assert np.abs(model(inputs).numpy() - expected).max() <= 1e-4


def test_registry_names_and_tags():
    names = fsanet.list_models()
    for aggregation in ("caps", "netvlad", "metric"):
        for scoring in ("1x1", "var", "uniform"):
            assert f"fsanet_{aggregation}_{scoring}" in names
    assert {"fsanet_fusion", "ssrnet_md"} <= set(names)
    tagged = fsanet.list_models(pretrained=True)
    assert "fsanet_caps_1x1.300w_lp" in tagged and "fsanet_fusion.biwi" in tagged
    assert "fsanet_netvlad_uniform.biwi" in tagged
    assert "fsanet_netvlad_uniform.300w_lp" not in tagged  # the authors shipped no such file
    # every shipped file, plus the two fusions and WHENet, less the NaN-weighted one (listed only on request)
    assert "fsanet_netvlad_var.300w_lp" not in tagged
    shipped_files = [p for name in fsanet.list_models() for p in model_entry(name).pretrained if p.file]
    assert len(tagged) == len(shipped_files) + 2 - 1
    shipped = fsanet.list_models(pretrained=True, include_unusable=True)
    assert set(shipped) == {*tagged, "fsanet_netvlad_var.300w_lp"}
    with pytest.raises(ValueError, match="no pretrained tag"):
        fsanet.create_model("fsanet_netvlad_uniform.300w_lp")
    with pytest.raises(ValueError, match="unknown model"):
        fsanet.create_model("resnet50")


def test_untrained_models_follow_the_forward_contract():
    for name in fsanet.list_models():
        model = fsanet.create_model(name)
        x = torch.rand(2, 3, model.input_size, model.input_size) * 255  # 64 for FSA-Net, 224 for WHENet
        with torch.no_grad():
            y = model(x)
        assert y.shape == (2, 3) and torch.isfinite(y).all(), name


def test_pretrained_from_local_mirror_is_converted_once_and_cached(empty_cache, monkeypatch, face_inputs):
    monkeypatch.setenv("FSANET_OFFICIAL_MIRROR", str(require_shared(OFFICIAL)))
    model = fsanet.create_model("fsanet_caps_1x1.biwi", pretrained=True)
    assert_official_angles(model, face_inputs)
    cached = empty_cache / "fsanet_caps_1x1.biwi"
    assert (cached / CONFIG_NAME).is_file() and (cached / WEIGHTS_NAME).is_file()
    config = json.loads((cached / CONFIG_NAME).read_text())
    assert config["source"]["sha256"] == model_entry("fsanet_caps_1x1").weights("biwi").file.sha256
    # The cache now serves it without any mirror.
    monkeypatch.setenv("FSANET_OFFICIAL_MIRROR", str(empty_cache / "nowhere"))
    assert_official_angles(fsanet.create_model("fsanet_caps_1x1.biwi", pretrained=True), face_inputs)


@pytest.fixture
def http_mirror(monkeypatch):
    """A loopback HTTP server serving ../shared/fsanet-official like the upstream raw URLs."""
    handler = functools.partial(QuietHandler, directory=str(require_shared(OFFICIAL)))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def test_pretrained_from_http_mirror(empty_cache, monkeypatch, http_mirror, face_inputs):
    monkeypatch.setenv("FSANET_OFFICIAL_MIRROR", http_mirror)
    assert_official_angles(fsanet.create_model("fsanet_caps_1x1.biwi", pretrained=True), face_inputs)
    assert (empty_cache / "fsanet_caps_1x1.biwi" / WEIGHTS_NAME).is_file()


def test_offline_without_cache_fails_fast_and_names_the_variable(empty_cache, monkeypatch):
    """Offline, a missing file fails at once: not one connection is attempted (so no timeout, no retry)."""
    monkeypatch.delenv("FSANET_OFFICIAL_MIRROR", raising=False)  # the default GitHub URL
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    with pytest.raises(WeightsUnavailableError, match="FSANET_OFFICIAL_MIRROR"):
        fsanet.create_model("fsanet_fusion.300w_lp", pretrained=True)


def _no_network(*args, **kwargs):
    raise AssertionError(f"a connection was attempted offline: {args}")


def test_unreachable_mirror_fails_fast(empty_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket_closed_port() as port:
        monkeypatch.setenv("FSANET_OFFICIAL_MIRROR", f"http://127.0.0.1:{port}")
        attempts = []
        real_urlopen = urllib.request.urlopen

        def counted_urlopen(*args, **kwargs):
            attempts.append(args[0])
            return real_urlopen(*args, **kwargs)

        monkeypatch.setattr(urllib.request, "urlopen", counted_urlopen)
        with pytest.raises(WeightsUnavailableError, match="FSANET_OFFICIAL_MIRROR"):
            fsanet.create_model("ssrnet_md.biwi", pretrained=True)
        assert len(attempts) == 1, attempts  # a refused connection is final: no retries, no back-off
    assert not empty_cache.exists() or not any(empty_cache.iterdir())


def socket_closed_port():
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield port  # bound then released: nothing listens there

    return closed()


def test_hash_mismatch_is_refused_and_not_cached(empty_cache, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    target = mirror / H5
    target.parent.mkdir(parents=True)
    data = (require_shared(OFFICIAL) / H5).read_bytes()
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one flipped bit
    monkeypatch.setenv("FSANET_OFFICIAL_MIRROR", str(mirror))
    with pytest.raises(WeightsUnavailableError, match="sha256"):
        fsanet.create_model("fsanet_caps_1x1.biwi", pretrained=True)
    assert not (empty_cache / "fsanet_caps_1x1.biwi").exists()


def test_broken_official_weights_are_refused_not_cached(empty_cache, monkeypatch):
    monkeypatch.setenv("FSANET_OFFICIAL_MIRROR", str(require_shared(OFFICIAL)))
    with pytest.raises(InvalidWeightsError, match="NaN"):
        fsanet.create_model("fsanet_netvlad_var.300w_lp", pretrained=True)
    assert not (empty_cache / "fsanet_netvlad_var.300w_lp").exists()


def test_save_and_from_pretrained_round_trip(tmp_path, face_inputs):
    model = fsanet.create_model("fsanet_caps_1x1.biwi", pretrained=True)
    model.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["README.md", CONFIG_NAME, WEIGHTS_NAME]
    card = (tmp_path / "saved" / "README.md").read_text()
    # The model card: library, licence and tags in its metadata; training data, protocol, recipe in its text.
    assert "library_name: fsanet" in card and "license: apache-2.0" in card and "head-pose-estimation" in card
    assert "BIWI 70% (protocol 2)" in card and '"box": "margin"' in card and "FSA-Net" in card
    reloaded = fsanet.from_pretrained(tmp_path / "saved")
    assert_official_angles(reloaded, face_inputs)
    assert fsanet.model_identity(reloaded) == fsanet.model_identity(model)
    fusion = fsanet.create_model("fsanet_fusion.biwi", pretrained=True)
    fusion.save_pretrained(tmp_path / "fusion")
    x = face_inputs[0]
    with torch.no_grad():
        assert torch.equal(fsanet.load_model(str(tmp_path / "fusion"))(x), fusion(x))


def test_from_pretrained_hub_repo_offline_with_populated_cache(tmp_path, monkeypatch, face_inputs):
    """A Hub repo id resolves from the huggingface_hub cache when HF_HUB_OFFLINE=1."""
    model = fsanet.create_model("fsanet_caps_1x1.biwi", pretrained=True)
    hub_cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub_cache / "models--someone--fsanet-test"
    model.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub_cache))
    reloaded = fsanet.load_model("someone/fsanet-test")
    assert_official_angles(reloaded, face_inputs)
    with pytest.raises(WeightsUnavailableError, match="Hub"):
        fsanet.load_model("someone/absent-repo")


def test_bad_weight_files_are_rejected_with_a_reason(tmp_path):
    good = tmp_path / "good"
    fsanet.create_model("fsanet_caps_var").save_pretrained(good)

    def variant(name: str) -> Path:
        directory = tmp_path / name
        shutil.copytree(good, directory)
        return directory

    truncated = variant("truncated")
    data = (truncated / WEIGHTS_NAME).read_bytes()
    (truncated / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidWeightsError, match="corrupt or truncated"):
        load_directory(truncated)

    wrong_shape = variant("wrong_shape")
    tensors = {k: v for k, v in fsanet.create_model("fsanet_caps_var").state_dict().items()}
    tensors["aggregation.weight"] = torch.zeros(3, 20, 16, 64)
    save_file({k: v.contiguous() for k, v in tensors.items()}, wrong_shape / WEIGHTS_NAME)
    with pytest.raises(InvalidWeightsError, match=r"aggregation\.weight: shape"):
        load_directory(wrong_shape)

    unknown = variant("unknown")
    (unknown / CONFIG_NAME).write_text(json.dumps({"architecture": "alexnet"}))
    with pytest.raises(InvalidWeightsError, match="unknown architecture"):
        load_directory(unknown)

    pickled = variant("pickled")
    (pickled / WEIGHTS_NAME).unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(InvalidWeightsError, match="no model.safetensors"):
        load_directory(pickled)


def test_cache_location_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    monkeypatch.delenv("FSANET_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "fsanet"


# ----------------------------------------------------------------------------- provenance of saved copies
def _saved(model: torch.nn.Module, folder: Path) -> tuple[dict, str]:
    fsanet.save_pretrained(model, folder)
    return json.loads((folder / CONFIG_NAME).read_text()), (folder / "README.md").read_text()


def test_a_registry_model_with_changed_weights_is_saved_as_derived_not_as_the_official_one(tmp_path):
    require_shared(OFFICIAL)
    official = fsanet.load_model("ssrnet_md.300w_lp")
    config, card = _saved(official, tmp_path / "same")
    assert config["name"] == "ssrnet_md.300w_lp" and config["source"]["sha256"]
    assert "derived_from" not in config and "Derived from" not in card and "# ssrnet_md.300w_lp" in card

    tuned = fsanet.load_model("ssrnet_md.300w_lp")
    with torch.no_grad():
        next(tuned.parameters()).add_(0.01)  # a fine-tuning step, as far as the weights can tell
    config, card = _saved(tuned, tmp_path / "tuned")
    assert "name" not in config and "source" not in config, config
    assert "trained_on" not in config and "protocol" not in config  # the original's: no longer the weights'
    derived = config["derived_from"]
    assert derived["name"] == "ssrnet_md.300w_lp" and derived["sha256"] == official.config["source"]["sha256"]
    assert (derived["trained_on"], derived["protocol"]) == ("300W-LP", "protocol 1")
    assert "# ssrnet_md.300w_lp" not in card and "Derived from: `ssrnet_md.300w_lp`" in card
    assert "Trained on: not stated" in card and "license: apache-2.0" in card  # the original's licence holds
    reloaded = fsanet.load_model(str(tmp_path / "tuned"))  # the schema takes it; no official name claimed
    assert reloaded.name != "ssrnet_md.300w_lp"
    assert fsanet.model_identity(reloaded) == fsanet.model_identity(tuned)
    assert fsanet.model_identity(reloaded).config == fsanet.model_identity(official).config  # descriptive

    tuned.config["trained_on"] = "BIWI 70%"  # stated anew: kept
    config, _ = _saved(tuned, tmp_path / "stated")
    assert config["trained_on"] == "BIWI 70%" and "protocol" not in config


def test_a_fusion_with_one_changed_member_keeps_the_other_members_official(tmp_path):
    require_shared(OFFICIAL)
    fusion = fsanet.load_model("fsanet_fusion.300w_lp")
    with torch.no_grad():
        next(fusion.members[1].parameters()).mul_(1.5)
    config, card = _saved(fusion, tmp_path / "fusion")
    assert config["derived_from"]["name"] == "fsanet_fusion.300w_lp" and "name" not in config
    first, second, third = config["members"]
    assert first["name"] == "fsanet_caps_1x1.300w_lp" and "derived_from" not in first
    assert second["derived_from"]["name"] == "fsanet_caps_var.300w_lp" and "source" not in second
    assert third["name"] == "fsanet_caps_uniform.300w_lp"
    assert fsanet.model_identity(fsanet.load_model(str(tmp_path / "fusion"))) == fsanet.model_identity(fusion)


def test_saved_and_exported_files_get_the_users_umask(tmp_path):
    from fsanet.cli.main import main

    previous = os.umask(0o002)
    try:
        folder = fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / "model")
        assert main(["export", str(folder), "--out", str(tmp_path / "model.onnx")]) == 0
    finally:
        os.umask(previous)
    for path in (folder / CONFIG_NAME, folder / WEIGHTS_NAME, tmp_path / "model.onnx"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o664, path


def test_a_models_identity_is_hashed_once_and_carried_until_the_model_changes(monkeypatch):
    """:func:`carried_identity` hashes a model once; its ONNX engine and the exported file's metadata reuse
    it; any change of what the model computes (an in-place step, a loaded state, a replaced parameter, an
    edited config, a copy) is hashed again (a stale identity would name another model's cached graph)."""
    import copy

    from fsanet.models import identity as identities
    from fsanet.models.identity_cache import carried_identity, carry_identity, known_identity
    from fsanet.runtime.onnx_engine import pose_metadata

    hashed = []
    original = identities.weights_identity
    monkeypatch.setattr(identities, "weights_identity", lambda tensors: hashed.append(1) or original(tensors))
    model = fsanet.create_model("ssrnet_md").eval()
    identity = carried_identity(model)
    assert identity == identities.model_identity(model) and len(hashed) == 2  # carried, then the reference
    assert carried_identity(model) == identity and pose_metadata(model)["fsanet.identity"] == identity.key
    engine = fsanet.optimize_for_inference(model, engine="onnx", cache=False)
    assert engine.identity == identity and len(hashed) == 2  # the engine carries it: never hashed again

    parameter = next(model.parameters())
    with torch.no_grad():
        parameter.add_(1.0)  # a training step, in place
    assert known_identity(model) is None and carried_identity(model) != identity
    model.load_state_dict(fsanet.create_model("ssrnet_md").state_dict())
    assert known_identity(model) is None
    stepped = carried_identity(model)
    holder_name, _, name = next(n for n, _ in model.named_parameters()).rpartition(".")
    holder = model.get_submodule(holder_name)
    setattr(holder, name, torch.nn.Parameter(getattr(holder, name).detach() * 2))  # a replaced parameter
    assert known_identity(model) is None and carried_identity(model) != stepped
    replaced = carried_identity(model)
    model.config = {**model.config, "name": "renamed"}  # descriptive: looked at again, the same identity
    assert known_identity(model) is None and carried_identity(model) == replaced
    twin = copy.deepcopy(model)
    assert known_identity(twin) is None  # its own tensors: computed again, never assumed
    carry_identity(twin, identity)  # a caller who knows the weights (a validated submission) tells it
    assert known_identity(twin) == identity


def test_float64_weights_beyond_float32_are_not_finite(tmp_path):
    """A float64 value above float32's range is finite in the file and infinite in the model that runs it."""
    from fsanet.models.weights import non_finite

    state = fsanet.create_model("ssrnet_md").state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point())
    tensors = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = 1e300
    assert torch.isfinite(tensors[key]).all() and non_finite(tensors) == [key]
