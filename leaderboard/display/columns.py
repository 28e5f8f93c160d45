"""The board's columns, declared once (as the HF leaderboard template declares them), and the tables made
from them: the full results table (downloads, ``leaderboard table``) and its text formats.

Each :class:`Column` says where its value comes from in a validated record
(:mod:`leaderboard.protocol.records`), how it is shown, whether it is technical (shown on request), and what
it means (the About tab lists it). :func:`board_frame` makes one row per record; the views
(:mod:`leaderboard.display.views`) only choose and format columns of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from ..protocol.benchmarks import BENCHMARKS

NOT_STATED = "not stated"  # a model whose config says nothing about its training data
Kind = Literal["text", "angle", "count", "number", "hash"]
Record = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One column: its label, its field in the results table, where the value comes from, and its kind."""

    label: str
    field: str
    value: Callable[[dict[str, Any], dict[str, Any]], Any]  # (record config, its scores) -> value
    kind: Kind
    about: str
    technical: bool = False


def _config(key: str, default: Any = None) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    return lambda config, scores: config.get(key, default)


def _score(key: str) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    return lambda config, scores: scores.get(key)


def _benchmark_protocol(config: dict[str, Any], scores: dict[str, Any]) -> str | None:
    spec = BENCHMARKS.get(config["benchmark"])
    return spec.protocol if spec else config.get("protocol")


COLUMNS: tuple[Column, ...] = (
    Column(
        "model", "model", _config("model_name"), "text", "registry name (official rows) or a submission's"
    ),
    Column("method", "method", _config("method", NOT_STATED), "text", "the family: FSA-Net, SSR-Net-MD, ..."),
    Column(
        "trained on",
        "trained_on",
        _config("trained_on", NOT_STATED),
        "text",
        "training data: fixes the protocol",
    ),
    Column("yaw", "mae_yaw", _score("mae_yaw"), "angle", "MAE of yaw, degrees"),
    Column("pitch", "mae_pitch", _score("mae_pitch"), "angle", "MAE of pitch, degrees"),
    Column("roll", "mae_roll", _score("mae_roll"), "angle", "MAE of roll, degrees"),
    Column("mean", "mae", _score("mae"), "angle", "mean of the three MAEs: the rank follows it"),
    Column("params", "params", _config("params"), "count", "parameter count"),
    Column("GFLOPs", "gflops", _config("gflops"), "number", "forward floating-point operations for one face"),
    Column("input", "input_size", _config("input_size"), "count", "crop side in pixels"),
    Column("n", "n", _score("n"), "count", "test samples scored"),
    Column("benchmark", "benchmark", _config("benchmark"), "text", "the benchmark of the row"),
    Column(
        "namespace", "namespace", _config("namespace"), "text", "official (the registry's) or community", True
    ),
    Column(
        "weights", "weights_identity", _config("weights_identity"), "hash", "identity of the weights", True
    ),
    Column("config", "config_identity", _config("config_identity"), "hash", "identity of the config", True),
    Column(
        "model protocol", "model_protocol", _config("model_protocol", NOT_STATED), "text", "the model's", True
    ),
    Column(
        "geodesic", "geodesic_mean", _score("geodesic_mean"), "angle", "mean rotation error, degrees", True
    ),
    Column("dropped", "n_dropped", _score("n_dropped"), "count", "samples outside ±99°", True),
    Column(
        "dataset revision", "dataset_revision", _config("dataset_revision"), "text", "the data scored", True
    ),
    Column("code", "code_version", _config("code_version"), "text", "scoring code version", True),
    Column("protocol", "protocol", _benchmark_protocol, "text", "the benchmark's protocol", True),
)
FIELDS = tuple(column.field for column in COLUMNS)
TECHNICAL = {column.label: column for column in COLUMNS if column.technical}
HASH_CHARS = 12  # a hash is shown shortened


def board_frame(records: Sequence[Record]) -> pd.DataFrame:
    """One row per record, every column's field, best MAE first within each benchmark."""
    rows = []
    for record in records:
        config = record["config"]
        scores = record["results"][config["benchmark"]]
        rows.append({column.field: column.value(config, scores) for column in COLUMNS})
    frame = pd.DataFrame(rows, columns=list(FIELDS))
    return frame.sort_values(["benchmark", "mae", "model"], ignore_index=True)


# ----------------------------------------------------------------------------------------- text formats
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first) get a
    leading ``'``; numbers stay numbers."""
    safe = frame.copy()
    for name in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[name]):
            safe[name] = [
                f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) else cell
                for cell in safe[name]
            ]
    return safe


def format_table(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    """The board as ``csv`` (safe for spreadsheets), ``json`` (records) or ``markdown``."""
    if fmt == "csv":
        return spreadsheet_safe(frame).to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2)
    if fmt == "markdown":
        return _markdown(frame)
    raise ValueError(f"unknown format {fmt!r} (csv, json, markdown)")


def _markdown(frame: pd.DataFrame) -> str:
    # Hand-rolled: pandas.to_markdown needs the optional 'tabulate' package.
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.2f}"
        text = str(value)
        return text[:HASH_CHARS] if re.fullmatch(r"[0-9a-f]{64}", text) else text.replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
