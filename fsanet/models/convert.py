"""Keras ``.h5`` weights of the authors -> PyTorch state dicts, strictly **by layer name**.

The official files interleave the two streams (stream B's layer comes first at each depth),
so position means nothing; the names (Keras auto-naming in the training code) do. See
``../shared/docs/FSANET_ARCHITECTURE.md`` §7 and §10 for the table implemented here.

The authors fed BGR images. The conversion reverses the input channels of the first
separable block of both streams, so converted models take RGB and no caller ever flips.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from fsanet.errors import InvalidWeightsError
from fsanet.models.families.fsanet import fsanet_config
from fsanet.models.families.ssrnet_md import ssrnet_md_config
from fsanet.models.registry import build_model

# Keras weight-file names: stream A blocks are separable_conv2d_1..7, stream B 8..14.
STREAM_BLOCKS = {"stream_a": range(1, 8), "stream_b": range(8, 15)}
STAGE_FUSION_CONVS = ((1, 2), (3, 4), (5, 6))  # (tanh conv on stream B, relu conv on stream A) per stage
FIRST_BLOCKS = (1, 8)  # the blocks that read the image: their input channels get BGR -> RGB


def read_h5_weights(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``{layer_name: {weight_name: array}}`` plus the sub-model each layer lives in under ``"/group"``.

    Handles both Keras layouts: ``submodel/layer/weight:0`` (FSA-Net, sub-models as groups)
    and ``layer/layer/weight:0`` (SSR-Net-MD). A layer name that appears in two sub-models (the
    noS files have ``dense_1`` in the F model only, others in the S model) is keyed
    ``submodel/layer``.
    """
    layers: dict[str, dict[str, np.ndarray]] = {}
    try:
        with h5py.File(path, "r") as handle:
            datasets: list[tuple[str, np.ndarray]] = []
            handle.visititems(
                lambda name, obj: datasets.append((name, obj[()])) if isinstance(obj, h5py.Dataset) else None
            )
    except OSError as error:
        raise InvalidWeightsError(f"{path}: not a readable Keras HDF5 weight file ({error})") from error
    for name, value in datasets:
        parts = name.split("/")
        if len(parts) < 3:
            continue
        group, layer, weight = parts[0], parts[-2], parts[-1].removesuffix(":0")
        key = layer if group == layer else f"{group}/{layer}"
        layers.setdefault(key, {})[weight] = np.asarray(value)
    if not layers:
        raise InvalidWeightsError(f"{path}: no Keras layer weights found")
    return layers


def _find(
    layers: dict[str, dict[str, np.ndarray]], layer: str, group_prefix: str = ""
) -> dict[str, np.ndarray]:
    """The weights of ``layer``, in a sub-model whose name starts with ``group_prefix`` if given."""
    matches = [key for key in layers if key.rsplit("/", 1)[-1] == layer and key.startswith(group_prefix)]
    if len(matches) != 1:
        raise InvalidWeightsError(
            f"expected one layer {layer!r} under {group_prefix or 'any group'}, found {matches}"
        )
    return layers[matches[0]]


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _dense(prefix: str, weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": _tensor(weights["kernel"].T), f"{prefix}.bias": _tensor(weights["bias"])}


def _conv1x1(prefix: str, weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": _tensor(weights["kernel"].transpose(3, 2, 0, 1)),
        f"{prefix}.bias": _tensor(weights["bias"]),
    }


def _backbone(layers: dict[str, dict[str, np.ndarray]], prefix: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    widths_per_level = (1, 2, 2, 2)
    for stream, numbers in STREAM_BLOCKS.items():
        positions = [(level, index) for level, count in enumerate(widths_per_level) for index in range(count)]
        for number, (level, index) in zip(numbers, positions, strict=True):
            block = f"{prefix}.{stream}.levels.{level}.{index}"
            conv = _find(layers, f"separable_conv2d_{number}")
            bn = _find(layers, f"batch_normalization_{number}")
            depthwise = conv["depthwise_kernel"].transpose(2, 3, 0, 1)  # (3,3,C,1) -> (C,1,3,3)
            pointwise = conv["pointwise_kernel"].transpose(3, 2, 0, 1)  # (1,1,C,O) -> (O,C,1,1)
            if number in FIRST_BLOCKS:  # BGR -> RGB, once, here
                depthwise, pointwise = depthwise[::-1], pointwise[:, ::-1]
            state[f"{block}.depthwise.weight"] = _tensor(depthwise)
            state[f"{block}.pointwise.weight"] = _tensor(pointwise)
            state[f"{block}.pointwise.bias"] = _tensor(conv["bias"])
            state[f"{block}.bn.weight"] = _tensor(bn["gamma"])
            state[f"{block}.bn.bias"] = _tensor(bn["beta"])
            state[f"{block}.bn.running_mean"] = _tensor(bn["moving_mean"])
            state[f"{block}.bn.running_var"] = _tensor(bn["moving_variance"])
            state[f"{block}.bn.num_batches_tracked"] = torch.tensor(0)
    return state


def _fusions(layers: dict[str, dict[str, np.ndarray]], prefix: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for stage, (tanh_number, relu_number) in enumerate(STAGE_FUSION_CONVS):
        state |= _conv1x1(f"{prefix}.{stage}.conv_tanh", _find(layers, f"conv2d_{tanh_number}"))
        state |= _conv1x1(f"{prefix}.{stage}.conv_relu", _find(layers, f"conv2d_{relu_number}"))
    return state


def _layer_number(key: str) -> int:
    return int(re.search(r"_(\d+)$", key).group(1))


def _detect_fsanet_variant(layers: dict[str, dict[str, np.ndarray]]) -> tuple[str, str, int]:
    names = {key.rsplit("/", 1)[-1] for key in layers}
    groups = {key.split("/", 1)[0] for key in layers if "/" in key}
    if "caps" in names:
        aggregation, num_primcaps = "caps", _find(layers, "caps")["W"].shape[1]
    elif "net_vlad_1" in names:
        aggregation, num_primcaps = "netvlad", None
    elif "mat_mul_layer_2" in names:
        aggregation = "metric"
        num_primcaps = _find(layers, "mat_mul_layer_2")["kernel_type2"].shape[0]
    else:
        raise InvalidWeightsError("no capsule, NetVLAD or metric aggregation layer in the file")
    if "ssr_S_model" not in groups:
        scoring = "uniform"
    elif "conv2d_7" in names:
        scoring = "1x1"
    else:
        scoring = "var"
    if num_primcaps is None:
        num_primcaps = 192 if scoring == "uniform" else 21
    return aggregation, scoring, int(num_primcaps)


def convert_fsanet(
    layers: dict[str, dict[str, np.ndarray]],
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    aggregation, scoring, num_primcaps = _detect_fsanet_variant(layers)
    config = fsanet_config(aggregation, scoring)
    if config["num_primcaps"] != num_primcaps:
        raise InvalidWeightsError(f"{num_primcaps} primary capsules, expected {config['num_primcaps']}")
    state = _backbone(layers, "features.backbone") | _fusions(layers, "features.fusions")
    if scoring != "uniform":
        if scoring == "1x1":
            state |= _conv1x1("scoring.conv", _find(layers, "conv2d_7", "ssr_S_model"))
        state |= _dense("mapping.s_r", _find(layers, "dense_1", "ssr_S_model"))
        state |= _dense("mapping.s_l", _find(layers, "dense_2", "ssr_S_model"))
    if aggregation == "caps":
        state["aggregation.weight"] = _tensor(_find(layers, "caps")["W"])
    elif aggregation == "metric":
        state["aggregation.kernel_features"] = _tensor(_find(layers, "mat_mul_layer_1")["kernel_type1"])
        state["aggregation.kernel_capsules"] = _tensor(_find(layers, "mat_mul_layer_2")["kernel_type2"])
    else:
        vlad = _find(layers, "net_vlad_1")
        state["aggregation.cluster_weights"] = _tensor(vlad["kernel_W1"])
        state["aggregation.cluster_biases"] = _tensor(vlad["kernel_B1"])
        state["aggregation.cluster_centres"] = _tensor(vlad["kernel_W2"][0])
        state["aggregation.hidden"] = _tensor(vlad["kernel_H1"])
    # The F model's three p-heads are its dense layers in numbering order (dense_3..5, or dense_1..3 for noS).
    head_keys = sorted(
        (key for key in layers if key.startswith("ssr_F") and "/dense_" in key), key=_layer_number
    )
    if len(head_keys) != 3:
        raise InvalidWeightsError(f"expected 3 dense p-heads in the F model, found {head_keys}")
    for stage, key in enumerate(head_keys):
        prefix = f"heads.stages.{stage}"
        state |= _dense(f"{prefix}.p", layers[key])
        state |= _dense(f"{prefix}.delta", _find(layers, f"delta_s{stage + 1}"))
        state |= _dense(f"{prefix}.eta", _find(layers, f"local_delta_stage{stage + 1}"))
    return config, state


def convert_ssrnet_md(
    layers: dict[str, dict[str, np.ndarray]],
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    state = _backbone(layers, "backbone") | _fusions(layers, "fusions")
    for stage in range(3):
        prefix, first = f"heads.{stage}", 3 * stage + 1
        state |= _dense(f"{prefix}.delta_hidden", _find(layers, f"dense_{first}"))
        state |= _dense(f"{prefix}.eta_hidden", _find(layers, f"dense_{first + 1}"))
        state |= _dense(f"{prefix}.p", _find(layers, f"dense_{first + 2}"))
        state |= _dense(f"{prefix}.delta", _find(layers, f"delta_s{stage + 1}"))
        state |= _dense(f"{prefix}.eta", _find(layers, f"local_delta_stage{stage + 1}"))
    return ssrnet_md_config(), state


def _groups(path: str | Path) -> set[str] | None:
    """The top-level groups of an HDF5 file, or None when it is not one."""
    try:
        with h5py.File(path, "r") as handle:
            root = handle["model_weights"] if "model_weights" in handle else handle
            return set(root.keys())
    except OSError:
        return None


def is_fsanet_file(path: str | Path) -> bool:
    """Whether ``path`` is one of the authors' FSA-Net files (its G, S and F sub-models)."""
    return "ssr_G_model" in (_groups(path) or set())


def is_ssrnet_md_file(path: str | Path) -> bool:
    """Whether ``path`` is the authors' SSR-Net-MD file (its named delta layers, no FSA sub-models)."""
    groups = _groups(path)
    return groups is not None and "delta_s1" in groups and "ssr_G_model" not in groups


def convert_h5(path: str | Path, name: str | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read an official ``.h5`` and return ``(config, state_dict)`` for the matching PyTorch model.

    The variant is recognised from the layer names. The state dict is checked against the
    model the config builds (every name and shape), so a wrong mapping cannot pass silently.
    """
    layers = read_h5_weights(path)
    groups = {key.split("/", 1)[0] for key in layers if "/" in key}
    config, state = convert_fsanet(layers) if "ssr_G_model" in groups else convert_ssrnet_md(layers)
    config["name"] = name or Path(path).stem
    config["source"] = {"format": "keras-h5", "file": Path(path).name}
    model_state = build_model(config).state_dict()
    if set(model_state) != set(state):
        missing, unexpected = set(model_state) - set(state), set(state) - set(model_state)
        raise InvalidWeightsError(
            f"conversion mismatch: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    for key, tensor in state.items():
        if tensor.shape != model_state[key].shape:
            raise InvalidWeightsError(
                f"{key}: shape {tuple(tensor.shape)} != {tuple(model_state[key].shape)}"
            )
    return config, state
