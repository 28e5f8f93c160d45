"""What the pickers offer: only models that load and detectors that run here, each saying what it is for."""

from __future__ import annotations

from fsanet import list_models
from fsanet.detect.detectors import available_detectors
from fsanet.pipeline.estimate import DEFAULT_MODEL

# Short enough that a chosen label shows in full in its dropdown (an <input>: one line, no wrapping),
# with what tells the versions of one architecture apart (the training data) at the end.
ARCHITECTURES = {
    "fsanet_fusion": "FSA-Net fusion",
    "fsanet_caps_1x1": "FSA-Net caps 1x1",
    "fsanet_caps_var": "FSA-Net caps var",
    "fsanet_caps_uniform": "FSA-Net caps uniform",
    "fsanet_metric_1x1": "FSA-Net metric 1x1",
    "fsanet_metric_var": "FSA-Net metric var",
    "fsanet_metric_uniform": "FSA-Net metric uniform",
    "fsanet_netvlad_1x1": "FSA-Net NetVLAD 1x1",
    "fsanet_netvlad_var": "FSA-Net NetVLAD var",
    "fsanet_netvlad_uniform": "FSA-Net NetVLAD uniform",
    "ssrnet_md": "SSR-Net-MD",
    "whenet": "WHENet",
}
TRAINED_ON = {
    "300w_lp": "300W-LP: ordinary photos",
    "biwi": "BIWI: lab footage only",
    "300w_lp_panoptic": "300W-LP + CMU Panoptic: ordinary photos",
}
# The longer story, shown under the model picker.
MODEL_INFO = (
    "300W-LP: many people, poses up to ±90°. BIWI: 24 people in one lab; on ordinary photos its yaw can be "
    "far off. Fusion: the 3 capsule models averaged (the paper's best); caps/metric/NetVLAD: aggregation, "
    "1x1/var/uniform: scoring; SSR-Net-MD: smaller, less accurate; WHENet: 224x224 crops, yaw over the "
    "full circle."
)
DETECTORS = {
    "mtcnn": "MTCNN (default; turned and small faces)",
    "haar": "OpenCV Haar cascade (fast, frontal faces only)",
    "ssd": "OpenCV SSD (the FSA-Net demo's detector)",
}


def model_label(name: str) -> str:
    """``"<architecture> · <trained on>: <what for>"`` for a ``name.tag``: the one label of a model choice."""
    architecture, _, tag = name.partition(".")
    parts = [ARCHITECTURES.get(architecture, architecture), TRAINED_ON.get(tag, tag)]
    return " · ".join(p for p in parts if p)


def model_choices() -> list[tuple[str, str]]:
    """(label, name) of every listed pretrained model (unusable weights are not listed), the default first."""
    names = list_models(pretrained=True)
    ordered = [DEFAULT_MODEL] + [m for m in names if m != DEFAULT_MODEL]
    return [(model_label(name), name) for name in ordered]


def detector_choices() -> list[tuple[str, str]]:
    """(label, name) of the detectors available on this machine, the default first."""
    return [(DETECTORS.get(name, name), name) for name in available_detectors()]
