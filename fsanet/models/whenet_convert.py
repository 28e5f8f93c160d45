"""WHENet's Keras ``.h5`` -> the :class:`~fsanet.models.families.whenet.WHENet` state dict, by layer order.

The file's layer names are Keras auto-names (``conv2d_N``, ``depthwise_conv2d_N``, ``batch_normalization_N``,
numbered in creation order), so names say nothing about where a layer sits. The file lists its layers in the
model's order (``layer_names``), which is also the order in which timm's ``tf_efficientnet_b0`` registers
its convolutions and BatchNorms; the two sequences are zipped, each pair checked for kind and shape. The
three heads keep their own names (``yaw_new``, ``pitch_new``, ``roll_new``). Every tensor of the file must
land in exactly one model tensor and every model tensor must be filled exactly once; anything else raises
:class:`~fsanet.errors.InvalidWeightsError` naming the tensor.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from fsanet.errors import InvalidWeightsError
from fsanet.models.families.whenet import WHENet, whenet_config

KerasLayer = tuple[str, dict[str, np.ndarray]]  # (layer name, {weight name: array})
HEADS = {"yaw_new": "yaw", "pitch_new": "pitch", "roll_new": "roll"}
BN_WEIGHTS = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def read_keras_layers(path: str | Path) -> list[KerasLayer]:
    """The layers that hold weights, in the file's (the model's) order, with their arrays by short name."""
    try:
        with h5py.File(path, "r") as handle:
            root = handle["model_weights"] if "model_weights" in handle else handle
            layers = []
            for raw in root.attrs["layer_names"]:
                name = raw.decode() if isinstance(raw, bytes) else str(raw)
                group = root[name]
                weights = {}
                for raw_weight in group.attrs["weight_names"]:
                    weight = raw_weight.decode() if isinstance(raw_weight, bytes) else str(raw_weight)
                    weights[weight.rsplit("/", 1)[-1].removesuffix(":0")] = np.asarray(group[weight][()])
                if weights:
                    layers.append((name, weights))
    except (OSError, KeyError) as error:
        raise InvalidWeightsError(f"{path}: not a readable Keras HDF5 weight file ({error})") from error
    return layers


def _kind(layer_name: str) -> str:
    for prefix in ("depthwise_conv2d", "conv2d", "batch_normalization"):
        if layer_name.startswith(prefix + "_"):
            return prefix
    return layer_name


def _module_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Conv2d):
        is_depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
        return "depthwise_conv2d" if is_depthwise else "conv2d"
    if isinstance(module, nn.BatchNorm2d):
        return "batch_normalization"
    return None


def _converted(kind: str, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Keras arrays -> PyTorch layouts, keyed by the PyTorch parameter name."""
    if kind == "conv2d":  # (kh, kw, in, out) -> (out, in, kh, kw)
        out = {"weight": weights["kernel"].transpose(3, 2, 0, 1)}
    elif kind == "depthwise_conv2d":  # (kh, kw, C, 1) -> (C, 1, kh, kw)
        out = {"weight": weights["depthwise_kernel"].transpose(2, 3, 0, 1)}
    elif kind == "batch_normalization":
        return {ours: weights[theirs] for theirs, ours in BN_WEIGHTS.items()}
    else:  # dense: (in, out) -> (out, in)
        out = {"weight": weights["kernel"].T}
    if "bias" in weights:
        out["bias"] = weights["bias"]
    return out


def _source_names(layer: KerasLayer) -> list[str]:
    return [f"{layer[0]}/{weight}" for weight in layer[1]]


def convert_whenet_layers(
    layers: list[KerasLayer], config: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(config, state_dict)`` from WHENet's Keras layers in file order; fails loudly on any mismatch."""
    config = config or whenet_config()
    with torch.device("meta"):  # names, kinds and shapes only
        skeleton = WHENet(config)
    targets = [(name, module) for name, module in skeleton.backbone.named_modules() if _module_kind(module)]
    heads = {layer[0]: layer for layer in layers if layer[0] in HEADS}
    backbone_layers = [layer for layer in layers if layer[0] not in HEADS]

    used = Counter(source for layer in layers for source in _source_names(layer))
    reused = sorted(source for source, count in used.items() if count > 1)
    if reused:
        raise InvalidWeightsError(f"Keras tensors listed more than once (reused): {reused[:5]}")
    if len(backbone_layers) != len(targets):
        extra = backbone_layers[len(targets) :] or targets[len(backbone_layers) :]
        raise InvalidWeightsError(
            f"{len(backbone_layers)} Keras backbone layers for {len(targets)} EfficientNet-B0 layers; "
            f"left over: {[name for name, _ in extra][:5]}"
        )
    missing_heads = sorted(set(HEADS) - set(heads))
    if missing_heads:
        raise InvalidWeightsError(f"the file has no head layer(s) {missing_heads}")

    expected = skeleton.state_dict()
    state: dict[str, torch.Tensor] = {}
    pairs = [
        (f"backbone.{name}", _module_kind(module), layer)
        for (name, module), layer in zip(targets, backbone_layers, strict=True)
    ]
    pairs += [(HEADS[name], "dense", heads[name]) for name in HEADS]
    for prefix, kind, (layer_name, weights) in pairs:
        if kind != "dense" and _kind(layer_name) != kind:
            raise InvalidWeightsError(f"{layer_name} is not a {kind} layer, but it sits where {prefix} does")
        try:
            converted = _converted(kind, weights)
        except KeyError as error:
            raise InvalidWeightsError(f"{layer_name} lacks the weight {error}") from error
        if len(converted) != len(weights):
            raise InvalidWeightsError(f"{layer_name}: tensors {sorted(weights)} left over for {prefix}")
        for parameter, array in converted.items():
            key = f"{prefix}.{parameter}"
            if key not in expected:
                raise InvalidWeightsError(f"{layer_name}: the model has no tensor {key} for it")
            if key in state:
                raise InvalidWeightsError(f"{key} filled twice (from {layer_name})")
            if tuple(array.shape) != tuple(expected[key].shape):
                needed = tuple(expected[key].shape)
                raise InvalidWeightsError(f"{layer_name} -> {key}: shape {array.shape}, model needs {needed}")
            state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    for key, value in expected.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=value.dtype)
    unfilled = sorted(set(expected) - set(state))
    if unfilled:
        raise InvalidWeightsError(f"model tensors the file does not fill: {unfilled[:5]}")
    return config, state


def is_whenet_file(path: str | Path) -> bool:
    """Whether a Keras weight file holds WHENet (its three named heads), rather than an FSA-Net model."""
    try:
        with h5py.File(path, "r") as handle:
            root = handle["model_weights"] if "model_weights" in handle else handle
            return set(HEADS) <= set(root.keys())
    except OSError:
        return False  # not HDF5: the FSA-Net converter reports it


def convert_whenet_h5(
    path: str | Path, name: str | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """WHENet's ``.h5`` file -> ``(config, state_dict)``."""
    config, state = convert_whenet_layers(read_keras_layers(path))
    config["name"] = name or "whenet"
    config["source"] = {"format": "keras-h5", "file": Path(path).name}
    return config, state
