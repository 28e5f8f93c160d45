"""What the pickers offer: only models that load and detectors that run here, each saying what it is for."""

from __future__ import annotations

from fsanet import list_models
from fsanet.detect.detectors import DEFAULT_DETECTOR, available_detectors
from fsanet.pipeline.estimate import DEFAULT_MODEL

ARCHITECTURES = {
    "fsanet_fusion": "FSA-Net fusion (the 3 capsule models averaged; the paper's best)",
    "fsanet_caps_1x1": "FSA-Net capsule, 1x1 scoring",
    "fsanet_caps_var": "FSA-Net capsule, variance scoring",
    "fsanet_caps_uniform": "FSA-Net capsule, uniform scoring",
    "fsanet_metric_1x1": "FSA-Net metric, 1x1 scoring",
    "fsanet_metric_var": "FSA-Net metric, variance scoring",
    "fsanet_metric_uniform": "FSA-Net metric, uniform scoring",
    "fsanet_netvlad_1x1": "FSA-Net NetVLAD, 1x1 scoring",
    "fsanet_netvlad_var": "FSA-Net NetVLAD, variance scoring",
    "fsanet_netvlad_uniform": "FSA-Net NetVLAD, uniform scoring",
    "ssrnet_md": "SSR-Net-MD (smaller, less accurate)",
    "whenet": "WHENet (EfficientNet-B0 on 224x224 crops; yaw over the full circle)",
}
TRAINED_ON = {
    "300w_lp": "trained on 300W-LP (many people, poses up to ±90°): use for ordinary photos",
    "biwi": "trained on BIWI (24 people in one lab): for BIWI-like footage; far off on ordinary photos",
    "300w_lp_panoptic": "trained on 300W-LP + CMU Panoptic (many people, any yaw): use for ordinary photos",
}
DETECTORS = {
    "mtcnn": "MTCNN (default; turned and small faces)",
    "haar": "OpenCV Haar cascade (fast, frontal faces only)",
    "ssd": "OpenCV SSD (the FSA-Net demo's detector)",
    "blazeface": "BlazeFace short range (MediaPipe; fast; faces within ~2 m; runs in the Webcam page)",
    "blazeface_full": "BlazeFace full range (MediaPipe; faces within ~5 m; runs in the Webcam page)",
}
# The Webcam tab's default: it runs in the page (space/inpage.py); the other detectors stream to the server.
WEBCAM_DETECTOR = "blazeface"


def model_label(name: str) -> str:
    """``"<architecture> — <what it was trained on and when to use it>"`` for a ``name.tag``."""
    architecture, _, tag = name.partition(".")
    parts = [ARCHITECTURES.get(architecture, architecture), TRAINED_ON.get(tag, tag)]
    return " — ".join(p for p in parts if p)


def model_choices() -> list[tuple[str, str]]:
    """(label, name) of every listed pretrained model (unusable weights are not listed), the default first."""
    names = list_models(pretrained=True)
    ordered = [DEFAULT_MODEL] + [m for m in names if m != DEFAULT_MODEL]
    return [(model_label(name), name) for name in ordered]


def webcam_detector() -> str:
    """The Webcam tab's default detector: BlazeFace where its weights are installed, else the default."""
    return WEBCAM_DETECTOR if WEBCAM_DETECTOR in available_detectors() else DEFAULT_DETECTOR


def detector_choices() -> list[tuple[str, str]]:
    """(label, name) of the detectors available on this machine, the default first."""
    return [(DETECTORS.get(name, name), name) for name in available_detectors()]
