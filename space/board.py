"""Leaderboard and Submit tabs: wiring of the ``leaderboard`` package's table, figures and submissions."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import gradio as gr
import pandas as pd

from leaderboard.config import BENCHMARKS, leaderboard_dir
from leaderboard.store import ResultsStore, format_table

ALL = "all"
EMPTY_BOARD = (
    "**No benchmark results yet** in `{root}/results`. To fill the board: prepare a benchmark "
    "(`leaderboard.importers.prepare_aflw2000(<AFLW2000 dir>, {root}/datasets/aflw2000)`), then score a "
    "model on it (`leaderboard.runner.evaluate('fsanet_fusion.300w_lp', 'aflw2000')`), or point "
    "`LEADERBOARD_DIR` at a directory that already holds `results/*.json`, and reload this page."
)


def board_table(search: str = "", benchmark: str = ALL) -> pd.DataFrame:
    """The stored results, rows whose model contains ``search`` (case-insensitive) on ``benchmark``."""
    table = ResultsStore().table()
    if benchmark != ALL:
        table = table[table["benchmark"] == benchmark]
    if search.strip():
        table = table[table["model"].str.contains(search.strip(), case=False, regex=False)]
    return table.reset_index(drop=True)


def board_status() -> str:
    """The empty-state instructions when no result is stored, else a count of rows."""
    table = ResultsStore().table()
    if table.empty:
        return EMPTY_BOARD.format(root=leaderboard_dir())
    return f"{len(table)} result(s) for {table['model'].nunique()} model(s)."


def export_results(fmt: Literal["csv", "json"] = "csv") -> str:
    """Every stored result as a downloadable CSV or JSON file (path)."""
    if fmt not in ("csv", "json"):
        raise gr.Error(f"unknown format {fmt!r}: choose csv or json")
    path = Path(tempfile.mkdtemp(prefix="fsanet-results-")) / f"leaderboard.{fmt}"
    path.write_text(format_table(ResultsStore().table(), fmt))
    return str(path)


def leaderboard_tab() -> None:
    gr.Markdown(board_status, elem_id="board-status")
    with gr.Row():
        search = gr.Textbox(label="Search models", placeholder="e.g. caps, ssrnet", elem_id="board-search")
        benchmark = gr.Dropdown([ALL, *BENCHMARKS], value=ALL, label="Benchmark")
    table = gr.Dataframe(
        board_table, label="Mean absolute error (degrees)", interactive=False, elem_id="board-table"
    )
    with gr.Row():
        fmt = gr.Radio(["csv", "json"], value="csv", label="Download format")
        download = gr.Button("Download results", elem_id="board-download")
    file = gr.File(label="Results file", elem_id="board-file")
    gr.on([search.change, benchmark.change], board_table, [search, benchmark], table, api_name="leaderboard")
    download.click(export_results, fmt, file, api_name="results")


def submit_tab() -> None:
    gr.Markdown(
        "Submissions are not available yet: the `leaderboard` package's submission queue has not landed."
    )
