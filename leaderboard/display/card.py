"""The board's numbers for a model card: ``fsanet``'s ``save_pretrained``/``push_to_hub`` ask every
``fsanet.model_card_results`` entry point (this function is ours, in ``pyproject.toml``)."""

from __future__ import annotations

from typing import Any

from fsanet.models.base import PoseModel
from fsanet.models.identity_cache import carried_identity

from ..storage.results import ResultsStore

CARD_FIELDS = ("mae_yaw", "mae_pitch", "mae_roll", "mae", "n")


def board_results(model: PoseModel) -> list[dict[str, Any]]:
    """The rows of ``LEADERBOARD_DIR``'s board holding this model (its weights and config), any name."""
    rows = ResultsStore().snapshot().find(carried_identity(model))
    return [
        {"benchmark": row.benchmark, **{field: getattr(row, field) for field in CARD_FIELDS}} for row in rows
    ]
