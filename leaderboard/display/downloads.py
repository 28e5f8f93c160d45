"""Downloads of the board: the results table (:func:`~.columns.board_frame`) as CSV (safe for spreadsheets),
JSON records or Markdown, for the Space's download button and ``leaderboard table``."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from .columns import HASH_CHARS

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
