"""Equivalent models get no row of their own: a community row whose per-sample predictions equal those of a
row already on the board (same benchmark, same dataset revision) within :data:`TOLERANCE_DEG` is never
published; its submitter is answered with that row, named.

The official weights wrapped as an ensemble of one, an ensemble of two copies of them, or the official fusion
with a pre-processing change no member uses are other identities (other configs, other weights files) but
the same model: they predict what the official rows predict. Only rows whose four MAEs are within the
tolerance of the new row's can hold equal predictions (each sample's error moves by at most the tolerance),
so only their predictions are read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..protocol.metrics import AXES
from ..storage.results import BoardSnapshot, ResultsStore
from ..storage.rows import MeasuredRow

TOLERANCE_DEG = 1e-4
PREDICTED = [f"pred_{axis}" for axis in AXES]


def same_predictions(ours: pd.DataFrame, theirs: pd.DataFrame, tolerance: float = TOLERANCE_DEG) -> bool:
    """True when both hold the same samples and every predicted angle differs by at most ``tolerance``."""
    if len(ours) != len(theirs) or set(ours["sample_id"]) != set(theirs["sample_id"]):
        return False
    a = ours.set_index("sample_id")[PREDICTED]
    b = theirs.set_index("sample_id")[PREDICTED].loc[a.index]
    return bool(np.all(np.abs(a.to_numpy() - b.to_numpy()) <= tolerance))


def equivalent_row(
    store: ResultsStore, board: BoardSnapshot, row: MeasuredRow, predictions: pd.DataFrame
) -> MeasuredRow | None:
    """The row of ``board`` (official ones first) on ``row``'s benchmark and dataset revision whose stored
    predictions equal ``predictions`` within :data:`TOLERANCE_DEG`, or None."""
    slack = TOLERANCE_DEG + 1e-9  # the MAEs are means of float64 errors
    for other in board.on(row.benchmark, row.dataset_revision):
        if other.key.row == row.key.row or any(
            abs(getattr(other, field) - getattr(row, field)) > slack
            for field in ("mae", "mae_yaw", "mae_pitch", "mae_roll")
        ):
            continue
        try:
            theirs = store.predictions(other.key)
        except (OSError, ValueError):  # its predictions are not here (a pulled board): cannot be compared
            continue
        if {"sample_id", *PREDICTED} <= set(theirs.columns) and same_predictions(predictions, theirs):
            return other
    return None


def equivalence_reason(row: MeasuredRow, same: MeasuredRow) -> str:
    """What the submitter is told: the existing row, named."""
    return (
        f"its predictions on {row.benchmark} equal those of the {same.namespace} row {same.model_name!r} "
        f"(every sample within {TOLERANCE_DEG:g} degrees, MAE {same.mae:.2f}): the same model gets no row "
        "of its own"
    )
