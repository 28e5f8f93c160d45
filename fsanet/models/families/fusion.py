"""The fusion family: the mean of several pose models' angles; ``fsanet_fusion`` is FSA-Caps-Fusion.

``fsanet_fusion.<tag>`` averages the three capsule variants (1x1, variance, uniform scoring) of that tag, as
the authors' Keras ``Average`` layer does; its weights are its members' weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from fsanet.errors import FSANetError
from fsanet.models.base import PoseModel
from fsanet.models.catalogue import build_model, model_entry, recipe_of, validate_config
from fsanet.models.families.fsanet import LICENCE, OFFICIAL_FILES, PAPER, TRAINING_SETS
from fsanet.models.family import ModelConfig, ModelEntry, Pretrained, Reported, register_family

FUSION_MEMBERS = ("fsanet_caps_1x1", "fsanet_caps_var", "fsanet_caps_uniform")
MAX_MEMBERS = 4


class EnsembleConfig(ModelConfig):
    architecture: Literal["ensemble"]
    members: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_MEMBERS)]

    @field_validator("members")
    @classmethod
    def _members_are_valid_models(cls, members: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for member in members:
            if member.get("architecture") == "ensemble":
                raise ValueError("an ensemble's members cannot be ensembles")
            try:
                validate_config(member)
            except FSANetError as error:
                raise ValueError(str(error)) from None
        return members


def fusion_config(name: str = "fsanet_fusion", **extra: Any) -> dict[str, Any]:
    """The fusion of the untrained capsule variants."""
    return {
        "architecture": "ensemble",
        "name": name,
        "members": [model_entry(member).config() for member in FUSION_MEMBERS],
        **extra,
    }


def _members_recipe(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every member takes the same input: the first member's crop."""
    return recipe_of(config["members"][0])


def _pretrained() -> tuple[Pretrained, ...]:
    """A tag for every training set all three capsule variants were shipped for."""
    tags = [tag for tag in TRAINING_SETS if all(tag in OFFICIAL_FILES[m][1] for m in FUSION_MEMBERS)]
    return tuple(Pretrained(tag, TRAINING_SETS[tag], LICENCE, members=FUSION_MEMBERS) for tag in tags)


# FSA-Caps-Fusion, the paper's headline numbers (the board's three benchmarks).
REPORTED = (
    Reported("aflw2000", "protocol 1", (4.50, 6.08, 4.64, 5.07), PAPER, "trained on 300W-LP, AFLW2000",
             "fsanet_fusion.300w_lp", "FSA-Caps-Fusion"),
    Reported("biwi", "protocol 1", (4.27, 4.96, 2.76, 4.00), PAPER, "trained on 300W-LP, BIWI",
             "fsanet_fusion.300w_lp", "FSA-Caps-Fusion"),
    Reported("biwi_70_30", "protocol 2", (2.89, 4.29, 3.60, 3.60), PAPER, "BIWI 70/30",
             "fsanet_fusion.biwi", "FSA-Caps-Fusion", "the authors' random split, not the board's fixed one"),
)  # fmt: skip


def _assemble(config: dict[str, Any], members: list[PoseModel]) -> PoseModel:
    return PoseEnsemble(config, members)


@register_family(
    architecture="ensemble",
    method="FSA-Net (fusion)",
    schema=EnsembleConfig,
    recipe=_members_recipe,
    models=(
        ModelEntry(
            "fsanet_fusion",
            "FSA-Net fusion",
            fusion_config,
            _pretrained(),
            about="the 3 capsule models averaged (the paper's best)",
        ),
    ),
    assemble=_assemble,
    paper=PAPER,
    reported=REPORTED,
    tags=("head-pose-estimation", "fsanet"),
)
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
