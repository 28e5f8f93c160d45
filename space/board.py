"""Leaderboard, Submit and About tabs: wiring of the ``leaderboard`` views, figures and submissions."""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from leaderboard import (
    BENCHMARKS,
    RequestQueue,
    ResultsStore,
    SubmissionError,
    cumulative_figure,
    format_table,
    mae_bars,
    robustness_figure,
    submit_files,
    submit_repo,
    yaw_bin_figure,
)
from leaderboard.display.views import ABOUT, ALL, FLAG, SMALL_TEST_SET, TECHNICAL, board_view
from leaderboard.settings import leaderboard_dir, poll_seconds, results_repo, worker_enabled
from space.outputs import save_bytes

ANGLES_FIGURE = Path(__file__).resolve().parents[1] / "docs" / "angles.png"
PLOT_LABELS = ("MAE per axis", "MAE by |yaw|", "Cumulative MAE", "Cumulative geodesic error", "Robustness")
EMPTY_BOARD = (
    "**No benchmark results yet** (nothing in `{root}/results`). To fill the board, import a benchmark and "
    "score the authors' models on it:\n\n"
    "```\npython -m leaderboard prepare aflw2000 --source <folder with AFLW2000 .jpg + .mat>\n"
    "python -m leaderboard seed\n```\n\n"
    "or set `LEADERBOARD_DIR` to a directory that already holds `results/*.json` "
    "(or `RESULTS_REPO` to a Hub dataset of results), then reload this page."
)
REQUEST_COLUMNS = ["id", "model_name", "status", "architecture", "source", "revision", "created", "result"]
QUEUE_REFRESH_S = 3.0


class _Reloads:
    """One pull of ``RESULTS_REPO`` and one listing of the requests per interval for all browser tabs."""

    lock = threading.Lock()
    pulled_at, pulled_stamp = -float("inf"), "never"
    listed_at: float = -float("inf")
    listing: tuple[list[dict[str, Any]], list[str]] = ([], [])


@functools.cache
def _store(root: str, repo: str | None) -> ResultsStore:
    return ResultsStore(root, repo)


def board_store() -> ResultsStore:
    """One store per board for every browser tab: each result file is parsed once until it changes."""
    return _store(str(leaderboard_dir()), results_repo())


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S UTC")


def reload_store() -> str:
    """Pull new results from ``RESULTS_REPO`` (at most once per poll interval); returns when it last did.

    With a local store there is nothing to pull: every read sees the directory as it is now.
    """
    if not results_repo():
        return _utc_now()
    with _Reloads.lock:
        if time.monotonic() - _Reloads.pulled_at >= poll_seconds():
            try:
                board_store().pull()
                _Reloads.pulled_stamp = _utc_now()
            except Exception:  # noqa: BLE001  (the Hub being away must not break the board; shown as stale)
                pass
            _Reloads.pulled_at = time.monotonic()
        return _Reloads.pulled_stamp


def list_requests() -> tuple[list[dict[str, Any]], list[str]]:
    """The store's requests and unusable files, read at most once per queue refresh for every client."""
    with _Reloads.lock:
        if time.monotonic() - _Reloads.listed_at >= QUEUE_REFRESH_S - 0.5:
            _Reloads.listing = RequestQueue().list()
            _Reloads.listed_at = time.monotonic()
        return _Reloads.listing


def board_table(
    search: str = "", benchmark: str = ALL, show_all: bool = False, technical: list[str] | None = None
) -> pd.DataFrame:
    """The ranked board on ``benchmark``: models of its protocol (every model with ``show_all``) whose name
    contains ``search`` (case-insensitive), plus the ``technical`` columns asked for."""
    reload_store()
    try:
        return board_view(board_store().table(), benchmark, show_all, search, technical or ())
    except ValueError as error:
        raise gr.Error(str(error)) from None


def board_status() -> str:
    """The empty-state instructions when no result is stored, else a count of rows; when it was last
    reloaded, and the store's files that were skipped (listed once each)."""
    updated = reload_store()
    store = board_store()
    table = store.table()
    problems = store.records()[1] + list_requests()[1]
    skipped = f"\n\nSkipped {len(problems)} unusable file(s): " + "; ".join(problems) if problems else ""
    if table.empty:
        return EMPTY_BOARD.format(root=leaderboard_dir()) + skipped
    rows = (
        f"{len(table)} result(s) for {table['model'].nunique()} model(s). Each benchmark ranks the models "
        f"trained for its protocol (see About); {FLAG} marks results on fewer than {SMALL_TEST_SET} samples."
    )
    return f"{rows} Last updated {updated}.{skipped}"


def refresh_plots(benchmark: str, search: str, show_all: bool, shown: int) -> tuple[Any, ...]:
    """The figures again when the number of stored results differs from ``shown`` (else no update)."""
    stored = len(board_store().records()[0])
    if stored == shown:
        return (*(gr.skip() for _ in PLOT_LABELS), shown)
    return (*board_plots(benchmark, search, show_all), stored)


def board_plots(
    benchmark: str = ALL, search: str = "", show_all: bool = False
) -> tuple[go.Figure, go.Figure, go.Figure, go.Figure, go.Figure]:
    """MAE per axis, MAE by |yaw|, cumulative MAE, cumulative geodesic error and the robustness sweep of
    the models the table shows on one benchmark (the first stored one for ``all``)."""
    store = board_store()
    table = store.table()
    if benchmark == ALL:
        benchmark = table["benchmark"].iloc[0] if not table.empty else next(iter(BENCHMARKS))
    models = board_view(table, benchmark, show_all, search)["model"].tolist()
    records = store.records()[0]
    return (
        mae_bars(table, benchmark, models),
        yaw_bin_figure(records, benchmark, models),
        cumulative_figure(records, benchmark, "mae", models),
        cumulative_figure(records, benchmark, "geodesic", models),
        robustness_figure(records, benchmark, "mae", models),
    )


def export_results(fmt: Literal["csv", "json"] = "csv") -> str:
    """Every stored result as a downloadable CSV or JSON file (path)."""
    if fmt not in ("csv", "json"):
        raise gr.Error(f"unknown format {fmt!r}: choose csv or json")
    # One pruned folder, files named by content: calls leave no folder behind.
    return save_bytes(format_table(board_store().table(), fmt).encode(), f".{fmt}", stem="leaderboard")


def _status(request: dict[str, Any]) -> str:
    """``pending``, ``running (progress)``, ``finished`` or ``failed: reason``."""
    if request["status"] == "running" and request.get("progress"):
        return f"running ({request['progress']})"
    if request["status"] == "failed":
        return f"failed: {request.get('reason')}"
    return request["status"]


def _result(request: dict[str, Any]) -> str:
    scores = [r for r in request.get("results") or [] if isinstance(r, dict)]
    return ", ".join(f"{r.get('benchmark')} MAE {r.get('mae', float('nan')):.2f}" for r in scores)


def requests_table() -> pd.DataFrame:
    """Every submission request, newest first: live status (progress, reason of a failure) and its scores."""
    requests, _ = list_requests()
    rows = [
        {**{column: request.get(column) for column in REQUEST_COLUMNS}, "status": _status(request)}
        | {"result": _result(request)}
        for request in requests
    ]
    return pd.DataFrame(rows, columns=REQUEST_COLUMNS).iloc[::-1].reset_index(drop=True)


def _accepted_message(request: dict[str, Any]) -> str:
    when = (
        "It is evaluated automatically on every benchmark present"
        if worker_enabled()
        else "A worker (`python -m leaderboard worker --watch`) evaluates it on every benchmark present"
    )
    return (
        f"✅ **Accepted**: request `{request['id']}`. {when}; follow it in the queue below. When it is "
        f"finished, its row is on the **Leaderboard** tab: search for `{request['model_name']}`."
    )


def submitter(request: gr.Request | None) -> str:
    """Whose limits a submission counts against: the logged-in Hub user, else the client's address (kept
    only as a hash)."""
    if request is None:
        return "anonymous"
    if getattr(request, "username", None):
        return f"hf:{request.username}"
    host = getattr(getattr(request, "client", None), "host", None) or "unknown"
    return "ip:" + hashlib.sha256(str(host).encode()).hexdigest()[:16]


def submit_variant(
    files: list[str] | None = None,
    name: str = "",
    repo_id: str = "",
    revision: str = "",
    request: gr.Request | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, str]:
    """Validate and queue uploaded ``config.json`` + ``model.safetensors``, or a Hub repo at a revision.

    The repo id is only ever a Hub id (``owner/name``): it is never looked up on this server's disk. Each
    submitter has the leaderboard's limits (requests waiting, submissions an hour).
    """
    who = submitter(request)
    try:
        if files and repo_id.strip():
            raise SubmissionError("give either files or a Hub repo id, not both")
        if files:
            if not name.strip():
                raise SubmissionError("give the variant a name")
            queued = submit_files(files, name.strip(), results=board_store(), submitter=who)
        elif repo_id.strip():
            queued = submit_repo(
                repo_id,
                revision=revision.strip() or None,
                name=name.strip() or None,
                results=board_store(),
                submitter=who,
            )
        else:
            raise SubmissionError("upload config.json and model.safetensors, or give a Hub repo id")
    except SubmissionError as error:
        raise gr.Error(str(error), title="Submission rejected") from None
    _Reloads.listed_at = -float("inf")  # the queue shown next includes this request
    return queued, requests_table(), _accepted_message(queued)


def leaderboard_tab(demo: gr.Blocks) -> None:
    status = gr.Markdown(board_status, elem_id="board-status")
    with gr.Row():
        search = gr.Textbox(
            value="", label="Search models", placeholder="e.g. caps, ssrnet", elem_id="board-search"
        )
        benchmark = gr.Dropdown([ALL, *BENCHMARKS], value=ALL, label="Benchmark")
        show_all = gr.Checkbox(
            False, label="Show every model (also those trained for the other protocol)", elem_id="board-all"
        )
    technical = gr.CheckboxGroup(
        list(TECHNICAL), value=[], label="Technical columns", elem_id="board-technical"
    )
    table = gr.Dataframe(
        board_table, label="Mean absolute error (degrees)", interactive=False, elem_id="board-table"
    )
    with gr.Row():
        fmt = gr.Radio(["csv", "json"], value="csv", label="Download format")
        download = gr.Button("Download results", elem_id="board-download")
        file = gr.File(label="Results file", elem_id="board-file")
    plots = [gr.Plot(label=label) for label in PLOT_LABELS]  # one per row: readable with many models
    filters = [search, benchmark, show_all]
    # New results appear without a restart: the store is re-read on page load and on a timer.
    timer = gr.Timer(poll_seconds())
    gr.on([demo.load, timer.tick], board_status, None, status, api_visibility="private", queue=False)
    gr.on(
        [demo.load, timer.tick],
        board_table,
        [*filters, technical],
        table,
        api_visibility="private",
        show_progress="hidden",
    )
    shown = gr.State(-1)  # how many results the figures show: redrawn on the timer only when it changes
    timer.tick(
        refresh_plots,
        [benchmark, search, show_all, shown],
        [*plots, shown],
        api_visibility="private",
        show_progress="hidden",
    )
    gr.on(
        [search.change, benchmark.change, show_all.change, technical.change],
        board_table,
        [*filters, technical],
        table,
        api_name="leaderboard",
    )
    gr.on(
        [demo.load, search.change, benchmark.change, show_all.change],
        board_plots,
        [benchmark, search, show_all],
        plots,
        api_name="plots",
    )
    download.click(export_results, fmt, file, api_name="results")


def about_tab() -> None:
    gr.Markdown(ABOUT, elem_id="about-text")
    gr.Image(
        str(ANGLES_FIGURE),
        label="The sign of each angle",
        interactive=False,
        buttons=[],
        elem_id="about-angles",
    )


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
    message = gr.Markdown(label="Submission status", elem_id="submit-message")
    request = gr.JSON(label="Your submission")
    refresh = gr.Button("Refresh queue")
    queue = gr.Dataframe(requests_table, label="Queue and status", interactive=False, elem_id="submit-queue")
    send.click(submit_variant, [files, name, repo_id, revision], [request, queue, message], api_name="submit")
    refresh.click(requests_table, None, queue, api_name="requests")
    live = gr.Timer(QUEUE_REFRESH_S)  # the queue's live status: pending -> running (progress) -> finished
    live.tick(requests_table, None, queue, api_visibility="private", show_progress="hidden")
