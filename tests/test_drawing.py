"""Drawing: the axes point where the rotation convention says, boxes and labels appear."""

from __future__ import annotations

import numpy as np
import pytest

from fsanet.data.geometry import rotation_matrix
from fsanet.pipeline.drawing import draw_axis, draw_cube, draw_poses, face_labels
from fsanet.pipeline.estimate import FacePose, PoseResult, left_to_right

CENTER = (100, 100)
SIZE = 80


def _tip(canvas: np.ndarray, channel: int) -> np.ndarray | None:
    """The drawn pixel of one pure colour farthest from the centre, as (x, y) offsets (None: none)."""
    others = [c for c in range(3) if c != channel]
    mask = (canvas[:, :, channel] > 150) & (canvas[:, :, others].max(axis=2) < 100)
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    offsets = np.stack([xs - CENTER[0], ys - CENTER[1]], axis=1)
    return offsets[np.argmax(np.hypot(*offsets.T))].astype(float)


def _axes(yaw, pitch, roll):
    canvas = np.zeros((200, 200, 3), np.uint8)
    draw_axis(canvas, yaw, pitch, roll, CENTER, SIZE)
    return {name: _tip(canvas, channel) for name, channel in (("x", 0), ("y", 1), ("z", 2))}


def test_rest_pose_draws_x_right_y_down():
    axes = _axes(0, 0, 0)
    np.testing.assert_allclose(axes["x"], (SIZE, 0), atol=1.5)
    np.testing.assert_allclose(axes["y"], (0, SIZE), atol=1.5)
    assert axes["z"] is None or np.hypot(*axes["z"]) <= 2, "z points at the viewer: a dot"


def test_positive_yaw_turns_the_axes_towards_the_image_left():
    """yaw +40 (subject turns to their right): x axis foreshortens, the nose (z) axis swings left."""
    axes = _axes(40, 0, 0)
    np.testing.assert_allclose(axes["x"], (SIZE * np.cos(np.radians(40)), 0), atol=1.5)
    np.testing.assert_allclose(axes["z"], (-SIZE * np.sin(np.radians(40)), 0), atol=1.5)
    # With the head also pitched up, yaw tilts the x axis: its right end rises towards the viewer.
    tilted = _axes(40, 30, 0)
    assert tilted["x"][1] < -10


def test_positive_roll_turns_the_x_axis_clockwise_and_pitch_lifts_the_z_axis():
    assert _axes(0, 0, 30)["x"][1] == pytest.approx(SIZE * np.sin(np.radians(30)), abs=1.5)
    assert _axes(0, 30, 0)["z"][1] == pytest.approx(-SIZE * np.sin(np.radians(30)), abs=1.5)


@pytest.mark.parametrize("angles", [(25, -15, 10), (-60, 20, -35), (5, 45, 20)])
def test_drawn_tips_are_the_rotation_matrix_columns(angles):
    axes = _axes(*angles)
    expected = SIZE * rotation_matrix(*angles)[:2, :].T
    for index, name in enumerate("xyz"):
        if np.hypot(*expected[index]) > 10:  # short axes are hidden under the others
            np.testing.assert_allclose(axes[name], expected[index], atol=2.0)


def test_draw_poses_draws_box_axes_label_on_a_copy():
    image = np.full((300, 300, 3), 128, np.uint8)
    face = FacePose((100.0, 100.0, 200.0, 220.0), 0.99, 10.0, -5.0, 3.0, "m")
    result = PoseResult([face], (300, 300), 1)
    drawn = draw_poses(image, result, cube=True)
    assert (image == 128).all(), "the input must stay untouched"
    assert (drawn[100, 120:180] != 128).any(axis=1).all(), "box top edge"
    band = drawn[:100, 100:300]
    assert (band == 0).all(axis=2).any() and (band > 200).all(axis=2).any(), "light label on a dark band"
    assert (drawn[:, :, 0] > 200).any() and (drawn[:, :, 2] > 200).any()
    np.testing.assert_array_equal(draw_poses(image, PoseResult([], (300, 300), 0)), image)


def test_cube_and_label_stay_inside_small_images():
    image = np.zeros((40, 40, 3), np.uint8)
    face = FacePose((0.0, 0.0, 40.0, 40.0), 1.0, 80.0, 80.0, 80.0, "m")
    assert draw_poses(image, PoseResult([face], (40, 40), 1), cube=True).shape == (40, 40, 3)
    draw_cube(image, 0, 0, 0, (20, 20), 20)
    assert image.any()


def _face(x1: float, y1: float, x2: float, y2: float) -> FacePose:
    return FacePose((x1, y1, x2, y2), 0.9, 0.0, 0.0, 0.0, "m")


def test_group_labels_are_numbered_left_to_right_sized_to_faces_inside_and_apart():
    # Three touching faces in a row, the middle one the detector's best, plus one at the top edge.
    faces = [_face(160, 60, 240, 150), _face(80, 60, 160, 150), _face(240, 62, 320, 152), _face(0, 0, 40, 44)]
    result = PoseResult(left_to_right(faces), (400, 300), 4)
    assert [f.box[0] for f in result.faces] == [0, 80, 160, 240]
    labels = face_labels(result, (300, 400, 3))
    assert [text for text, _, _ in labels] == ["1", "2", "3", "4"]
    rects = [rect for _, rect, _ in labels]
    for i, a in enumerate(rects):
        assert 0 <= a[0] < a[2] <= 400 and 0 <= a[1] < a[3] <= 300, a
        for b in rects[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert labels[0][2] < labels[1][2], "a smaller face gets a smaller label"
    assert rects[1][2] - rects[1][0] < 80, "a compact label, narrower than its face"
    # Rendered: each label is a dark band with light text where the layout put it.
    drawn = draw_poses(np.full((300, 400, 3), 128, np.uint8), result)
    for x1, y1, x2, y2 in rects:
        patch = drawn[y1:y2, x1:x2]
        assert (patch == 0).all(axis=2).mean() > 0.4 and (patch > 200).all(axis=2).any()


def test_many_overlapping_faces_still_get_separate_labels():
    faces = [_face(10 + 12 * i, 100, 70 + 12 * i, 160) for i in range(8)]
    rects = [rect for _, rect, _ in face_labels(PoseResult(faces, (200, 300), 8), (300, 200, 3))]
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
