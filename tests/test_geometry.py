"""Rotation convention of the FSA-Net/Hopenet demos, checked against the formula and labelled data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from fsanet.data.geometry import euler_angles, geodesic_distance, project_axes, rotation_matrix

from .conftest import DATA, require_shared


def _draw_axis_tips(yaw, pitch, roll, size=1.0):
    """The endpoints ``draw_axis`` of the Hopenet/FSA-Net demos computes, transcribed literally."""
    pitch = pitch * np.pi / 180
    yaw = -(yaw * np.pi / 180)
    roll = roll * np.pi / 180
    x1 = size * (np.cos(yaw) * np.cos(roll))
    y1 = size * (np.cos(pitch) * np.sin(roll) + np.cos(roll) * np.sin(pitch) * np.sin(yaw))
    x2 = size * (-np.cos(yaw) * np.sin(roll))
    y2 = size * (np.cos(pitch) * np.cos(roll) - np.sin(pitch) * np.sin(yaw) * np.sin(roll))
    x3 = size * (np.sin(yaw))
    y3 = size * (-np.cos(yaw) * np.sin(pitch))
    return np.array([[x1, y1], [x2, y2], [x3, y3]])


def _random_angles(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-89, 89, n), rng.uniform(-89, 89, n), rng.uniform(-89, 89, n)


def test_matrices_are_rotations_and_vectorised():
    yaw, pitch, roll = _random_angles()
    matrices = rotation_matrix(yaw, pitch, roll)
    assert matrices.shape == (50, 3, 3)
    np.testing.assert_allclose(
        matrices @ np.swapaxes(matrices, 1, 2), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(matrices), 1.0)
    assert rotation_matrix(10, 20, 30).shape == (3, 3)
    np.testing.assert_allclose(rotation_matrix(0, 0, 0), np.eye(3))
    np.testing.assert_allclose(matrices[7], rotation_matrix(yaw[7], pitch[7], roll[7]))


def test_projection_is_the_demos_draw_axis():
    for yaw, pitch, roll in zip(*_random_angles(20, seed=1), strict=True):
        np.testing.assert_allclose(
            project_axes(yaw, pitch, roll, 50.0), _draw_axis_tips(yaw, pitch, roll, 50.0), atol=1e-9
        )


def test_euler_angles_invert_rotation_matrix():
    angles = np.stack(_random_angles(), axis=1)
    np.testing.assert_allclose(euler_angles(rotation_matrix(*angles.T)), angles, atol=1e-9)


def test_geodesic_distance():
    assert geodesic_distance(rotation_matrix(0, 0, 0), rotation_matrix(30, 0, 0)) == pytest.approx(30.0)
    assert geodesic_distance(rotation_matrix(5, -40, 0), rotation_matrix(5, 10, 0)) == pytest.approx(50.0)
    yaw, pitch, roll = _random_angles()
    matrices = rotation_matrix(yaw, pitch, roll)
    np.testing.assert_allclose(geodesic_distance(matrices, matrices), 0.0, atol=1e-5)


def test_yaw_sign_matches_the_labelled_faces():
    """Documented: yaw > 0 turns the nose towards the image's left, as in the AFLW2000 labels."""
    folder = require_shared(DATA / "aflw2000-sample16")
    checked = 0
    for mat_path in sorted(folder.glob("*.mat")):
        mat = scipy.io.loadmat(mat_path)
        yaw = np.rad2deg(mat["Pose_Para"][0, 1])
        points = mat["pt3d_68"]  # 68 fitted landmarks: jaw ends 0 and 16, nose tip 30
        nose_offset = points[0, 30] - (points[0, 0] + points[0, 16]) / 2
        if abs(yaw) < 10:
            continue
        checked += 1
        assert np.sign(nose_offset) == -np.sign(yaw), mat_path.name
        # ... and the drawn z axis (the nose direction) swings the same way.
        assert np.sign(project_axes(yaw, 0, 0, 1.0)[2, 0]) == np.sign(nose_offset)
    assert checked >= 8
