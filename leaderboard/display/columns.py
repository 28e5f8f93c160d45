"""The board's columns, declared once (as the HF leaderboard template declares them), and the results table
made from them, once per board snapshot.

Each :class:`Column` says which field of a row (:class:`~leaderboard.storage.rows.BoardRow` and its kinds) it
shows, how, whether it is technical (shown on request), and what it means (the About tab lists it).
:func:`board_frame` makes one row per board row; the views (:mod:`.views`), plots (:mod:`.plots`) and
downloads (:mod:`.downloads`) only choose, filter and format it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from ..protocol.benchmarks import BENCHMARKS
from ..storage.results import BoardSnapshot
from ..storage.rows import BoardRow

NOT_STATED = "not stated"  # a model whose config says nothing about its training data
Kind = Literal["text", "angle", "count", "number", "hash"]


@dataclass(frozen=True)
class Column:
    """One column: its label, its field in the results table, where the value comes from, and its kind."""

    label: str
    field: str
    value: Callable[[BoardRow], Any]
    kind: Kind
    about: str
    technical: bool = False


def _field(name: str, default: Any = None) -> Callable[[BoardRow], Any]:
    """A row's field (a kind of row without it: ``default``)."""

    def value(row: BoardRow) -> Any:
        found = getattr(row, name, None)
        return default if found is None else found

    return value


def _benchmark_protocol(row: BoardRow) -> str | None:
    spec = BENCHMARKS.get(row.benchmark)
    return spec.protocol if spec else row.protocol


COLUMNS: tuple[Column, ...] = (
    Column("model", "model", _field("model_name"), "text", "registry name (official rows) or a submission's"),
    Column("method", "method", _field("method", NOT_STATED), "text", "the family: FSA-Net, SSR-Net-MD, ..."),
    Column(
        "trained on",
        "trained_on",
        _field("trained_on", NOT_STATED),
        "text",
        "training data: fixes the protocol",
    ),
    Column("yaw", "mae_yaw", _field("mae_yaw"), "angle", "MAE of yaw, degrees"),
    Column("pitch", "mae_pitch", _field("mae_pitch"), "angle", "MAE of pitch, degrees"),
    Column("roll", "mae_roll", _field("mae_roll"), "angle", "MAE of roll, degrees"),
    Column("mean", "mae", _field("mae"), "angle", "mean of the three MAEs: the rank follows it"),
    Column("params", "params", _field("params"), "count", "parameter count"),
    Column("GFLOPs", "gflops", _field("gflops"), "number", "forward floating-point operations for one face"),
    Column("input", "input_size", _field("input_size"), "count", "crop side in pixels"),
    Column("n", "n", _field("n"), "count", "test samples scored"),
    Column("benchmark", "benchmark", _field("benchmark"), "text", "the benchmark of the row"),
    Column(
        "namespace", "namespace", _field("namespace"), "text", "official (the registry's) or community", True
    ),
    Column(
        "weights", "weights_identity", _field("weights_identity"), "hash", "identity of the weights", True
    ),
    Column("config", "config_identity", _field("config_identity"), "hash", "identity of the config", True),
    Column(
        "model protocol", "model_protocol", _field("model_protocol", NOT_STATED), "text", "the model's", True
    ),
    Column(
        "geodesic", "geodesic_mean", _field("geodesic_mean"), "angle", "mean rotation error, degrees", True
    ),
    Column("dropped", "n_dropped", _field("n_dropped"), "count", "samples outside ±99°", True),
    Column(
        "dataset revision", "dataset_revision", _field("dataset_revision"), "text", "the data scored", True
    ),
    Column("code", "code_version", _field("code_version"), "text", "scoring code version", True),
    Column("protocol", "protocol", _benchmark_protocol, "text", "the benchmark's protocol", True),
)
FIELDS = tuple(column.field for column in COLUMNS)
TECHNICAL = {column.label: column for column in COLUMNS if column.technical}
HASH_CHARS = 12  # a hash is shown shortened


def board_frame(snapshot: BoardSnapshot) -> pd.DataFrame:
    """The results table of a board snapshot: one row per board row, every column's field, best MAE first
    within each benchmark; made once per snapshot (do not modify it)."""
    return snapshot.derived(_frame)


def _frame(snapshot: BoardSnapshot) -> pd.DataFrame:
    rows = [{column.field: column.value(row) for column in COLUMNS} for row in snapshot.rows]
    frame = pd.DataFrame(rows, columns=list(FIELDS))
    return frame.sort_values(["benchmark", "mae", "model"], ignore_index=True)
