"""Per-model recipes: FSA-Net's reproduces the authors' crops bit for bit, WHENet's its demo's."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import skimage.data

from fsanet.data.preprocess import crop_resize, expand_box, preprocess_face, xyxy_to_xywh
from fsanet.data.recipes import (
    DEMO,
    CropProtocol,
    crop_face,
    crop_region,
    finish_face,
    fsanet_recipe,
)
from fsanet.models.families.whenet import WHENET_RECIPE
from fsanet.models.registry import recipe_of
from leaderboard.protocol.benchmarks import get_benchmark
from leaderboard.protocol.data import iter_batches, load_benchmark_data
from leaderboard.protocol.importers import prepare_aflw2000, prepare_biwi
from leaderboard.protocol.runner import crop_protocol
from tests.conftest import DATA, REFERENCE, require_shared

AFLW = DATA / "aflw2000-sample16"
BIWI = DATA / "biwi-sample1" / "hpdb"


def _faces(path, with_recipe: bool):
    data = load_benchmark_data(path)
    name = data.meta["benchmark"]
    recipe = fsanet_recipe() if with_recipe else None
    protocol = crop_protocol(name, data) if with_recipe else None
    return np.concatenate([faces for _, faces, _ in iter_batches(data.dataset, 4, recipe, protocol)])


def test_fsa_recipe_from_the_protocol_box_equals_the_authors_aflw2000_crops(tmp_path):
    """The authors' crops (as tests/test_leaderboard_data.py checks them); AFLW's 21 2-D landmarks kept."""
    dataset = prepare_aflw2000(require_shared(AFLW), tmp_path / "aflw2000")
    np.testing.assert_array_equal(_faces(dataset, True), _faces(dataset, False))
    rows = load_benchmark_data(dataset).dataset
    assert len(rows[0]["landmarks"]) == 21 and rows[0]["frame_size"] == [450, 450]


@pytest.mark.parametrize("benchmark", ["biwi", "biwi_70_30"])
def test_fsa_recipe_from_the_protocol_box_equals_the_authors_biwi_crops(tmp_path, benchmark):
    require_shared(BIWI)
    box = [250.3, 120.7, 390.2, 300.9]  # float detector box: the margin arithmetic must match exactly
    detect = lambda image: [SimpleNamespace(box=box, score=0.99)]  # noqa: E731
    out = prepare_biwi(BIWI, tmp_path / benchmark, benchmark, detect, test_sequences=[1])
    ours = _faces(out, True)
    rgb = cv2.imread(str(BIWI / "01" / "frame_00003_rgb.png"))[..., ::-1]
    x1, y1, x2, y2 = expand_box(xyxy_to_xywh(box), (640, 480), 0.4)  # the authors' importer, inclusive end
    np.testing.assert_array_equal(
        ours[0], cv2.resize(np.ascontiguousarray(rgb[y1 : y2 + 1, x1 : x2 + 1]), (64, 64))
    )
    np.testing.assert_array_equal(ours, _faces(out, False))
    assert load_benchmark_data(out).dataset[0]["face_box"] == box


def test_fsa_recipe_in_photos_is_the_official_demo_preprocessing():
    reference = np.load(require_shared(REFERENCE / "reference_outputs.npz"))
    image = skimage.data.astronaut()
    x, y, w, h = (float(v) for v in reference["face_box_xywh"])
    recipe = recipe_of({"architecture": "fsanet", "image_size": 64})
    crop = crop_face(image, (x, y, x + w, y + h), recipe, DEMO)
    np.testing.assert_array_equal(crop, crop_resize(image, expand_box((x, y, w, h), (512, 512))))
    official = reference["face_crops_resized_uint8_before_minmax"][0][..., ::-1].astype(int)
    assert np.abs(crop.astype(int) - official).max() <= 1  # the reference's cv2 build rounds one level apart
    np.testing.assert_array_equal(finish_face(crop, recipe, DEMO), preprocess_face(image, (x, y, w, h)))


def test_whenet_recipe_gives_its_demos_padded_crop():
    image = np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8)  # H 80, W 100
    # Box (20, 10, 60, 50), by hand: y1 = 10 - 40/10 = 6; y2 = 50 + (50 - 6)/10 = 54.4; x1 = 20 - 40/5 = 12;
    # x2 = 60 + (60 - 12)/5 = 69.6 -> image[6:54, 12:69], stretched to 224x224 with cv2's linear filter.
    assert crop_region((20, 10, 60, 50), WHENET_RECIPE, (100, 80)) == (12, 6, 69, 54)
    expected = cv2.resize(image[6:54, 12:69], (224, 224), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(crop_face(image, (20, 10, 60, 50), WHENET_RECIPE), expected)
    # Near the border every side is clipped to the image: y 1 - 7.8 -> 0, 79 + 7.9 -> 80; x 0 and 100.
    assert crop_region((2, 1, 98, 79), WHENET_RECIPE, (100, 80)) == (0, 0, 100, 80)
    # The same crop from a stored context crop of the frame (as benchmarks keep them).
    context = image[4:70, 10:90]
    ours = crop_face(context, (20, 10, 60, 50), WHENET_RECIPE, origin=(10, 4), frame_size=(100, 80))
    np.testing.assert_array_equal(ours, expected)
    assert finish_face(ours, WHENET_RECIPE).dtype == np.float32  # no min-max for WHENet
    np.testing.assert_array_equal(finish_face(ours, WHENET_RECIPE), expected.astype(np.float32))


def test_a_crop_outside_the_stored_context_is_refused():
    with pytest.raises(ValueError, match="outside"):
        crop_face(
            np.zeros((20, 20, 3), np.uint8), (5, 5, 15, 15), WHENET_RECIPE, origin=(5, 5), frame_size=(40, 40)
        )


def test_square_and_margin_options():
    recipe = fsanet_recipe(32) | {"square": True, "margin": 0.0, "crop_end": "exclusive"}
    assert crop_region((10, 20, 30, 60), recipe, (100, 100)) == (
        0,
        20,
        40,
        60,
    )  # 20x40 -> 40x40 on its centre
    assert crop_face(np.zeros((100, 100, 3), np.uint8), (10, 20, 30, 60), recipe).shape == (32, 32, 3)


def test_recipes_are_validated_and_default_to_fsanet():
    assert recipe_of({"architecture": "fsanet"}) == fsanet_recipe(64)
    assert recipe_of({"architecture": "fsanet_timm", "image_size": 224})["size"] == 224  # the backbone's own
    for bad in ({"box": "ellipse"}, {"interpolation": "lanczos9"}, {"colour": "rgb"}, {"size": 4096}):
        with pytest.raises(ValueError):
            recipe_of({"preprocess": bad})


def test_benchmarks_declare_the_authors_crop():
    assert get_benchmark("aflw2000").crop_end == "exclusive" and get_benchmark("biwi").margin == 0.4
    assert CropProtocol().minmax and not crop_protocol("aflw2000", SimpleNamespace(meta={})).minmax


def test_datasets_of_the_first_format_still_load(tmp_path):
    """A dataset saved before the protocol box existed (64x64 crops, the old columns only)."""
    import datasets

    crops = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    features = datasets.Features(
        {
            "sample_id": datasets.Value("string"),
            "image": datasets.Image(),
            "box": datasets.Sequence(datasets.Value("int32"), length=4),
            **{axis: datasets.Value("float64") for axis in ("yaw", "pitch", "roll")},
            "source_revision": datasets.Value("string"),
        }
    )
    rows = {
        "sample_id": ["a", "b", "c"],
        "image": list(crops),
        "box": [None] * 3,
        "source_revision": ["x"] * 3,
    }
    rows |= {axis: [1.0, 2.0, 3.0] for axis in ("yaw", "pitch", "roll")}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "old"))
    data = load_benchmark_data(tmp_path / "old")
    protocol = crop_protocol("aflw2000", data)
    ((_, fsa, _),) = iter_batches(data.dataset, 8, fsanet_recipe(), protocol)
    np.testing.assert_array_equal(fsa, crops)
    ((_, whenet, _),) = iter_batches(data.dataset, 8, dict(WHENET_RECIPE), protocol)
    assert whenet.shape == (3, 224, 224, 3)  # only the 64x64 crop exists: resized for other sizes
