"""The SSR-Net-MD family (Yang et al., IJCAI 2018; shipped with FSA-Net): the authors' ``ssrnet_mt`` weights.

The same two streams as FSA-Net, pooled stage products and dense heads; same forward contract (64x64 RGB in
[0, 255], degrees out) and the same mirror of the authors' files (``FSANET_OFFICIAL_MIRROR``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from fsanet.models.base import PoseModel
from fsanet.models.families import _fsa_keras as keras
from fsanet.models.families.fsanet import IMAGE_SIZE, StagedConfig, authors_weights, image_size_recipe
from fsanet.models.family import Converter, ModelEntry, register_family
from fsanet.models.layers import DenseStageHead, SSRRegression, StageFusion, TwoStreamBackbone

PAPER = "Yang et al., SSR-Net: A Compact Soft Stagewise Regression Network for Age Estimation, IJCAI 2018"
OFFICIAL_NAME = "ssrnet_mt"
OFFICIAL_SHA256 = {
    "300w_lp": "1016ae85c0ac26727d9bcbb63499993041a1f339ce4517265cf093bbb473ef91",
    "biwi": "9e723a9bd6f9c0be5a0e58488e5d3e38f20993827835bd70213d51f327b44ab1",
}


class SSRNetMDConfig(StagedConfig):
    architecture: Literal["ssrnet_md"]
    image_size: Literal[64]


def ssrnet_md_config(**extra: Any) -> dict[str, Any]:
    return {
        "architecture": "ssrnet_md",
        "stage_num": [3, 3, 3],
        "lambda_d": 1.0,
        "image_size": IMAGE_SIZE,
        "input_channel_order": "rgb",
        **extra,
    }


def is_ssrnet_md_file(path: str | Path) -> bool:
    """Whether ``path`` is the authors' SSR-Net-MD file (its named delta layers, no FSA sub-models)."""
    groups = keras.groups(path)
    return groups is not None and "delta_s1" in groups and "ssr_G_model" not in groups


def convert_h5(path: str | Path, name: str | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The authors' SSR-Net-MD ``.h5`` -> ``(config, state_dict)``: the two streams and fusions as FSA-Net's,
    then three dense stage heads by their layer numbers."""
    layers = keras.read_h5_weights(path)
    state = keras.backbone(layers, "backbone") | keras.fusions(layers, "fusions")
    for stage in range(3):
        prefix, first = f"heads.{stage}", 3 * stage + 1
        state |= keras.dense(f"{prefix}.delta_hidden", keras.find(layers, f"dense_{first}"))
        state |= keras.dense(f"{prefix}.eta_hidden", keras.find(layers, f"dense_{first + 1}"))
        state |= keras.dense(f"{prefix}.p", keras.find(layers, f"dense_{first + 2}"))
        state |= keras.dense(f"{prefix}.delta", keras.find(layers, f"delta_s{stage + 1}"))
        state |= keras.dense(f"{prefix}.eta", keras.find(layers, f"local_delta_stage{stage + 1}"))
    return keras.finished(ssrnet_md_config(), state, path, name, SSRNetMD)


@register_family(
    architecture="ssrnet_md",
    method="SSR-Net-MD",
    schema=SSRNetMDConfig,
    recipe=image_size_recipe,
    models=(
        ModelEntry(
            "ssrnet_md",
            "SSR-Net-MD",
            lambda: ssrnet_md_config(name="ssrnet_md"),
            authors_weights(OFFICIAL_NAME, OFFICIAL_SHA256),
            about="smaller, less accurate",
        ),
    ),
    converter=Converter(is_ssrnet_md_file, convert_h5),
    paper=PAPER,
    tags=("head-pose-estimation", "ssr-net"),
)
class SSRNetMD(PoseModel):
    """SSR-Net-MD (``SSR_net_MT``): the same two streams, pooled stage products, dense heads."""

    def __init__(self, config: dict[str, Any]):
        super().__init__(config)
        self.backbone = TwoStreamBackbone()
        self.fusions = nn.ModuleList([StageFusion(c, branch_pools=True) for c in (128, 64, 32)])
        # Flattened stage sizes for a 64x64 input: 4x4x64, 4x4x64, 8x8x64.
        self.heads = nn.ModuleList(DenseStageHead(n) for n in (16 * 64, 16 * 64, 64 * 64))
        self.ssr = SSRRegression(tuple(config["stage_num"]), float(config["lambda_d"]))

    def forward_intermediates(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``stage_features`` (three flattened NHWC stage products), ``p``, ``delta``, ``eta``, ``angles``."""
        (a2, a3, a4), (b2, b3, b4) = self.backbone(x)
        pairs = ((a4, b4), (a3, b3), (a2, b2))
        features = [
            fusion(a, b).permute(0, 2, 3, 1).flatten(1)
            for fusion, (a, b) in zip(self.fusions, pairs, strict=True)
        ]
        outputs = [head(feature) for head, feature in zip(self.heads, features, strict=True)]
        p, delta, eta = (torch.stack(parts, dim=1) for parts in zip(*outputs, strict=True))
        return {
            "stage_features": features,
            "p": p,
            "delta": delta,
            "eta": eta,
            "angles": self.ssr(p, delta, eta),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_intermediates(x)["angles"]
