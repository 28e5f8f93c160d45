"""``model(x)`` takes what users naturally pass, or fails with a message that states the contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fsanet


@pytest.fixture(scope="module")
def model_and_batch():
    torch.manual_seed(0)
    model = fsanet.create_model("fsanet_caps_1x1").eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)  # RGB, HWC
    with torch.no_grad():
        reference = model(torch.from_numpy(images).permute(0, 3, 1, 2).float().contiguous())
    return model, images, reference


@pytest.mark.parametrize(
    "convert",
    [
        lambda a: a,  # NumPy uint8 NHWC
        torch.from_numpy,  # tensor uint8 NHWC
        lambda a: a.transpose(0, 3, 1, 2).astype(np.float64),  # NumPy float NCHW
        lambda a: torch.from_numpy(a).float(),  # tensor float NHWC
    ],
    ids=["numpy-uint8-nhwc", "tensor-uint8-nhwc", "numpy-float64-nchw", "tensor-float-nhwc"],
)
def test_natural_inputs_give_the_same_angles(model_and_batch, convert):
    model, images, reference = model_and_batch
    with torch.no_grad():
        angles = model(convert(images))
    assert angles.shape == (3, 3) and angles.dtype == torch.float32
    torch.testing.assert_close(angles, reference)


def test_one_image_without_the_batch_axis(model_and_batch):
    model, images, reference = model_and_batch
    with torch.no_grad():
        torch.testing.assert_close(model(images[1]), reference[1:2])


ENGINES = ("onnx", "torch")


@pytest.mark.parametrize("engine", ENGINES)
def test_the_optimised_model_takes_the_same_inputs(model_and_batch, engine):
    model, images, reference = model_and_batch
    fast = fsanet.optimize_for_inference(model, engine=engine, cache=False)
    torch.testing.assert_close(fast(images), reference, atol=1e-3, rtol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_chunk_asked_for_is_the_chunk_run(model_and_batch, engine):
    model, images, reference = model_and_batch
    fast = fsanet.optimize_for_inference(model, engine=engine, chunk=2, cache=False)
    assert fast.chunk == 2
    torch.testing.assert_close(fast(images), reference, atol=1e-3, rtol=0)  # 3 images: chunks of 2 and 1


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (np.zeros((2, 32, 32, 3), np.uint8), "shape (2, 32, 32, 3)"),
        (torch.zeros(2, 4, 64, 64), "shape (2, 4, 64, 64)"),
        (torch.zeros(2, 3, 32, 32), "shape (2, 3, 32, 32)"),
        (np.zeros((2, 64, 64, 3), bool), "bool"),
        ("photo.jpg", "str"),
    ],
)
@pytest.mark.parametrize("engine", [None, *ENGINES])
def test_anything_else_fails_with_the_contract(model_and_batch, bad, named, engine):
    model = model_and_batch[0]
    if engine is not None:
        model = fsanet.optimize_for_inference(model, engine=engine, cache=False)
    with pytest.raises(fsanet.FSANetError) as error:
        model(bad)
    assert "RGB images of 64x64, raw [0, 255]" in str(error.value) and named in str(error.value)
