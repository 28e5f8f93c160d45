"""The port is the authors' model: every shipped variant against the official outputs.

References (``../shared/reference``) come from the authors' frozen graphs and Keras models run
under TensorFlow on BGR input; our converted models take RGB, so the inputs are flipped here
and nowhere else. Tolerances: 1e-3 degrees on angles for random inputs, 1e-4 for real face
crops, 1e-4 on every intermediate tensor.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fsanet.models.catalogue import converter_for
from fsanet.models.families.fsanet import OFFICIAL_FILES, TAG_FOLDERS
from fsanet.models.families.ssrnet_md import OFFICIAL_NAME as SSRNET_OFFICIAL_NAME
from fsanet.models.registry import build_model
from fsanet.runtime.optimize import optimize_for_inference
from tests.conftest import OFFICIAL, REFERENCE, require_shared

PROTOCOLS = {"300W_LP": "300w_lp", "BIWI": "biwi"}
BROKEN = {("300W_LP", "fsanet_var_netvlad_3_16_2_21_5")}  # NaN weights as shipped
ANGLE_TOL = {"random": 1e-3, "face": 1e-4}
INTERMEDIATE_TOL = 1e-4
ENGINES = ("torch", "onnx")


def shipped_models() -> list[tuple[str, str]]:
    pairs = []
    for protocol, folder in (("300W_LP", "300W_LP_models"), ("BIWI", "BIWI_models")):
        for official in [*(folder for folder, _ in OFFICIAL_FILES.values()), SSRNET_OFFICIAL_NAME]:
            if (OFFICIAL / "pre-trained" / folder / official / f"{official}.h5").exists():
                pairs.append((protocol, official))
    return pairs or [("300W_LP", "fsanet_capsule_3_16_2_21_5")]  # absent ../shared: the test skips


@pytest.fixture(scope="module")
def references():
    outputs = np.load(require_shared(REFERENCE / "reference_all_variants.npz"))
    intermediates = np.load(require_shared(REFERENCE / "reference_all_variants_intermediates.npz"))
    return outputs, intermediates


def bgr_nhwc_to_rgb_nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array[..., ::-1])).permute(0, 3, 1, 2).contiguous()


def convert_h5(path):
    """An authors' file converted by the family recognising it (what ``python -m fsanet convert`` does)."""
    return converter_for(path).converter.convert(path, None)


def load_official(protocol: str, official: str):
    folder = TAG_FOLDERS[PROTOCOLS[protocol]]
    path = require_shared(OFFICIAL / "pre-trained" / folder / official / f"{official}.h5")
    config, state = convert_h5(path)
    model = build_model(config)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.parametrize(("protocol", "official"), [p for p in shipped_models() if p not in BROKEN])
def test_angles_match_official(references, protocol, official):
    """The plain modules and their inference-optimised copies: torch (BN folded, frozen) and ONNX Runtime."""
    outputs, _ = references
    model = load_official(protocol, official)
    for variant in (model, *(optimize_for_inference(model, engine=engine) for engine in ENGINES)):
        for kind, tolerance in ANGLE_TOL.items():
            with torch.no_grad():
                angles = variant(bgr_nhwc_to_rgb_nchw(outputs[f"inputs_{kind}"])).numpy()
            error = np.abs(angles - outputs[f"{protocol}/{official}/{kind}"]).max()
            assert error <= tolerance, (type(variant).__name__, kind, error)


@pytest.mark.parametrize(("protocol", "official"), [p for p in shipped_models() if p not in BROKEN])
def test_intermediates_match_official(references, protocol, official):
    outputs, intermediates = references
    model = load_official(protocol, official)
    for kind, inputs in (("random8", outputs["inputs_random"][:8]), ("face", outputs["inputs_face"])):
        prefix = f"{protocol}/{official}/{kind}/"
        with torch.no_grad():
            ours = model.forward_intermediates(bgr_nhwc_to_rgb_nchw(inputs))
        if "stage_maps" in ours:  # FSA-Net: NHWC maps, primary capsules, aggregated capsules
            pairs = {f"feat_s{k + 1}": ours["stage_maps"][:, k].permute(0, 2, 3, 1) for k in range(3)}
            pairs |= {"primcaps": ours["primcaps"], "agg": ours["aggregated"]}
        else:  # SSR-Net-MD: flattened stage products
            pairs = {f"feat_s{k + 1}": ours["stage_features"][k] for k in range(3)}
        pairs |= {name: ours[name] for name in ("p", "delta", "eta")}
        for name, tensor in pairs.items():
            if prefix + name not in intermediates:
                continue
            error = np.abs(tensor.numpy() - intermediates[prefix + name]).max()
            assert error <= INTERMEDIATE_TOL, (kind, name, error)


def test_score_maps_match_frozen_graph():
    """The 1x1 and variance score maps, which only the frozen-graph reference records."""
    reference = np.load(require_shared(REFERENCE / "reference_intermediates.npz"))
    outputs = np.load(require_shared(REFERENCE / "reference_outputs.npz"))
    for variant in ("capsule", "var_capsule"):
        model = load_official("300W_LP", f"fsanet_{variant}_3_16_2_21_5")
        with torch.no_grad():
            scores = model.forward_intermediates(bgr_nhwc_to_rgb_nchw(outputs["inputs_face"]))["scores"]
        for stage in range(3):
            expected = reference[f"face/{variant}/score_s{stage + 1}"].reshape(len(scores), -1)
            assert np.abs(scores[:, stage].numpy() - expected).max() <= INTERMEDIATE_TOL


def test_fusion_matches_official_ensemble():
    outputs = np.load(require_shared(REFERENCE / "reference_outputs.npz"))
    from fsanet.models.families.fusion import PoseEnsemble

    members = [
        load_official("300W_LP", f"fsanet_{v}_3_16_2_{n}_5")
        for v, n in (("capsule", 21), ("var_capsule", 21), ("noS_capsule", 192))
    ]
    fusion = PoseEnsemble({"architecture": "ensemble", "members": []}, members).eval()
    for variant in (fusion, *(optimize_for_inference(fusion, engine=engine) for engine in ENGINES)):
        for kind, tolerance in ANGLE_TOL.items():
            with torch.no_grad():
                angles = variant(bgr_nhwc_to_rgb_nchw(outputs[f"inputs_{kind}"])).numpy()
            assert np.abs(angles - outputs[f"outputs_{kind}_ensemble_mean"]).max() <= tolerance


def test_broken_official_file_is_refused():
    """300W_LP fsanet_var_netvlad holds NaN weights: loading must refuse, not serve NaN."""
    from fsanet.errors import InvalidWeightsError
    from fsanet.models.hub import validate_state_dict

    path = require_shared(
        OFFICIAL
        / "pre-trained/300W_LP_models/fsanet_var_netvlad_3_16_2_21_5"
        / "fsanet_var_netvlad_3_16_2_21_5.h5"
    )
    config, state = convert_h5(path)
    with pytest.raises(InvalidWeightsError, match="NaN"):
        validate_state_dict(config, state)


def test_batch_of_one_equals_batched(references):
    outputs, _ = references
    inputs = bgr_nhwc_to_rgb_nchw(outputs["inputs_face"])
    for official in ("fsanet_capsule_3_16_2_21_5", "fsanet_noS_netvlad_3_16_2_192_5", "ssrnet_mt"):
        model = load_official("BIWI", official)
        with torch.no_grad():
            batched = model(inputs)
            single = torch.cat([model(inputs[i : i + 1]) for i in range(len(inputs))])
        assert torch.allclose(batched, single, atol=1e-5), official


def test_channel_order_matters(references):
    """Feeding BGR to the RGB model must move the angles: the flip is really inside the conversion."""
    outputs, _ = references
    model = load_official("300W_LP", "fsanet_capsule_3_16_2_21_5")
    face_bgr_as_is = torch.from_numpy(outputs["inputs_face"][:1]).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        wrong = model(face_bgr_as_is).numpy()
    expected = outputs["300W_LP/fsanet_capsule_3_16_2_21_5/face"][:1]
    assert np.abs(wrong - expected).max() > 0.1
