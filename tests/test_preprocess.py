"""The official demo preprocessing, against the crops the authors' pipeline produced."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from fsanet.data.preprocess import (
    crop_resize,
    expand_box,
    minmax_normalize,
    preprocess_face,
    to_batch,
    xyxy_to_xywh,
)
from tests.conftest import REFERENCE, require_shared


@pytest.fixture(scope="module")
def reference():
    return np.load(require_shared(REFERENCE / "reference_outputs.npz"))


def test_margin_box_matches_the_demo(reference):
    image = skimage.data.astronaut()
    box = expand_box(reference["face_box_xywh"], (image.shape[1], image.shape[0]))
    assert box == tuple(int(v) for v in reference["face_crop_xyxy_inclusive"])


def test_crop_resize_within_one_grey_level(reference):
    image = skimage.data.astronaut()
    box = expand_box(reference["face_box_xywh"], (image.shape[1], image.shape[0]))
    ours = crop_resize(image, box).astype(int)
    official_rgb = reference["face_crops_resized_uint8_before_minmax"][0][..., ::-1].astype(int)
    assert np.abs(ours - official_rgb).max() <= 1


def test_full_preprocessing_matches_model_input(reference):
    face = preprocess_face(skimage.data.astronaut(), reference["face_box_xywh"])
    official_rgb = reference["inputs_face"][0][..., ::-1]
    assert face.dtype == np.float32 and face.shape == (64, 64, 3)
    assert np.abs(face - official_rgb).max() <= 255 / 254  # one grey level, stretched


def test_box_is_clipped_and_inclusive():
    assert expand_box((0, 0, 10, 10), (12, 12)) == (0, 0, 11, 11)
    assert expand_box((5, 5, 10, 20), (100, 100)) == (0, 0, 21, 37)
    assert xyxy_to_xywh((1, 2, 11, 32)) == (1, 2, 10, 30)
    crop = crop_resize(np.arange(12 * 12 * 3, dtype=np.uint8).reshape(12, 12, 3), (0, 0, 11, 11), size=12)
    assert crop.shape == (12, 12, 3)  # the whole image: the end bound is inclusive


def test_minmax_and_batch_layout():
    face = np.full((64, 64, 3), 7, np.uint8)
    assert not minmax_normalize(face).any()  # flat crop -> zeros, as cv2.normalize
    face[0, 0, 0], face[1, 1, 2] = 3, 200
    stretched = minmax_normalize(face)
    assert stretched.min() == 0 and stretched.max() == 255
    batch = to_batch([stretched, stretched])
    assert batch.shape == (2, 3, 64, 64) and batch[0, 2, 1, 1] == 255  # channel 2 is blue in RGB
    with pytest.raises(ValueError, match="empty face crop"):
        crop_resize(face, (10, 10, 5, 5))
