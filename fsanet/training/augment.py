"""The authors' training augmentation (``augment_data`` in their Keras data generator).

Per image, with ``dn`` uniform in 1..15 pixels:

* p = 0.25 each: ``random_crop`` (cut ``dn`` pixels off, split randomly between the sides, resize back
  with bicubic interpolation), ``random_crop_black`` / ``random_crop_white`` (the same cut, pasted at a
  random shift into a black / white canvas of the original size), or nothing;
* then, with p = 0.7, Keras ``random_zoom`` with independent row/column factors in [0.8, 1.2]
  (about the centre, bilinear, ``fill_mode='nearest'``): the 0.8-1.2 scaling of the paper.

Images are ``uint8`` HWC arrays; labels are untouched (no geometric change alters the pose). Randomness
comes from the ``numpy.random.Generator`` given, so a batch's augmentation is reproducible from a seed.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_CUT = 15
ZOOM_RANGE = (0.8, 1.2)
ZOOM_PROBABILITY = 0.7


def _cut(image: np.ndarray, dn: int, rng: np.random.Generator) -> np.ndarray:
    dx, dy = rng.integers(dn), rng.integers(dn)
    h, w = image.shape[:2]
    return image[dy : h - (dn - dy), dx : w - (dn - dx)]


def random_crop(image: np.ndarray, dn: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(_cut(image, dn, rng), (w, h), interpolation=cv2.INTER_CUBIC)


def random_crop_border(image: np.ndarray, dn: int, rng: np.random.Generator, fill: int) -> np.ndarray:
    """The cut pasted at a random shift into a canvas of ``fill`` (0: black, 255: white)."""
    cut = _cut(image, dn, rng)
    sx, sy = rng.integers(dn), rng.integers(dn)
    out = np.full_like(image, fill)
    out[sy : sy + cut.shape[0], sx : sx + cut.shape[1]] = cut
    return out


def random_zoom(image: np.ndarray, rng: np.random.Generator, zoom_range=ZOOM_RANGE) -> np.ndarray:
    """Keras ``random_zoom``: input coordinate = zoom * (output - centre) + centre, per axis."""
    zy, zx = rng.uniform(zoom_range[0], zoom_range[1], 2)
    h, w = image.shape[:2]
    # Keras' transform_matrix_offset_center uses size / 2 + 0.5 as the centre (in pixel indices).
    cy, cx = h / 2 + 0.5, w / 2 + 0.5
    matrix = np.array([[zx, 0, cx - zx * cx], [0, zy, cy - zy * cy]], np.float64)
    return cv2.warpAffine(
        image, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )


def augment_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One image through the authors' generator (see the module docstring)."""
    choice = rng.random()
    dn = int(rng.integers(MAX_CUT)) + 1
    if choice < 0.25:
        image = random_crop(image, dn, rng)
    elif choice < 0.5:
        image = random_crop_border(image, dn, rng, 0)
    elif choice < 0.75:
        image = random_crop_border(image, dn, rng, 255)
    if rng.random() > 1 - ZOOM_PROBABILITY:
        image = random_zoom(image, rng)
    return image


def augment_batch(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``uint8`` (N, H, W, 3) -> augmented copy."""
    return np.stack([augment_image(image, rng) for image in images])
