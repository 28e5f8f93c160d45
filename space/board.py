"""Leaderboard and Submit tabs: wiring of the ``leaderboard`` package's table, figures and submissions."""

from __future__ import annotations

from typing import Any, Literal

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from leaderboard import (
    BENCHMARKS,
    ResultsStore,
    SubmissionError,
    cumulative_figure,
    format_table,
    mae_bars,
    request_status,
    submit,
    submit_files,
    yaw_bin_figure,
)
from leaderboard.config import leaderboard_dir
from space.outputs import save_bytes

ALL = "all"
EMPTY_BOARD = (
    "**No benchmark results yet** (nothing in `{root}/results`). To fill the board, import a benchmark and "
    "score the authors' models on it:\n\n"
    "```\npython -m leaderboard prepare aflw2000 --source <folder with AFLW2000 .jpg + .mat>\n"
    "python -m leaderboard seed\n```\n\n"
    "or set `LEADERBOARD_DIR` to a directory that already holds `results/*.json` "
    "(or `RESULTS_REPO` to a Hub dataset of results), then reload this page."
)
REQUEST_COLUMNS = ["id", "model_name", "status", "architecture", "source", "revision", "created", "reason"]


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


def board_plots(benchmark: str = ALL) -> tuple[go.Figure, go.Figure, go.Figure]:
    """MAE per axis, MAE by |yaw| and cumulative error of one benchmark (the first stored one for ``all``)."""
    store = ResultsStore()
    table = store.table()
    if benchmark == ALL:
        benchmark = table["benchmark"].iloc[0] if not table.empty else next(iter(BENCHMARKS))
    records = store.records()[0]
    return (
        mae_bars(table, benchmark),
        yaw_bin_figure(records, benchmark),
        cumulative_figure(records, benchmark),
    )


def export_results(fmt: Literal["csv", "json"] = "csv") -> str:
    """Every stored result as a downloadable CSV or JSON file (path)."""
    if fmt not in ("csv", "json"):
        raise gr.Error(f"unknown format {fmt!r}: choose csv or json")
    # One pruned folder, files named by content: calls leave no folder behind.
    return save_bytes(format_table(ResultsStore().table(), fmt).encode(), f".{fmt}", stem="leaderboard")


def requests_table() -> pd.DataFrame:
    """Every submission request, newest first, with its status and the reason of a failure."""
    rows = [{column: request.get(column) for column in REQUEST_COLUMNS} for request in request_status()]
    return pd.DataFrame(rows, columns=REQUEST_COLUMNS).iloc[::-1].reset_index(drop=True)


def submit_variant(
    files: list[str] | None = None, name: str = "", repo_id: str = "", revision: str = ""
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Validate and queue uploaded ``config.json`` + ``model.safetensors``, or a Hub repo at a revision."""
    try:
        if files and repo_id.strip():
            raise SubmissionError("give either files or a Hub repo id, not both")
        if files:
            if not name.strip():
                raise SubmissionError("give the variant a name")
            request = submit_files(files, name.strip())
        elif repo_id.strip():
            request = submit(repo_id.strip(), name=name.strip() or None, revision=revision.strip() or None)
        else:
            raise SubmissionError("upload config.json and model.safetensors, or give a Hub repo id")
    except SubmissionError as error:
        raise gr.Error(str(error), title="Submission rejected") from None
    return request, requests_table()


def leaderboard_tab(demo: gr.Blocks) -> None:
    gr.Markdown(board_status, elem_id="board-status")
    with gr.Row():
        search = gr.Textbox(
            value="", label="Search models", placeholder="e.g. caps, ssrnet", elem_id="board-search"
        )
        benchmark = gr.Dropdown([ALL, *BENCHMARKS], value=ALL, label="Benchmark")
    table = gr.Dataframe(
        board_table, label="Mean absolute error (degrees)", interactive=False, elem_id="board-table"
    )
    with gr.Row():
        fmt = gr.Radio(["csv", "json"], value="csv", label="Download format")
        download = gr.Button("Download results", elem_id="board-download")
        file = gr.File(label="Results file", elem_id="board-file")
    with gr.Row():
        bars, by_yaw, cumulative = (
            gr.Plot(label=label) for label in ("MAE per axis", "By |yaw|", "Cumulative")
        )
    gr.on([search.change, benchmark.change], board_table, [search, benchmark], table, api_name="leaderboard")
    gr.on(
        [demo.load, benchmark.change],
        board_plots,
        benchmark,
        [bars, by_yaw, cumulative],
        api_name="plots",
    )
    download.click(export_results, fmt, file, api_name="results")


def submit_tab() -> None:
    gr.Markdown(
        "Submit a new variant or backbone: its `config.json` and `model.safetensors` (no pickle files), "
        "or a Hub model repo id and revision. Files are validated at once; accepted submissions are "
        "queued and evaluated on every benchmark present, and appear on the leaderboard when finished."
    )
    with gr.Row():
        with gr.Column():
            files = gr.File(
                label="config.json + model.safetensors", file_count="multiple", elem_id="submit-files"
            )
            name = gr.Textbox(value="", label="Variant name", placeholder="e.g. fsanet_caps_1x1.my_run")
        with gr.Column():
            repo_id = gr.Textbox(value="", label="or Hub repo id", placeholder="user/fsanet-variant")
            revision = gr.Textbox(value="", label="Revision (commit, tag or branch)", placeholder="main")
    send = gr.Button("Submit", variant="primary", elem_id="submit-button")
    request = gr.JSON(label="Your submission")
    refresh = gr.Button("Refresh queue")
    queue = gr.Dataframe(requests_table, label="Queue and status", interactive=False, elem_id="submit-queue")
    send.click(submit_variant, [files, name, repo_id, revision], [request, queue], api_name="submit")
    refresh.click(requests_table, None, queue, api_name="requests")
