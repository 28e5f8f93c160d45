"""WHENet (Zhou & Gregson, BMVC 2020) as a :class:`~fsanet.models.base.PoseModel`.

EfficientNet-B0 without top, global average pooling, and three linear heads of bin logits: yaw over the
full circle in 120 bins of 3 degrees, pitch and roll in 66 bins of 3 degrees (HopeNet's heads, with a wider
yaw). The angle is the softmax expectation of the bin index, ``yaw = 3 * E[i] - 180`` and
``pitch, roll = 3 * E[i] - 99`` (WHENet's own code, as
:func:`~fsanet.models.families.hopenet.bin_expectation`). The backbone is timm's ``tf_efficientnet_b0``:
TensorFlow's "same" padding on the stride-2 convolutions and BatchNorm eps 1e-3, as the Keras original
(either difference costs degrees).

Forward contract as every model here: raw RGB in [0, 255] at 224x224; the ``/255`` and ImageNet mean/std of
WHENet's pre-processing happen inside.

The weights come from the authors' Keras ``.h5``, mapped **by layer order** (:func:`convert_whenet_h5`). The
file's layer names are Keras auto-names (``conv2d_N``, ``depthwise_conv2d_N``, ``batch_normalization_N``,
numbered in creation order), so names say nothing about where a layer sits. The file lists its layers in the
model's order (``layer_names``), which is also the order in which timm's ``tf_efficientnet_b0`` registers its
convolutions and BatchNorms; the two sequences are zipped, each pair checked for kind and shape. The three
heads keep their own names (``yaw_new``, ``pitch_new``, ``roll_new``). Every tensor of the file must land in
exactly one model tensor and every model tensor must be filled exactly once; anything else raises
:class:`~fsanet.errors.InvalidWeightsError` naming the tensor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import torch
from torch import nn

from fsanet.data.recipes import register_box_rule, validated_recipe
from fsanet.errors import InvalidWeightsError
from fsanet.models.base import PoseModel
from fsanet.models.families.hopenet import bin_expectation
from fsanet.models.family import (
    Converter,
    ModelEntry,
    Pretrained,
    Reported,
    TrainingSet,
    WeightsFile,
    register_family,
)
from fsanet.models.imagenet import ImageNetConfig, Normalise, imagenet_fields

ARCHITECTURE = "whenet"
BACKBONE = "tf_efficientnet_b0"
IMAGE_SIZE = 224
FEATURES = 1280
YAW_BINS, PITCH_ROLL_BINS = 120, 66
YAW_OFFSET, PITCH_ROLL_OFFSET = 180.0, 99.0

PAPER = "Zhou & Gregson, WHENet: Real-time Fine-Grained Estimation for Wide Range Head Pose, BMVC 2020"
# The upstream repository's WHENet.h5 at a pinned commit (BSD-3-Clause, weights included).
DEFAULT_MIRROR = "https://github.com/Ascend-Research/HeadPoseEstimation-WHENet/raw/a0d7bdfb5e2ac97ae6b0ae3eef79fdcf4075ab82"
WEIGHTS = WeightsFile(
    "WHENet.h5",
    "8f8bcf924447f7126666cf2c725a633ec2b9ae06afa4699064d3242a02401f59",
    "WHENET_OFFICIAL_MIRROR",
    DEFAULT_MIRROR,
)
TRAINED_ON = TrainingSet(
    "300W-LP + CMU Panoptic", "protocol 1", "300W-LP + CMU Panoptic: ordinary photos", "many people, any yaw"
)
BOX_RULE = "whenet"
REPORTED = (
    Reported("aflw2000", "protocol 1", (5.11, 6.24, 4.92, 5.42), PAPER, "AFLW2000 comparison",
             "whenet.300w_lp_panoptic", "WHENet"),
    Reported("biwi", "protocol 1", (3.99, 4.39, 3.06, 3.81), PAPER, "BIWI comparison",
             "whenet.300w_lp_panoptic", "WHENet"),
)  # fmt: skip


def whenet_box(box: Sequence[float], frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """WHENet demo's padding of ``(x1, y1, x2, y2)``, as a slice ``image[y1:y2, x1:x2]``.

    Sequential as in the demo: each updated coordinate feeds the next one's padding; each is clipped to the
    image (``frame_size`` = (width, height)) and truncated with ``int()`` at the end.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = frame_size
    y1 = max(0.0, y1 - abs(y1 - y2) / 10)
    y2 = min(float(height), y2 + abs(y1 - y2) / 10)
    x1 = max(0.0, x1 - abs(x1 - x2) / 5)
    x2 = min(float(width), x2 + abs(x1 - x2) / 5)
    return int(x1), int(y1), int(x2), int(y2)


register_box_rule(BOX_RULE, whenet_box)

# WHENet's demo crop (``demo.py``): the detector box padded by a tenth of its height above and below and a
# fifth of its width left and right, sequentially, not squared, resized to 224x224 with cv2's linear filter.
WHENET_RECIPE = {
    "box": BOX_RULE,
    "size": IMAGE_SIZE,
    "interpolation": "linear",
    "color": "rgb",
    "minmax": False,
}


def whenet_config(**extra: Any) -> dict[str, Any]:
    """The config of WHENet: its heads, input size and pre-processing recipe."""
    return {
        "architecture": ARCHITECTURE,
        "name": "whenet",
        "method": "WHENet",
        "backbone": BACKBONE,
        "yaw_bins": YAW_BINS,
        "pitch_roll_bins": PITCH_ROLL_BINS,
        "image_size": IMAGE_SIZE,
        **imagenet_fields(),
        "preprocess": dict(WHENET_RECIPE),
        **extra,
    }


def _efficientnet(backbone: str) -> nn.Module:
    from fsanet.utils.torchvision_compat import ensure_torchvision

    ensure_torchvision()  # timm imports torchvision, whose native ops are missing on CPU wheels
    import timm

    # num_classes=0: timm's global average pooling and no classifier, the Keras model's "no top" + pooling.
    return timm.create_model(backbone, pretrained=False, num_classes=0)


class WHENetConfig(ImageNetConfig):
    architecture: Literal["whenet"]
    backbone: Literal["tf_efficientnet_b0"]
    yaw_bins: Literal[120]
    pitch_roll_bins: Literal[66]
    image_size: Literal[224]


# ------------------------------------------------------------------------------- the authors' file
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


@register_family(
    architecture=ARCHITECTURE,
    method="WHENet",
    schema=WHENetConfig,
    recipe=lambda config: validated_recipe(WHENET_RECIPE),
    models=(
        ModelEntry(
            "whenet",
            "WHENet",
            whenet_config,
            (Pretrained("300w_lp_panoptic", TRAINED_ON, "bsd-3-clause", file=WEIGHTS),),
            about="EfficientNet-B0 on 224x224 crops, yaw over the full circle",
        ),
    ),
    converter=Converter(is_whenet_file, convert_whenet_h5),
    paper=PAPER,
    tags=("head-pose-estimation", "whenet"),
    reported=REPORTED,
)
class WHENet(PoseModel):
    """EfficientNet-B0 + yaw/pitch/roll bin heads; ``forward`` returns ``(N, 3)`` degrees."""

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        if config["backbone"] != BACKBONE:  # the heads and the converter are EfficientNet-B0's
            raise ValueError(f"WHENet's backbone is {BACKBONE}, not {config['backbone']!r}")
        self.backbone = _efficientnet(config["backbone"])
        self.yaw = nn.Linear(FEATURES, int(config["yaw_bins"]))
        self.pitch = nn.Linear(FEATURES, int(config["pitch_roll_bins"]))
        self.roll = nn.Linear(FEATURES, int(config["pitch_roll_bins"]))
        self.normalise = Normalise(config)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three heads' bin logits for raw RGB ``x`` in [0, 255]."""
        features = self.backbone(self.normalise(x))
        return self.yaw(features), self.pitch(features), self.roll(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        yaw, pitch, roll = self.logits(x)
        return torch.stack(
            [
                bin_expectation(yaw, YAW_OFFSET),
                bin_expectation(pitch, PITCH_ROLL_OFFSET),
                bin_expectation(roll, PITCH_ROLL_OFFSET),
            ],
            dim=1,
        )
