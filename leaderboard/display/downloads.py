"""Downloads of the board: the results table (:func:`~.columns.board_frame`) as CSV (safe for spreadsheets),
JSON records or Markdown, for the Space's download button and ``leaderboard table``.

A download is data (:func:`download_frame`): the rank, every field at full precision, counts as plain
integers; rounding and the small-test-set flag are for the screen only (:mod:`.views`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from .columns import COLUMNS, HASH_CHARS
from .views import ALL, ranked_rows

# Text cells a spreadsheet would run as a formula start with one of these.
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


def download_frame(
    table: pd.DataFrame, benchmark: str = ALL, show_all: bool = True, search: str | None = ""
) -> pd.DataFrame:
    """The rows a view shows (:func:`~.views.ranked_rows`; default: every stored result) as data: ``rank``,
    then every column's field (technical ones too) at full precision, counts as integers (empty where a row
    has none)."""
    rows = ranked_rows(table, benchmark, show_all, search)
    counts = [column.field for column in COLUMNS if column.kind == "count"]
    return rows.astype(dict.fromkeys(counts, "Int64"))


def format_table(frame: pd.DataFrame, fmt: str = "markdown") -> str:
    """The board as ``csv`` (safe for spreadsheets), ``json`` (records) or ``markdown``; numbers as they are
    in ``frame`` (CSV and JSON keep every digit of a float)."""
    if fmt == "csv":
        return spreadsheet_safe(frame).to_csv(index=False)
    if fmt == "json":
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        return json.dumps(records, indent=2, default=_plain) + "\n"
    if fmt == "markdown":
        return _markdown(frame)
    raise ValueError(f"unknown format {fmt!r} (csv, json, markdown)")


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (JSON has no numpy types)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _markdown(frame: pd.DataFrame) -> str:
    # Hand-rolled: pandas.to_markdown needs the optional 'tabulate' package.
    def cell(value: Any) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            return ""  # missing (a reported row's rank and counts): empty, as in the CSV
        if isinstance(value, float):
            return f"{value:.2f}"
        text = str(value)
        return text[:HASH_CHARS] if re.fullmatch(r"[0-9a-f]{64}", text) else text.replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
