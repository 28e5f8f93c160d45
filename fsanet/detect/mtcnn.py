"""MTCNN face detection (Zhang et al., 2016): the cascade, run fast, on the weights facenet-pytorch ships.

facenet-pytorch 2.5.3 carries the P-, R- and O-net weights (converted from the authors' Caffe
models) inside its wheel, which makes MTCNN a detector that works offline with nothing to fetch.
Its ``detect_face`` spends most of its ~80 ms on a 640x480 photo in overhead: one P-net call per
pyramid level, one resampling call per candidate box, max-pooling in the NCHW layout. This module
runs the same cascade (same pyramid, thresholds, suppression rules and box regression) in under
half the time (640x480: 75 -> 35 ms; 1280x720 with five faces: 215 -> 100 ms):

* the pyramid levels are packed into one canvas and the P-net runs over it in strips. Its
  receptive field is 12 pixels at stride 2, so an output cell whose window lies inside one level
  sees only that level (levels sit at even offsets). facenet's ``ceil_mode`` pooling adds, on
  odd-sized levels, a last row or column of cells whose window overhangs the level by a pixel;
  those are skipped;
* channels-last tensors: oneDNN's native layout, with 3x faster pooling;
* the R- and O-net crops are resampled by OpenCV (``INTER_AREA``, like torch's ``area`` mode when
  shrinking) and suppression runs in NumPy.

On CPU with onnxruntime installed (``auto``, the default; ``engine=`` or ``FSANET_ENGINE`` choose) the
three nets are exported to ONNX once (cached by the weights' sha256) and run by ONNX Runtime, taking the
channels-last crops as they are. Two rewrites, exact in real arithmetic, make them faster there than
torch's oneDNN channels-last kernels:

* PReLU as ``a*y + (1-a)*relu(y)``, with the products as BatchNormalization nodes: ONNX Runtime's own
  PReLU kernel took half of each net's time, and between its blocked-layout convolutions forced two
  layout reorders per activation, while BatchNormalization and ReLU stay in that layout;
* the P-net's face probability as ``sigmoid(l1 - l0)`` rather than a softmax over the channel axis
  (torch computes it so too).

Measured interleaved in one process on the quiet 2-core CPU: P-net strip (126x770) 4.5 -> 2.9 ms
(torch 2.8), R-net on 256 crops 11.1 -> 6.4 ms (torch 7.0), O-net on 37 crops 7.4 -> 4.3 ms (torch 4.9).

``tests/test_mtcnn.py`` checks boxes, scores and landmarks against facenet-pytorch's own MTCNN, and the
ONNX Runtime cascade against the torch one.
Only facenet-pytorch's weight files are read, with ``torch.load(weights_only=True)``: they belong to
an installed package and are never a user's file. Detection therefore needs no torchvision.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from fsanet.errors import WeightsUnavailableError
from fsanet.models.layers import prelu_as_batch_norm
from fsanet.runtime.onnx_engine import INPUT_NAME, cached_session, choose_engine, onnx_bytes
from fsanet.runtime.optimize import tune_allocator
from fsanet.utils.boxes import nms
from fsanet.utils.files import sha256_file

CELL, STRIDE = 12, 2  # the P-net's receptive field and stride, in pixels
STRIP_PIXELS = 100_000  # input pixels per P-net call: larger activations fall out of cache
# Crops per R-net / O-net call, per engine: the fastest on the quiet 2-core CPU for 320 R-net and 64 O-net
# crops (ms, chunk 16/64/128/256) R-net torch 20.7/9.4/7.4/9.1, onnx 8.3/6.2/6.8/8.0; O-net torch
# 10.3/8.6/8.5/8.6, onnx 6.0/7.6/7.6/7.5.
CHUNKS = {"torch": {"rnet": 128, "onet": 128}, "onnx": {"rnet": 64, "onet": 16}}


def _caffe_flatten(x: torch.Tensor) -> torch.Tensor:
    """Flatten ``(N, C, H, W)`` in the (W, H, C) order the converted Caffe dense layers expect."""
    return x.permute(0, 3, 2, 1).flatten(1)  # not reshape(len(x), -1): that fixes the exported batch size


class PNet(nn.Module):
    """Proposal net: fully convolutional; per 12x12 window, a face probability and a box offset."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        logits = self.conv4_1(x)  # softmax(l)[1] = sigmoid(l1 - l0), without a reduction over channels
        return torch.sigmoid(logits[:, 1] - logits[:, 0]), self.conv4_2(x)


class RNet(nn.Module):
    """Refinement net on 24x24 crops: face probability and box offset."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(_caffe_flatten(x)))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48x48 crops: face probability, box offset and five landmarks."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(_caffe_flatten(x)))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def weights_file(name: str) -> Path:
    """``pnet.pt``, ``rnet.pt`` or ``onet.pt`` inside the installed facenet-pytorch (not imported)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.pt"
    if path is None or not path.is_file():
        raise WeightsUnavailableError(
            "the MTCNN detector reads its weights from the facenet-pytorch package: "
            "pip install facenet-pytorch==2.5.3 (or choose the ssd or haar detector)"
        )
    return path


# A net as the cascade calls it: normalised ``(N, H, W, 3)`` float32 in, its outputs as NumPy arrays.
NetRunner = Callable[[np.ndarray], list[np.ndarray]]
# Part of the cached graphs' key: a new form of the exported nets (e.g. the PReLU rewrite) is exported again.
EXPORT_FORM = "prelu-bn"
NET_OUTPUTS = {"pnet": ["prob", "offset"], "rnet": ["prob", "offset"], "onet": ["prob", "offset", "points"]}


def _load(net: nn.Module, name: str) -> nn.Module:
    net.load_state_dict(torch.load(weights_file(name), map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


def _torch_runner(net: nn.Module, device: str) -> NetRunner:
    net = net.to(device, memory_format=torch.channels_last)

    def run(batch: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():  # NHWC permuted to NCHW is a channels-last tensor: no copy
            outputs = net(torch.from_numpy(batch).to(device).permute(0, 3, 1, 2))
        return [output.cpu().numpy() for output in outputs]

    return run


class _PReLUAsBatchNorm(nn.Module):
    """A PReLU's slope run as :func:`~fsanet.models.layers.prelu_as_batch_norm` (see the module docstring)."""

    def __init__(self, prelu: nn.PReLU):
        super().__init__()
        self.register_buffer("slope", prelu.weight.detach())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return prelu_as_batch_norm(y, self.slope)


def _for_onnx(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with its PReLUs as :class:`_PReLUAsBatchNorm`."""
    net = copy.deepcopy(net)
    for name, child in net.named_children():
        if isinstance(child, nn.PReLU):
            setattr(net, name, _PReLUAsBatchNorm(child))
    return net


class _ChannelsLastInput(nn.Module):
    """The net taking ``(N, H, W, 3)``: ONNX Runtime's layout optimiser absorbs the transpose."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net(x.permute(0, 3, 1, 2))


def _onnx_runner(net: nn.Module, name: str) -> NetRunner:
    outputs = NET_OUTPUTS[name]
    side = {"pnet": 12, "rnet": 24, "onet": 48}[name]
    axes = {0: "batch", 1: "height", 2: "width"} if name == "pnet" else {0: "batch"}
    key = f"mtcnn-{name}-{EXPORT_FORM}-{sha256_file(weights_file(name))}"
    session = cached_session(
        key,
        lambda: onnx_bytes(
            _ChannelsLastInput(_for_onnx(net)),
            torch.zeros(2, side, side, 3),
            outputs,
            {INPUT_NAME: axes, **{output: {0: "batch"} for output in outputs}},
            {"fsanet.name": key},
        ),
        {"fsanet.name": key},
        outputs,
    )
    return lambda batch: session.run(outputs, {INPUT_NAME: batch})


def pack_levels(sizes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """Top-left corners ``(y, x)`` of ``(height, width)`` blocks on one canvas, and the canvas size.

    First-fit shelves as wide as the first (largest) block; sizes must be even, so every corner is.
    """
    width = sizes[0][1]
    shelves: list[list[int]] = []  # [top, height, used width]
    corners = []
    for height, level_width in sizes:
        shelf = next((s for s in shelves if height <= s[1] and s[2] + level_width <= width), None)
        if shelf is None:
            shelf = [sum(s[1] for s in shelves), height, 0]
            shelves.append(shelf)
        corners.append((shelf[0], shelf[2]))
        shelf[2] += level_width
    return corners, (sum(s[1] for s in shelves), width)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Boxes grown to squares about their centres (MTCNN's ``rerec``)."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    out = boxes.copy()
    out[:, 0] += (width - side) / 2
    out[:, 1] += (height - side) / 2
    out[:, 2:4] = out[:, 0:2] + side[:, None]
    return out


def _regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply the nets' box offsets, in units of the (inclusive) box size (MTCNN's ``bbreg``)."""
    size = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1] * 2, axis=1)
    out = boxes.copy()
    out[:, :4] += offsets * size
    return out


def _resample(pixels: np.ndarray, levels: list[tuple[float, int, int]]) -> list[np.ndarray]:
    """The pyramid images. Area resampling costs in proportion to the source, so levels at half the
    scale or less are taken from an image halved (exact 2x2 means) as often as that allows."""
    images, source, source_scale = [], pixels, 1.0
    for scale, height, width in levels:
        while scale <= source_scale / 2 and min(source.shape[:2]) >= 2:
            half = (source.shape[1] // 2, source.shape[0] // 2)
            source, source_scale = cv2.resize(source, half, interpolation=cv2.INTER_AREA), source_scale / 2
        images.append(cv2.resize(source, (width, height), interpolation=cv2.INTER_AREA))
    return images


def _no_faces() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))


def _normalise(pixels: np.ndarray) -> np.ndarray:
    return (pixels - 127.5) * 0.0078125


class MTCNN:
    """The three-stage cascade on one RGB image; :meth:`detect` returns boxes, scores and landmarks."""

    def __init__(
        self,
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        device: str = "cpu",
        engine: str | None = None,
    ):
        self.min_face_size, self.thresholds, self.factor = min_face_size, thresholds, factor
        self.device = device
        self.engine = choose_engine(engine, torch.device(device))
        tune_allocator()
        nets = zip(NET_OUTPUTS, (PNet, RNet, ONet), strict=True)
        self.nets = {name: _load(net(), name) for name, net in nets}
        runners = {
            name: _onnx_runner(net, name) if self.engine == "onnx" else _torch_runner(net, device)
            for name, net in self.nets.items()
        }
        self.pnet, self.rnet, self.onet = runners["pnet"], runners["rnet"], runners["onet"]
        self.chunks = CHUNKS[self.engine]

    def pyramid(self, height: int, width: int) -> list[tuple[float, int, int]]:
        """``(scale, level height, level width)`` from ``12 / min_face_size`` down to 12 pixels."""
        scale, side, levels = CELL / self.min_face_size, min(height, width) * CELL / self.min_face_size, []
        while side >= CELL:
            levels.append((scale, int(height * scale + 1), int(width * scale + 1)))
            scale, side = scale * self.factor, side * self.factor
        return levels

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes ``(N, 4)`` as ``x1, y1, x2, y2``, scores ``(N,)``, landmarks ``(N, 5, 2)``; RGB uint8 in."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"MTCNN needs an RGB image of shape (H, W, 3), not {image.shape}")
        pixels = np.ascontiguousarray(image, dtype=np.float32)
        boxes = self._propose(pixels)
        if len(boxes):
            boxes = self._refine(pixels, boxes)
        if len(boxes):
            return self._finish(pixels, boxes)
        return _no_faces()

    def _propose(self, pixels: np.ndarray) -> np.ndarray:
        """Stage 1: the P-net over the packed pyramid; rows ``x1, y1, x2, y2, score``, squared."""
        levels = self.pyramid(*pixels.shape[:2])
        if not levels:
            return np.zeros((0, 5), np.float32)
        # Corners must be even to keep the cells of every level on the canvas's grid.
        corners, (canvas_h, canvas_w) = pack_levels([(h + h % 2, w + w % 2) for _, h, w in levels])
        canvas = np.zeros((canvas_h, canvas_w, 3), np.float32)
        for image, (y, x) in zip(_resample(pixels, levels), corners, strict=True):
            canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
        probs, offsets = self._pnet_in_strips(_normalise(canvas[None]))
        candidates = []
        for (scale, h, w), (y, x) in zip(levels, corners, strict=True):
            rows = slice(y // STRIDE, y // STRIDE + (h - CELL) // STRIDE + 1)
            cols = slice(x // STRIDE, x // STRIDE + (w - CELL) // STRIDE + 1)
            cell_y, cell_x = np.nonzero(probs[rows, cols] >= self.thresholds[0])
            if not len(cell_y):
                continue
            origin = np.stack([cell_x, cell_y], axis=1) * STRIDE
            found = np.concatenate(
                [
                    np.floor((origin + 1) / scale),
                    np.floor((origin + CELL) / scale),
                    probs[rows, cols][cell_y, cell_x, None],
                    offsets[:, rows, cols][:, cell_y, cell_x].T,
                ],
                axis=1,
            )
            candidates.append(found[nms(found[:, :4], found[:, 4], 0.5)])
        if not candidates:
            return np.zeros((0, 5), np.float32)
        found = np.concatenate(candidates)
        found = found[nms(found[:, :4], found[:, 4], 0.7)]
        # P-net offsets are in units of the exclusive box size, unlike the later stages'.
        size = np.stack([found[:, 2] - found[:, 0], found[:, 3] - found[:, 1]] * 2, axis=1)
        boxes = np.concatenate([found[:, :4] + found[:, 5:9] * size, found[:, 4:5]], axis=1)
        return _square(boxes)

    def _pnet_in_strips(self, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The P-net over horizontal strips of the normalised ``(1, H, W, 3)`` canvas: the same cells (each
        sees only its own 12 rows), but activations small enough to stay in cache; 2x faster than one
        call on a 640x480 photo's canvas."""
        cells = (canvas.shape[1] - CELL) // STRIDE + 1
        per_strip = max(8, (STRIP_PIXELS // canvas.shape[2] - CELL) // STRIDE)
        probs, offsets = [], []
        for row in range(0, cells, per_strip):
            count = min(per_strip, cells - row)
            strip = canvas[:, STRIDE * row : STRIDE * (row + count - 1) + CELL]
            strip_probs, strip_offsets = self.pnet(strip)
            probs.append(strip_probs[0])
            offsets.append(strip_offsets[0])
        return np.concatenate(probs, axis=0), np.concatenate(offsets, axis=1)

    def _crops(self, pixels: np.ndarray, boxes: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes clipped to the image (MTCNN's ``pad``), resampled to ``side``; and which boxes had pixels."""
        height, width = pixels.shape[:2]
        corners = np.trunc(boxes[:, :4]).astype(np.int64)
        x1, y1 = np.maximum(corners[:, 0], 1) - 1, np.maximum(corners[:, 1], 1) - 1
        x2, y2 = np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)
        valid = (x2 > x1) & (y2 > y1)
        crops = np.empty((int(valid.sum()), side, side, 3), np.float32)
        for k, i in enumerate(np.flatnonzero(valid)):
            crop = pixels[y1[i] : y2[i], x1[i] : x2[i]]
            crops[k] = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
        return crops, valid

    def _forward(self, net: NetRunner, chunk: int, crops: np.ndarray) -> list[np.ndarray]:
        """``net`` on the crops in chunks (a cluttered photo can have thousands of candidates)."""
        outputs = [net(_normalise(part)) for part in np.split(crops, range(chunk, len(crops), chunk))]
        return [np.concatenate(parts) for parts in zip(*outputs, strict=True)]

    def _refine(self, pixels: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: the R-net rescores and regresses 24x24 crops; survivors squared."""
        crops, valid = self._crops(pixels, boxes, 24)
        if not len(crops):
            return np.zeros((0, 5))
        probs, offsets = self._forward(self.rnet, self.chunks["rnet"], crops)
        keep = probs > self.thresholds[1]
        boxes = np.concatenate([boxes[valid][keep, :4], probs[keep, None]], axis=1)
        offsets = offsets[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return _square(_regress(boxes[pick], offsets[pick]))

    def _finish(self, pixels: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 3: the O-net on 48x48 crops gives final scores, boxes and landmarks."""
        crops, valid = self._crops(pixels, boxes, 48)
        if not len(crops):
            return _no_faces()
        probs, offsets, points = self._forward(self.onet, self.chunks["onet"], crops)
        keep = probs > self.thresholds[2]
        boxes = np.concatenate([boxes[valid][keep, :4], probs[keep, None]], axis=1)
        size = boxes[:, 2:4] - boxes[:, 0:2] + 1
        landmarks = np.stack([points[keep, :5] * size[:, :1], points[keep, 5:] * size[:, 1:]], axis=2) + (
            boxes[:, None, 0:2] - 1
        )
        boxes = _regress(boxes, offsets[keep])
        # The last suppression compares with the smaller box, areas counted inclusively (+1).
        pick = nms(boxes[:, :4] + [0, 0, 1, 1], boxes[:, 4], 0.7, overlap="min")
        return boxes[pick, :4], boxes[pick, 4], landmarks[pick]


def shared_mtcnn(device: str = "cpu", min_face_size: int = 20, engine: str | None = None) -> MTCNN:
    """One cascade per device, minimum face size and engine (default: as :func:`choose_engine`), loaded
    once per process."""
    if min_face_size < 1:
        raise ValueError(f"min_face_size must be a positive number of pixels, not {min_face_size}")
    return _shared_mtcnn(device, min_face_size, choose_engine(engine, torch.device(device)))


@functools.cache
def _shared_mtcnn(device: str, min_face_size: int, engine: str) -> MTCNN:
    return MTCNN(min_face_size=min_face_size, device=device, engine=engine)
