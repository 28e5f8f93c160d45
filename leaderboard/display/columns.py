"""The board's columns, declared once (as the HF leaderboard template declares them), and the results table
made from them, once per board snapshot.

Each :class:`Column` says which field of a row (:class:`~leaderboard.storage.rows.BoardRow` and its kinds) it
shows, how, whether it is technical (shown on request), and what it means (the About tab lists it).
:func:`board_frame` makes one row per measured row; :func:`reported_frame` one per number a paper reports
(:mod:`leaderboard.protocol.reported`), with the difference to the measured row of the model it describes;
:func:`board_frame_with_reported` is both, what the board shows and downloads. The views (:mod:`.views`),
plots (:mod:`.plots`, measured rows only) and downloads (:mod:`.downloads`) only choose, filter and format
them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from ..protocol.benchmarks import BENCHMARKS
from ..protocol.reported import reported_rows
from ..storage.results import BoardSnapshot
from ..storage.rows import BoardRow, MeasuredRow, ReportedRow

NOT_STATED = "not stated"  # a model whose config says nothing about its training data
MEASURED, REPORTED = "measured", "reported"  # the kinds of row; shown as SOURCES says
SOURCES = {MEASURED: "measured here", REPORTED: "reported"}
DIFFERENCE = "measured_minus_reported"
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


def _paired(row: BoardRow) -> None:
    """The difference needs a reported row's measured pair: :func:`reported_frame` fills it in."""
    return None


def _paper(row: BoardRow) -> str | None:
    if not isinstance(row, ReportedRow):
        return None
    return f"{row.paper} ({row.table}{'; ' + row.note if row.note else ''})"


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
        "source",
        "kind",
        _field("kind"),
        "text",
        "*measured here* (this board scored the model, ranked) or *reported* (the paper's own number, "
        "quoted: never ranked, listed after the measured rows of its benchmark)",
    ),
    Column(
        "measured - reported",
        DIFFERENCE,
        _paired,
        "angle",
        "on a reported row: the mean MAE this board measured for the same registry model on the same "
        "benchmark minus the paper's (positive: the board finds a larger error); empty where the paper's "
        "model is not on the board",
    ),
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
    Column("paper", "paper", _paper, "text", "where a reported number is quoted from: paper and table", True),
)
FIELDS = tuple(column.field for column in COLUMNS)
TECHNICAL = {column.label: column for column in COLUMNS if column.technical}
HASH_CHARS = 12  # a hash is shown shortened


def board_frame(snapshot: BoardSnapshot) -> pd.DataFrame:
    """The results table of a board snapshot: one row per measured row, every column's field, best MAE first
    within each benchmark; made once per snapshot (do not modify it)."""
    return snapshot.derived(_frame)


def reported_frame(snapshot: BoardSnapshot) -> pd.DataFrame:
    """The papers' numbers as a table of the same columns, each with its difference to the measured row of
    the registry model it describes on its benchmark (of several: the one scored on the most samples)."""
    return snapshot.derived(_reported_frame)


def board_frame_with_reported(snapshot: BoardSnapshot) -> pd.DataFrame:
    """:func:`board_frame`, then :func:`reported_frame`: what the board shows and downloads (``kind`` tells
    them apart; counts are nullable integers, empty on reported rows)."""
    return snapshot.derived(_with_reported)


def _record(row: BoardRow) -> dict[str, Any]:
    return {column.field: column.value(row) for column in COLUMNS}


def _table(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=list(FIELDS))
    return frame.sort_values(["benchmark", "mae", "model"], ignore_index=True)


def _frame(snapshot: BoardSnapshot) -> pd.DataFrame:
    return _table([_record(row) for row in snapshot.rows])


def _measured_pairs(snapshot: BoardSnapshot) -> dict[tuple[str, str], MeasuredRow]:
    """``{(registry name, benchmark): its official row}``, the row scored on the most samples first."""
    pairs: dict[tuple[str, str], MeasuredRow] = {}
    for row in sorted(snapshot.rows, key=lambda r: -r.n):
        if row.namespace == "official":
            pairs.setdefault((row.model_name, row.benchmark), row)
    return pairs


def _reported_frame(snapshot: BoardSnapshot) -> pd.DataFrame:
    pairs, records = _measured_pairs(snapshot), []
    for row in reported_rows():
        record = _record(row)
        measured = pairs.get((row.registry_model, row.benchmark)) if row.registry_model else None
        if measured is not None:
            record[DIFFERENCE] = measured.mae - row.mae
        records.append(record)
    return _table(records)


def _with_reported(snapshot: BoardSnapshot) -> pd.DataFrame:
    parts = [frame for frame in (board_frame(snapshot), reported_frame(snapshot)) if not frame.empty]
    frame = pd.concat(parts, ignore_index=True) if parts else board_frame(snapshot).copy()
    for column in COLUMNS:
        if column.kind == "count":
            frame[column.field] = frame[column.field].astype("Int64")
        elif column.kind in ("angle", "number"):
            frame[column.field] = frame[column.field].astype(float)
    return frame
