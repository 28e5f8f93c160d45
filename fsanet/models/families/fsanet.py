"""The FSA-Net family (Yang et al., CVPR 2019): the network and the authors' nine variants and their weights.

Forward contract: ``model(x)`` with ``x`` float32 ``(N, 3, 64, 64)``, **RGB**, raw pixel scale [0, 255] (the
official scale: no /255, no mean/std); returns ``(N, 3)`` degrees ``[yaw, pitch, roll]`` with the authors'
signs. The authors trained on BGR; the weight conversion (:func:`convert_h5`, with the two streams read by
:mod:`~fsanet.models.families._fsa_keras`) permutes the first layer's input channels once so the modules
themselves take RGB.

Names are ``fsanet_{caps,netvlad,metric}_{1x1,var,uniform}`` (aggregation x scoring; ``uniform`` is the
paper's "noS"); tags ``.300w_lp`` (protocol 1) and ``.biwi`` (protocol 2, BIWI 70/30) where the authors
shipped weights, fetched from ``FSANET_OFFICIAL_MIRROR`` (the upstream repository at a pinned commit by
default) and checked against the sha256 pinned here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from fsanet.data.recipes import fsanet_recipe
from fsanet.errors import InvalidWeightsError
from fsanet.models.base import DEFAULT_IMAGE_SIZE, PoseModel
from fsanet.models.families import _fsa_keras as keras
from fsanet.models.family import (
    Converter,
    ModelConfig,
    ModelEntry,
    Pretrained,
    TrainingSet,
    WeightsFile,
    register_family,
)
from fsanet.models.layers import (
    CapsuleAggregation,
    ConvScoring,
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
PAPER = (
    "Yang et al., FSA-Net: Learning Fine-Grained Structure Aggregation for Head Pose Estimation from a "
    "Single Image, CVPR 2019"
)


# ------------------------------------------------------------------------------- the authors' weights
DEFAULT_OFFICIAL_MIRROR = "https://github.com/shamangary/FSA-Net/raw/4361d0e48103bb215d15734220c9d17e6812bb48"
MIRROR_ENV = "FSANET_OFFICIAL_MIRROR"
LICENCE = "apache-2.0"  # the authors' repository, weights included
TRAINED_ON_300W_LP = TrainingSet(
    "300W-LP", "protocol 1", "300W-LP: ordinary photos", "many people, poses up to ±90°"
)
TRAINED_ON_BIWI = TrainingSet(
    "BIWI 70%",
    "protocol 2",
    "BIWI: lab footage only",
    "24 people in one lab; on ordinary photos its yaw can be far off",
)
TRAINING_SETS = {"300w_lp": TRAINED_ON_300W_LP, "biwi": TRAINED_ON_BIWI}
TAG_FOLDERS = {"300w_lp": "300W_LP_models", "biwi": "BIWI_models"}


def authors_weights(
    official_name: str, sha256: Mapping[str, str], unusable: Mapping[str, str] | None = None
) -> tuple[Pretrained, ...]:
    """The authors' file of ``official_name`` per tag (``pre-trained/<tag folder>/<name>/<name>.h5``)."""
    return tuple(
        Pretrained(
            tag,
            TRAINING_SETS[tag],
            LICENCE,
            file=WeightsFile(
                f"pre-trained/{TAG_FOLDERS[tag]}/{official_name}/{official_name}.h5",
                digest,
                MIRROR_ENV,
                DEFAULT_OFFICIAL_MIRROR,
            ),
            unusable=(unusable or {}).get(tag),
        )
        for tag, digest in sha256.items()
    )


# Our name -> (the authors' weight folder, the sha256 of its file per tag at the pinned commit).
OFFICIAL_FILES = {
    "fsanet_caps_1x1": (
        "fsanet_capsule_3_16_2_21_5",
        {
            "300w_lp": "51814906b845474e329d4c935636e03475a7d5c675c35e233b69588ef007f67b",
            "biwi": "4ef0297d6ba9d0d9b6594e011e8ed4427d9216f7e284484f88b36ca3c064eb05",
        },
    ),
    "fsanet_caps_var": (
        "fsanet_var_capsule_3_16_2_21_5",
        {
            "300w_lp": "64b8163d0102e52da7c42906e03b6d8065c34aac56111eea914413d6698f07a1",
            "biwi": "644de8ce1f559ecc2c3b1448c6cbd0edbc5913ba150ed191e5115e5ebb3a90f6",
        },
    ),
    "fsanet_caps_uniform": (
        "fsanet_noS_capsule_3_16_2_192_5",
        {
            "300w_lp": "eca4f66b69a0ab1f6c9b0535429c00834197af0094004f761c754d52e67becac",
            "biwi": "fb8102bc68f9d503280c7f00c724e1a3f0397daec302831ad19c0682d6d1acc8",
        },
    ),
    "fsanet_metric_1x1": (
        "fsanet_metric_3_16_2_21_5",
        {
            "300w_lp": "62fee91749ee9e93fe8e4f82637ea9b951995eb719c4ba86fde8aab3b012917c",
            "biwi": "0fe040ea5986ed0b98f5731f4b9b4e5b02e3edc2de1c8590972d36d9729c3e18",
        },
    ),
    "fsanet_metric_var": (
        "fsanet_var_metric_3_16_2_21_5",
        {
            "300w_lp": "30d104122e99dadb19b16df0ab2310a03fff36920c7f284ebe0d8f81988739ee",
            "biwi": "47823747fb90f1e444502036cec1ea61c762ac44476adcf8536e4659f3285068",
        },
    ),
    "fsanet_metric_uniform": (
        "fsanet_noS_metric_3_16_2_192_5",
        {
            "300w_lp": "a6b0a2e408ed078234778e9d35a681d11d7351cdd43551e184edff2196682e5b",
            "biwi": "0a5e89d3b9769e7e4a0c81c5799c7b9ea0084bac37f9271b4c2add7e51f027a1",
        },
    ),
    "fsanet_netvlad_1x1": (
        "fsanet_netvlad_3_16_2_21_5",
        {
            "300w_lp": "1d3d963cdd59afe2923d900b82bb02218ae01345df60a2072c99ef67837ec5f6",
            "biwi": "dd1c65e4b9f072e8aa3017bec0db6c67c3df855aab86e24748e68a13a278e9b9",
        },
    ),
    "fsanet_netvlad_var": (
        "fsanet_var_netvlad_3_16_2_21_5",
        {
            "300w_lp": "359ead6fe156524f877af7810ebcfb81275f2a6384315e237c513e1f88e22ebb",
            "biwi": "d871545a88e963146ae4278db1952fa4726cec6b0cc9fca1863a8658593d7ab6",
        },
    ),
    "fsanet_netvlad_uniform": (
        "fsanet_noS_netvlad_3_16_2_192_5",
        {"biwi": "76758e94023a8856954ed4c4c0bbdfa2db5079d3bcda56f3574dfa89435fc61e"},
    ),
}
# The authors' frozen TensorFlow graphs (300W-LP weights), the speed reference of `fsanet bench`.
FROZEN_GRAPHS = {
    "fsanet_caps_1x1": (
        "fsanet_capsule_3_16_2_21_5",
        "95d12028571084c6bf8f97825272e1f3324e075627024854fe1e584bd4b6dae1",
    ),
    "fsanet_caps_var": (
        "fsanet_var_capsule_3_16_2_21_5",
        "f9760f6d2a378de625d511337ec75e8400f02d2615e9713ca4e154b5d61fefb1",
    ),
    "fsanet_caps_uniform": (
        "fsanet_noS_capsule_3_16_2_192_5",
        "96600aa7939b9ac027fab0531b823f933f80390e45f736ac939444ebdbd5c9e4",
    ),
}
# Shipped weights that cannot be used (why): not listed; loading them fails the finiteness check.
UNUSABLE = {"fsanet_netvlad_var": {"300w_lp": "the authors' file holds NaN weights"}}
AGGREGATION_LABELS = {"caps": "caps", "netvlad": "NetVLAD", "metric": "metric"}
ABOUT_VARIANTS = "caps/metric/NetVLAD: the aggregation; 1x1/var/uniform: the scoring"


def _frozen_graph(name: str) -> WeightsFile | None:
    if name not in FROZEN_GRAPHS:
        return None
    graph, sha256 = FROZEN_GRAPHS[name]
    path = f"pre-trained/converted-models/tf/{graph}.pb"
    return WeightsFile(path, sha256, MIRROR_ENV, DEFAULT_OFFICIAL_MIRROR)


def _variant(name: str) -> ModelEntry:
    _, aggregation, scoring = name.split("_")
    official_name, sha256 = OFFICIAL_FILES[name]
    return ModelEntry(
        name,
        f"FSA-Net {AGGREGATION_LABELS[aggregation]} {scoring}",
        lambda: fsanet_config(aggregation, scoring, name=name),
        authors_weights(official_name, sha256, UNUSABLE.get(name)),
        _frozen_graph(name),
        ABOUT_VARIANTS,
    )


# ------------------------------------------------------------------------------- the authors' files
def _layer_number(key: str) -> int:
    return int(re.search(r"_(\d+)$", key).group(1))


def _detect_fsanet_variant(layers: keras.KerasLayers) -> tuple[str, str, int]:
    names = {key.rsplit("/", 1)[-1] for key in layers}
    groups = {key.split("/", 1)[0] for key in layers if "/" in key}
    if "caps" in names:
        aggregation, num_primcaps = "caps", keras.find(layers, "caps")["W"].shape[1]
    elif "net_vlad_1" in names:
        aggregation, num_primcaps = "netvlad", None
    elif "mat_mul_layer_2" in names:
        aggregation = "metric"
        num_primcaps = keras.find(layers, "mat_mul_layer_2")["kernel_type2"].shape[0]
    else:
        raise InvalidWeightsError("no capsule, NetVLAD or metric aggregation layer in the file")
    if "ssr_S_model" not in groups:
        scoring = "uniform"
    elif "conv2d_7" in names:
        scoring = "1x1"
    else:
        scoring = "var"
    if num_primcaps is None:
        num_primcaps = 192 if scoring == "uniform" else 21
    return aggregation, scoring, int(num_primcaps)


def convert_fsanet(layers: keras.KerasLayers) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The authors' FSA-Net layers -> ``(config, state_dict)``; the variant is recognised from the names."""
    aggregation, scoring, num_primcaps = _detect_fsanet_variant(layers)
    config = fsanet_config(aggregation, scoring)
    if config["num_primcaps"] != num_primcaps:
        raise InvalidWeightsError(f"{num_primcaps} primary capsules, expected {config['num_primcaps']}")
    state = keras.backbone(layers, "features.backbone") | keras.fusions(layers, "features.fusions")
    if scoring != "uniform":
        if scoring == "1x1":
            state |= keras.conv1x1("scoring.conv", keras.find(layers, "conv2d_7", "ssr_S_model"))
        state |= keras.dense("mapping.s_r", keras.find(layers, "dense_1", "ssr_S_model"))
        state |= keras.dense("mapping.s_l", keras.find(layers, "dense_2", "ssr_S_model"))
    if aggregation == "caps":
        state["aggregation.weight"] = keras.tensor(keras.find(layers, "caps")["W"])
    elif aggregation == "metric":
        features, capsules = keras.find(layers, "mat_mul_layer_1"), keras.find(layers, "mat_mul_layer_2")
        state["aggregation.kernel_features"] = keras.tensor(features["kernel_type1"])
        state["aggregation.kernel_capsules"] = keras.tensor(capsules["kernel_type2"])
    else:
        vlad = keras.find(layers, "net_vlad_1")
        state["aggregation.cluster_weights"] = keras.tensor(vlad["kernel_W1"])
        state["aggregation.cluster_biases"] = keras.tensor(vlad["kernel_B1"])
        state["aggregation.cluster_centres"] = keras.tensor(vlad["kernel_W2"][0])
        state["aggregation.hidden"] = keras.tensor(vlad["kernel_H1"])
    # The F model's three p-heads are its dense layers in numbering order (dense_3..5, or dense_1..3 for noS).
    head_keys = sorted(
        (key for key in layers if key.startswith("ssr_F") and "/dense_" in key), key=_layer_number
    )
    if len(head_keys) != 3:
        raise InvalidWeightsError(f"expected 3 dense p-heads in the F model, found {head_keys}")
    for stage, key in enumerate(head_keys):
        prefix = f"heads.stages.{stage}"
        state |= keras.dense(f"{prefix}.p", layers[key])
        state |= keras.dense(f"{prefix}.delta", keras.find(layers, f"delta_s{stage + 1}"))
        state |= keras.dense(f"{prefix}.eta", keras.find(layers, f"local_delta_stage{stage + 1}"))
    return config, state


def is_fsanet_file(path: str | Path) -> bool:
    """Whether ``path`` is one of the authors' FSA-Net files (its G, S and F sub-models)."""
    return "ssr_G_model" in (keras.groups(path) or set())


def convert_h5(path: str | Path, name: str | None = None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """One of the authors' FSA-Net ``.h5`` files -> ``(config, state_dict)``, checked name by name and shape
    by shape against the model the config builds."""
    config, state = convert_fsanet(keras.read_h5_weights(path))
    return keras.finished(config, state, path, name, FSANet)


# ------------------------------------------------------------------------------------------ the schema
Small = Annotated[int, Field(ge=1, le=64)]


class StagedConfig(ModelConfig):
    """The SSR stages both FSA-Net and SSR-Net-MD end with."""

    input_channel_order: Literal["rgb"] = "rgb"
    stage_num: Annotated[list[Annotated[int, Field(ge=1, le=32)]], Field(min_length=3, max_length=3)]
    lambda_d: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]


class FSANetConfig(StagedConfig):
    architecture: Literal["fsanet"]
    aggregation: Literal["caps", "netvlad", "metric"]
    scoring: Literal["1x1", "var", "uniform"]
    num_capsule: Annotated[int, Field(ge=1, le=16)]
    dim_capsule: Small
    routings: Annotated[int, Field(ge=1, le=10)]
    num_primcaps: Annotated[int, Field(ge=3, le=3 * 64)]
    m_dim: Small
    image_size: Literal[64]  # the two-stream backbone's fixed input

    @model_validator(mode="after")
    def _primary_capsules(self) -> FSANetConfig:
        pixels = 3 * self._pixels_per_stage()
        if self.scoring == "uniform" and self.num_primcaps != pixels:
            raise ValueError(f"num_primcaps must be {pixels} with uniform scoring")
        if self.num_primcaps % 3:
            raise ValueError("num_primcaps must be a multiple of 3 (one share per stage)")
        return self

    def _pixels_per_stage(self) -> int:
        return PIXELS_PER_STAGE


def image_size_recipe(config: Mapping[str, Any]) -> dict[str, Any]:
    """FSA-Net's recipe at the config's input size (what every FSA-style config without one gets)."""
    return fsanet_recipe(config.get("image_size") or IMAGE_SIZE)


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


@register_family(
    architecture="fsanet",
    method="FSA-Net",
    schema=FSANetConfig,
    recipe=image_size_recipe,
    models=tuple(_variant(name) for name in OFFICIAL_FILES),
    converter=Converter(is_fsanet_file, convert_h5),
    paper=PAPER,
    tags=("head-pose-estimation", "fsanet"),
)
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
