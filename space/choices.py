"""What the pickers offer: only models that load and detectors that run here, each saying what it is for."""

from __future__ import annotations

from fsanet import list_models
from fsanet.detect.detectors import DEFAULT_DETECTOR, available_detectors
from fsanet.models.registry import describe, explain
from fsanet.pipeline.estimate import DEFAULT_MODEL

DETECTORS = {
    "blazeface_scan": "BlazeFace scan (default; MediaPipe; faces from ~45 px; runs in the Webcam page)",
    "mtcnn": "MTCNN (faces from 20 px; its weights: research use)",
    "haar": "OpenCV Haar cascade (fast, frontal faces only)",
    "ssd": "OpenCV SSD (the FSA-Net demo's detector)",
    "blazeface": "BlazeFace short range (MediaPipe; fast; faces within ~2 m; runs in the Webcam page)",
    "blazeface_full": "BlazeFace full range (MediaPipe; faces within ~5 m; runs in the Webcam page)",
}


def model_label(name: str) -> str:
    """The one label of a model choice (the registry's): ``"<model> · <trained on>: <what for>"``."""
    return describe(name)


def model_info() -> str:
    """The few words under each model picker: how to read a label, and where the longer story is."""
    return "Each label ends with the training data of its weights and what they suit. More: the About tab."


def models_about() -> str:
    """The longer story of the offered models, once for the page (in the About tab; the registry's words)."""
    return f"### The models\n{explain(list_models(pretrained=True))}"


def model_choices() -> list[tuple[str, str]]:
    """(label, name) of every listed pretrained model (unusable weights are not listed), the default first."""
    names = list_models(pretrained=True)
    ordered = [DEFAULT_MODEL] + [m for m in names if m != DEFAULT_MODEL]
    return [(model_label(name), name) for name in ordered]


def default_detector() -> str:
    """The pickers' detector (every tab's, the Webcam tab's in-page one too): the library's default where its
    weights are installed, else the first detector that works here."""
    available = available_detectors()
    return DEFAULT_DETECTOR if DEFAULT_DETECTOR in available else available[0]


def detector_choices() -> list[tuple[str, str]]:
    """(label, name) of the detectors available on this machine, the default first."""
    return [(DETECTORS.get(name, name), name) for name in available_detectors()]
