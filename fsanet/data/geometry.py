"""Euler angles <-> rotation matrices in the convention of the FSA-Net and Hopenet demos.

The demos' ``draw_axis(img, yaw, pitch, roll)`` projects the head's axes with yaw negated::

    R = Rx(pitch) @ Ry(-yaw) @ Rz(roll)

in the camera frame x right, y down, z into the scene (image coordinates, right-handed). The
columns of ``R`` are the head's axes: column 0 (drawn red) points to the image right at rest,
column 1 (green) down, column 2 (blue) along the viewing axis; the drawing shows their x, y
rows. Signs, as the AFLW2000/300W-LP labels use them (checked on the labelled samples):

* yaw > 0: the face turns towards the image's left (the subject's right), nose moves left;
* pitch > 0: the face looks up;
* roll > 0: the head tilts clockwise in the image (its right-hand side goes down).

All functions take degrees and broadcast over any number of poses.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike


def rotation_matrix(yaw: ArrayLike, pitch: ArrayLike, roll: ArrayLike) -> np.ndarray:
    """``(yaw, pitch, roll)`` degrees -> rotation matrices, shape ``broadcast_shape + (3, 3)``.

    Scalars give one ``(3, 3)`` matrix; arrays of ``N`` angles give ``(N, 3, 3)``.
    """
    yaw, pitch, roll = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (yaw, pitch, roll)))
    y = -np.deg2rad(yaw)
    p = np.deg2rad(pitch)
    r = np.deg2rad(roll)
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    rows = [
        [cy * cr, -cy * sr, sy],
        [cp * sr + sp * sy * cr, cp * cr - sp * sy * sr, -sp * cy],
        [sp * sr - cp * sy * cr, sp * cr + cp * sy * sr, cp * cy],
    ]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def euler_angles(matrix: ArrayLike | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Inverse of :func:`rotation_matrix`: ``(..., 3, 3)`` -> ``(..., 3)`` degrees [yaw, pitch, roll].

    Unique for ``|yaw| < 90``; at exactly +-90 (gimbal lock) roll is set to 0. A torch tensor stays a tensor
    (its dtype and device, differentiable, exportable to ONNX: a model's own rotation -> angles); anything
    else is computed in float64 NumPy.
    """
    xp = torch if isinstance(matrix, torch.Tensor) else np
    m = matrix if xp is torch else np.asarray(matrix, np.float64)
    neg_yaw = xp.arcsin(xp.clip(m[..., 0, 2], -1.0, 1.0))
    pitch = xp.arctan2(-m[..., 1, 2], m[..., 2, 2])
    roll = xp.arctan2(-m[..., 0, 1], m[..., 0, 0])
    return xp.stack([-neg_yaw, pitch, roll], axis=-1) * (180.0 / np.pi)  # rad2deg: no ONNX op for it


def geodesic_distance(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Angle in degrees of the rotation between matrices ``a`` and ``b`` (both ``(..., 3, 3)``)."""
    relative = np.swapaxes(np.asarray(a, np.float64), -1, -2) @ np.asarray(b, np.float64)
    cos = (np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0)))


def project_axes(yaw: float, pitch: float, roll: float, size: float) -> np.ndarray:
    """Image-plane offsets ``(3, 2)`` of the x, y, z axis tips of length ``size``, as ``draw_axis``."""
    return size * rotation_matrix(yaw, pitch, roll)[:2, :].T
