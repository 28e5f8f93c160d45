"""The authors' Keras ``.h5`` files of the two-stream models (FSA-Net, SSR-Net-MD), read **by layer name**.

The official files interleave the two streams (stream B's layer comes first at each depth), so position
means nothing; the names (Keras auto-naming in the training code) do. See
``../shared/docs/FSANET_ARCHITECTURE.md`` §7 and §10 for the table implemented here. Each family's module
maps its own heads (:mod:`~fsanet.models.families.fsanet`, :mod:`~fsanet.models.families.ssrnet_md`); the
shared backbone and stage fusions are mapped here.

The authors fed BGR images. The conversion reverses the input channels of the first separable block of
both streams, so converted models take RGB and no caller ever flips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from fsanet.errors import InvalidWeightsError

KerasLayers = dict[str, dict[str, np.ndarray]]  # {layer (or "submodel/layer"): {weight name: array}}

# Keras weight-file names: stream A blocks are separable_conv2d_1..7, stream B 8..14.
STREAM_BLOCKS = {"stream_a": range(1, 8), "stream_b": range(8, 15)}
STAGE_FUSION_CONVS = ((1, 2), (3, 4), (5, 6))  # (tanh conv on stream B, relu conv on stream A) per stage
FIRST_BLOCKS = (1, 8)  # the blocks that read the image: their input channels get BGR -> RGB


def read_h5_weights(path: str | Path) -> KerasLayers:
    """``{layer_name: {weight_name: array}}`` plus the sub-model each layer lives in under ``"/group"``.

    Handles both Keras layouts: ``submodel/layer/weight:0`` (FSA-Net, sub-models as groups)
    and ``layer/layer/weight:0`` (SSR-Net-MD). A layer name that appears in two sub-models (the
    noS files have ``dense_1`` in the F model only, others in the S model) is keyed
    ``submodel/layer``.
    """
    layers: KerasLayers = {}
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


def find(layers: KerasLayers, layer: str, group_prefix: str = "") -> dict[str, np.ndarray]:
    """The weights of ``layer``, in a sub-model whose name starts with ``group_prefix`` if given."""
    matches = [key for key in layers if key.rsplit("/", 1)[-1] == layer and key.startswith(group_prefix)]
    if len(matches) != 1:
        raise InvalidWeightsError(
            f"expected one layer {layer!r} under {group_prefix or 'any group'}, found {matches}"
        )
    return layers[matches[0]]


def tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def dense(prefix: str, weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": tensor(weights["kernel"].T), f"{prefix}.bias": tensor(weights["bias"])}


def conv1x1(prefix: str, weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": tensor(weights["kernel"].transpose(3, 2, 0, 1)),
        f"{prefix}.bias": tensor(weights["bias"]),
    }


def backbone(layers: KerasLayers, prefix: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    widths_per_level = (1, 2, 2, 2)
    for stream, numbers in STREAM_BLOCKS.items():
        positions = [(level, index) for level, count in enumerate(widths_per_level) for index in range(count)]
        for number, (level, index) in zip(numbers, positions, strict=True):
            block = f"{prefix}.{stream}.levels.{level}.{index}"
            conv = find(layers, f"separable_conv2d_{number}")
            bn = find(layers, f"batch_normalization_{number}")
            depthwise = conv["depthwise_kernel"].transpose(2, 3, 0, 1)  # (3,3,C,1) -> (C,1,3,3)
            pointwise = conv["pointwise_kernel"].transpose(3, 2, 0, 1)  # (1,1,C,O) -> (O,C,1,1)
            if number in FIRST_BLOCKS:  # BGR -> RGB, once, here
                depthwise, pointwise = depthwise[::-1], pointwise[:, ::-1]
            state[f"{block}.depthwise.weight"] = tensor(depthwise)
            state[f"{block}.pointwise.weight"] = tensor(pointwise)
            state[f"{block}.pointwise.bias"] = tensor(conv["bias"])
            state[f"{block}.bn.weight"] = tensor(bn["gamma"])
            state[f"{block}.bn.bias"] = tensor(bn["beta"])
            state[f"{block}.bn.running_mean"] = tensor(bn["moving_mean"])
            state[f"{block}.bn.running_var"] = tensor(bn["moving_variance"])
            state[f"{block}.bn.num_batches_tracked"] = torch.tensor(0)
    return state


def fusions(layers: KerasLayers, prefix: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for stage, (tanh_number, relu_number) in enumerate(STAGE_FUSION_CONVS):
        state |= conv1x1(f"{prefix}.{stage}.conv_tanh", find(layers, f"conv2d_{tanh_number}"))
        state |= conv1x1(f"{prefix}.{stage}.conv_relu", find(layers, f"conv2d_{relu_number}"))
    return state


def groups(path: str | Path) -> set[str] | None:
    """The top-level groups of an HDF5 file, or None when it is not one."""
    try:
        with h5py.File(path, "r") as handle:
            root = handle["model_weights"] if "model_weights" in handle else handle
            return set(root.keys())
    except OSError:
        return None


def finished(
    config: dict[str, Any],
    state: dict[str, torch.Tensor],
    path: str | Path,
    name: str | None,
    model_class: type,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config, state)`` named after ``name`` (else the file's stem) and its source, once every name and
    shape of ``state`` is checked against the model ``model_class`` builds (a wrong mapping cannot pass)."""
    config["name"] = name or Path(path).stem
    config["source"] = {"format": "keras-h5", "file": Path(path).name}
    with torch.device("meta"):
        expected = model_class(config).state_dict()
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise InvalidWeightsError(
            f"conversion mismatch: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise InvalidWeightsError(f"{key}: shape {tuple(value.shape)} != {tuple(expected[key].shape)}")
    return config, state
