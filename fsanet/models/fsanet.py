"""FSA-Net variants, SSR-Net-MD and the FSA-Caps-Fusion ensemble as ``torch.nn.Module``s.

Forward contract of every model: ``model(x)`` with ``x`` float32 ``(N, 3, 64, 64)``, **RGB**,
raw pixel scale [0, 255] (the official scale: no /255, no mean/std); returns ``(N, 3)``
degrees ``[yaw, pitch, roll]`` with the authors' signs. The authors trained on BGR; the
weight conversion (:mod:`fsanet.models.convert`) permutes the first layer's input channels once so
the modules themselves take RGB.

Each registers itself with :mod:`fsanet.models.factory`, so ``build_model(config)`` builds it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fsanet.models.base import DEFAULT_IMAGE_SIZE, PoseModel
from fsanet.models.factory import build_model, register_architecture
from fsanet.models.layers import (
    CapsuleAggregation,
    ConvScoring,
    DenseStageHead,
    FineGrainedMapping,
    MetricAggregation,
    MultiStageHeads,
    NetVLADAggregation,
    SSRRegression,
    StageFusion,
    TwoStreamBackbone,
    VarianceScoring,
    flatten_pixels,
)

AGGREGATIONS = {"caps": CapsuleAggregation, "netvlad": NetVLADAggregation, "metric": MetricAggregation}
SCORINGS = ("1x1", "var", "uniform")
IMAGE_SIZE = DEFAULT_IMAGE_SIZE
NUM_STAGES = 3
PIXELS_PER_STAGE = 64  # 8x8 stage maps
CAPSULE_ROWS = 7  # rows of S_L: primary capsules per stage


def fsanet_config(aggregation: str, scoring: str, **extra: Any) -> dict[str, Any]:
    """The config of an FSA-Net variant with the authors' hyper-parameters."""
    if aggregation not in AGGREGATIONS or scoring not in SCORINGS:
        raise ValueError(f"unknown FSA-Net variant {aggregation!r}/{scoring!r}")
    num_primcaps = NUM_STAGES * PIXELS_PER_STAGE if scoring == "uniform" else NUM_STAGES * CAPSULE_ROWS
    return {
        "architecture": "fsanet",
        "aggregation": aggregation,
        "scoring": scoring,
        "num_capsule": 3,
        "dim_capsule": 16,
        "routings": 2,
        "num_primcaps": num_primcaps,
        "m_dim": 5,
        "stage_num": [3, 3, 3],
        "lambda_d": 1.0,
        "image_size": IMAGE_SIZE,
        "input_channel_order": "rgb",
        **extra,
    }


class FSAFeatures(nn.Module):
    """The G model: two streams and the three stage fusions -> [U1, U2, U3], each (N, 64, 8, 8).

    Stage 1 is the deepest level (a4/b4), stage 3 the shallowest (a2/b2, pooled to 8x8).
    """

    def __init__(self):
        super().__init__()
        self.backbone = TwoStreamBackbone()
        self.fusions = nn.ModuleList([StageFusion(128), StageFusion(64), StageFusion(32, product_pool=True)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        (a2, a3, a4), (b2, b3, b4) = self.backbone(x)
        pairs = ((a4, b4), (a3, b3), (a2, b2))
        return [fusion(a, b) for fusion, (a, b) in zip(self.fusions, pairs, strict=True)]


class FSANet(PoseModel):
    """FSA-Net: features -> scoring -> fine-grained structure mapping -> aggregation -> SSR heads.

    ``features`` replaces the two-stream G model (e.g. a timm backbone, :mod:`fsanet.models.timm_head`):
    any module returning three (N, 64, g, g) stage maps, with ``pixels_per_stage = g * g``.
    """

    def __init__(
        self,
        config: dict[str, Any],
        features: nn.Module | None = None,
        pixels_per_stage: int = PIXELS_PER_STAGE,
    ):
        super().__init__(config)
        scoring, aggregation = config["scoring"], config["aggregation"]
        num_primcaps = int(config["num_primcaps"])
        self.features = features if features is not None else FSAFeatures()
        if scoring == "uniform":
            self.scoring, self.mapping = None, None
        else:
            self.scoring = ConvScoring() if scoring == "1x1" else VarianceScoring()
            self.mapping = FineGrainedMapping(
                NUM_STAGES, pixels_per_stage, num_primcaps // NUM_STAGES, int(config["m_dim"])
            )
        aggregation_class = AGGREGATIONS[aggregation]
        agg_kwargs = {"num_out": int(config["num_capsule"]), "out_dim": int(config["dim_capsule"])}
        if aggregation == "caps":
            agg_kwargs["routings"] = int(config["routings"])
        self.aggregation = aggregation_class(num_primcaps, **agg_kwargs)
        self.heads = MultiStageHeads(NUM_STAGES)
        self.ssr = SSRRegression(tuple(config["stage_num"]), float(config["lambda_d"]))

    def primary_capsules(self, stage_maps: list[torch.Tensor]) -> torch.Tensor:
        pixels = torch.cat([flatten_pixels(u) for u in stage_maps], dim=1)  # U_bar (N, 192, 64)
        if self.mapping is None:
            return pixels
        scores = torch.stack([self.scoring(u) for u in stage_maps], dim=1)  # (N, 3, 64)
        return self.mapping(scores, pixels)

    def forward_intermediates(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every named intermediate of the official graph, for parity tests and analysis.

        ``stage_maps`` (N, 3, 64, 8, 8), ``scores`` (N, 3, 64) unless uniform, ``primcaps``,
        ``aggregated`` (N, 3, 16), ``p`` (N, stage, angle, bin), ``delta``/``eta`` (N, stage, angle).
        """
        stage_maps = self.features(x)
        primcaps = self.primary_capsules(stage_maps)
        aggregated = self.aggregation(primcaps)
        p, delta, eta = self.heads(aggregated)
        outputs = {"stage_maps": torch.stack(stage_maps, dim=1)}
        if self.scoring is not None:
            outputs["scores"] = torch.stack([self.scoring(u) for u in stage_maps], dim=1)
        return outputs | {
            "primcaps": primcaps,
            "aggregated": aggregated,
            "p": p,
            "delta": delta,
            "eta": eta,
            "angles": self.ssr(p, delta, eta),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        aggregated = self.aggregation(self.primary_capsules(self.features(x)))
        return self.ssr(*self.heads(aggregated))


def ssrnet_md_config(**extra: Any) -> dict[str, Any]:
    return {
        "architecture": "ssrnet_md",
        "stage_num": [3, 3, 3],
        "lambda_d": 1.0,
        "image_size": IMAGE_SIZE,
        "input_channel_order": "rgb",
        **extra,
    }


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


class PoseEnsemble(PoseModel):
    """Element-wise mean of its members' angles (Keras ``Average``): FSA-Caps-Fusion."""

    def __init__(self, config: dict[str, Any], members: list[PoseModel] | None = None):
        super().__init__(config)
        if members is None:
            members = [build_model(member) for member in config["members"]]
        self.members = nn.ModuleList(members)
        self.config["members"] = [member.config for member in members]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(dim=0)


register_architecture("fsanet", FSANet)
register_architecture("ssrnet_md", SSRNetMD)
register_architecture("ensemble", PoseEnsemble)
