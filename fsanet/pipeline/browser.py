"""What a browser needs to run an estimator itself (the Space's Webcam tab): the same numbers as the server.

:func:`browser_parameters` turns a :class:`~fsanet.pipeline.estimate.PoseEstimator` into JSON-ready data: its
model's crop recipe with the context's margin, slice end and min-max resolved (the estimator's
:class:`fsanet.data.recipes.FaceCrop`, which the server's crop uses), its detector's box
transform and score threshold, the face cap and detection size, and the drawing's numbers
(:func:`fsanet.pipeline.drawing.drawing_style`). The files (the pose model's ONNX export and the detector's
graph) come from :func:`fsanet.runtime.onnx_engine.pose_graph_file` and ``Detector.graph_file``. Nothing here
is computed a second time: the page receives these numbers, never copies of them.
"""

from __future__ import annotations

from typing import Any

from fsanet.errors import FSANetError
from fsanet.pipeline.drawing import drawing_style
from fsanet.pipeline.estimate import PoseEstimator


class ServerOnlyError(FSANetError):
    """The browser cannot run this estimator (its detector or crop exists on the server only)."""


# The resampling the page implements (OpenCV's INTER_LINEAR on uint8, the one every shipped recipe uses).
BROWSER_INTERPOLATIONS = ("linear",)


def browser_parameters(estimator: PoseEstimator) -> dict[str, Any]:
    """The estimator's numbers for the page; :class:`ServerOnlyError` when the page cannot run it (the
    detector runs on the server only, or the recipe resamples in a way the page does not implement)."""
    detector = estimator.detector
    if detector.graph_file() is None:
        raise ServerOnlyError(f"the {detector.name} detector runs on the server only")
    recipe = estimator.crop.recipe
    if recipe["interpolation"] not in BROWSER_INTERPOLATIONS:
        raise ServerOnlyError(
            f"{estimator.model_name}'s crop ({recipe['interpolation']}) runs on the server only"
        )
    return {
        "model": {"name": estimator.model_name, "recipe": recipe},
        "detector": {
            "name": detector.name,
            "box_transform": list(detector.box_transform),
            "min_score": detector.min_score,
        },
        "max_faces": estimator.max_faces,
        "detect_max_side": estimator.detect_max_side,
        "drawing": drawing_style(),
    }
