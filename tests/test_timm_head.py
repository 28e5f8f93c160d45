"""FSA heads on timm backbones: configs from the backbone, the FSA layers on top, saving, local weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from fsanet.models.families.timm_head import TimmFSANet, create_timm_model, timm_config
from fsanet.models.hub import load_directory, save_pretrained
from fsanet.models.layers import CapsuleAggregation, FineGrainedMapping, SSRRegression
from fsanet.models.registry import build_model, create_model
from fsanet.utils.torchvision_compat import ensure_torchvision

ensure_torchvision()
import timm  # noqa: E402  (after the torchvision shim)


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_100", "resnet18", "efficientnet_b0"])
def test_config_comes_from_the_backbone(backbone):
    config = timm_config(backbone)
    probe = timm.create_model(backbone, features_only=True, out_indices=(-3, -2, -1))
    assert config["architecture"] == "fsanet_timm" and config["name"] == f"fsanet_timm_{backbone}"
    assert config["image_size"] == probe.pretrained_cfg["input_size"][-1]
    assert config["feature_channels"] == probe.feature_info.channels()
    assert config["mean"] == list(probe.pretrained_cfg["mean"])
    # The deepest level (stride 32) sets the grid every stage is pooled to.
    assert config["grid_size"] == -(-config["image_size"] // 32)


def test_head_is_the_fsa_pipeline_and_takes_raw_64px_crops():
    torch.manual_seed(0)
    model = create_timm_model("mobilenetv3_small_100", image_size=96).eval()
    grid = model.config["grid_size"]
    assert grid == 3
    assert isinstance(model.mapping, FineGrainedMapping) and model.mapping.num_pixels == 3 * grid * grid
    assert isinstance(model.aggregation, CapsuleAggregation) and isinstance(model.ssr, SSRRegression)
    x = torch.rand(2, 3, 64, 64) * 255
    maps = model.features(x)
    assert [tuple(m.shape) for m in maps] == [(2, 64, grid, grid)] * 3
    angles = model(x)
    assert angles.shape == (2, 3) and torch.isfinite(angles).all()
    # Resizing happens inside: a 96px input of the same upsampled crop gives the same angles.
    upsampled = torch.nn.functional.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False)
    torch.testing.assert_close(model(upsampled), angles)


def test_normalisation_is_inside_and_not_saved():
    model = create_timm_model("resnet18", image_size=64)
    state = model.state_dict()
    assert not any(key.endswith(("features.mean", "features.std")) for key in state)
    mean = torch.tensor(model.config["mean"]).view(1, 3, 1, 1) * 255
    torch.testing.assert_close(model.features.mean, mean)


@pytest.mark.parametrize("scoring,aggregation", [("1x1", "caps"), ("var", "netvlad"), ("uniform", "metric")])
def test_save_load_roundtrip(tmp_path, scoring, aggregation):
    torch.manual_seed(1)
    model = create_timm_model("mobilenetv3_small_100", aggregation, scoring, image_size=64).eval()
    save_pretrained(model, tmp_path)
    loaded = load_directory(tmp_path)
    assert isinstance(loaded, TimmFSANet) and loaded.config == model.config
    x = torch.rand(3, 3, 64, 64) * 255
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert isinstance(build_model(model.config), TimmFSANet)


def test_backbone_weights_from_a_local_file(tmp_path):
    torch.manual_seed(2)
    reference = timm.create_model("resnet18", pretrained=False)  # a full classifier checkpoint, as timm ships
    path = tmp_path / "resnet18.safetensors"
    save_file(reference.state_dict(), str(path))
    model = create_timm_model("resnet18", pretrained_backbone=str(path), image_size=64)
    backbone = model.features.backbone.state_dict()
    for key in ("conv1.weight", "layer4.1.conv2.weight", "layer2.0.bn1.running_mean"):
        torch.testing.assert_close(backbone[key], reference.state_dict()[key], rtol=0, atol=0)
    scratch = create_timm_model("resnet18", image_size=64)
    assert not torch.equal(scratch.features.backbone.state_dict()["conv1.weight"], backbone["conv1.weight"])


def test_missing_weights_file_and_unknown_backbone():
    with pytest.raises(FileNotFoundError):
        create_timm_model("resnet18", pretrained_backbone="/nonexistent/weights.safetensors")
    with pytest.raises(ValueError, match="unknown timm model"):
        create_model("fsanet_timm_not_a_backbone")


def test_registry_and_build_model_reach_the_timm_head(tmp_path):
    """create_model("fsanet_timm_<backbone>") and loading a saved timm directory need no manual import."""
    import fsanet

    model = fsanet.create_model("fsanet_timm_resnet18")
    assert model.config["architecture"] == "fsanet_timm" and model.config["backbone"] == "resnet18"
    model.save_pretrained(tmp_path / "saved")
    reloaded = fsanet.load_model(str(tmp_path / "saved"))
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))
    with pytest.raises(fsanet.WeightsUnavailableError, match="no pretrained"):
        fsanet.create_model("fsanet_timm_resnet18", pretrained=True)


def test_a_config_naming_a_huge_backbone_is_rejected_without_building_it(tmp_path, monkeypatch):
    """Weights are checked against a meta-device skeleton: a hostile config naming a 1-billion
    parameter backbone next to small weights never allocates that backbone."""
    import fsanet
    from fsanet.models import catalogue

    small = fsanet.create_model("fsanet_timm_mobilenetv3_small_100")
    config = timm_config("vit_giant_patch14_224", image_size=small.config["image_size"])
    built_on = []
    real_build = catalogue.build_model

    def recording_build(cfg):
        model = real_build(cfg)
        built_on.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(catalogue, "build_model", recording_build)
    with pytest.raises(fsanet.InvalidWeightsError, match="missing tensors"):
        catalogue.validate_state_dict(config, small.state_dict())
    assert built_on == ["meta"]
    catalogue.validate_state_dict(small.config, small.state_dict())  # valid weights: checked, then built
    assert built_on == ["meta", "meta", "cpu"]
