"""Leaderboard, Submit and About tabs: wiring of the ``leaderboard`` views, figures and submissions."""

from __future__ import annotations

import functools
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler

from leaderboard import (
    BENCHMARKS,
    BoardSnapshot,
    RequestStore,
    ResultsStore,
    SubmissionError,
    board_frame,
    format_table,
    present_benchmarks,
    submit_files,
    submit_repo,
)
from leaderboard.display.columns import MEASURED, SOURCES, board_frame_with_reported
from leaderboard.display.downloads import download_frame
from leaderboard.display.plots import FIGURES, board_figures, no_results_figure
from leaderboard.display.requests import describe_request
from leaderboard.display.views import (
    ABOUT,
    ALL,
    FLAG,
    MAX_SEARCH,
    SMALL_TEST_SET,
    TECHNICAL,
    board_view,
    quoted_numbers,
    styled,
)
from leaderboard.protocol.benchmarks import no_data_message
from leaderboard.service.limits import queue_positions
from leaderboard.service.seed import seed_status
from leaderboard.settings import leaderboard_dir, poll_seconds, results_repo, worker_enabled
from space import clients
from space.outputs import save_bytes
from space.refusals import refusal

ANGLES_FIGURE = Path(__file__).resolve().parents[1] / "docs" / "angles.png"
PLOT_LABELS = tuple(FIGURES.values())
REQUEST_COLUMNS = ["id", "model_name", "status", "architecture", "protocol", "source", "created", "result"]
QUEUE_REFRESH_S = 3.0
# Gradio wraps a table's text anywhere (word-break: break-word), so a squeezed column splits its name
# ("ran k", "inpu t"): words stay whole here, and a table wider than its box scrolls sideways.
BOARD_CSS = "#board-table .wrap { word-break: normal; overflow-wrap: normal; }"
NOT_STATED = "not stated"
PROTOCOL_CHOICES = [
    ("not stated (shown only with every model)", NOT_STATED),
    ("protocol 1: trained without BIWI (300W-LP, ...)", "protocol 1"),
    ("protocol 2: trained on BIWI's 70 %", "protocol 2"),
]


class _Reloads:
    """One pull of ``RESULTS_REPO``, one listing of the requests and one look for benchmark data per
    interval, for all browser tabs."""

    lock = threading.Lock()
    pulled_at, pulled_stamp = -float("inf"), "never"
    listed_at: float = -float("inf")
    listing: tuple[list[dict[str, Any]], list[str]] = ([], [])
    looking = threading.Lock()
    looked_at: float = -float("inf")
    present: list[str] = []


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
    """The store's requests as anyone may read them (no submitter, no worker host; a pending one's place in
    the queue) and its unusable files, read at most once per queue refresh for every client."""
    with _Reloads.lock:
        if time.monotonic() - _Reloads.listed_at >= QUEUE_REFRESH_S - 0.5:
            requests, problems = RequestStore().list()
            positions = queue_positions(requests)
            public = [{**request.public(), "position": positions.get(request.id)} for request in requests]
            _Reloads.listing = (public, problems)
            _Reloads.listed_at = time.monotonic()
        return _Reloads.listing


def benchmarks_present() -> list[str]:
    """The benchmarks whose data this Space finds, looked for at most once per poll interval (under a lock
    of its own: a first look may import an original-layout folder, and must not hold up the queue's)."""
    with _Reloads.looking:
        if time.monotonic() - _Reloads.looked_at >= poll_seconds():
            _Reloads.present = present_benchmarks(leaderboard_dir())
            _Reloads.looked_at = time.monotonic()
        return _Reloads.present


def read_board() -> tuple[BoardSnapshot, str]:
    """The board's snapshot, read once for a whole page load, timer tick or filter change (the same object
    until the store changes), and when it was last reloaded."""
    updated = reload_store()
    return board_store().snapshot(), updated


def _view(
    snapshot: BoardSnapshot, search: str, benchmark: str, show_all: bool, technical: list[str] | None = None
) -> pd.DataFrame:
    try:
        return board_view(
            board_frame_with_reported(snapshot), benchmark or ALL, bool(show_all), search, technical or ()
        )
    except ValueError as error:  # a search over the bound, an unknown column
        raise refusal(str(error)) from None


def board_table(
    search: str = "", benchmark: str = ALL, show_all: bool = False, technical: list[str] | None = None
) -> Styler:
    """The ranked board on ``benchmark``: models of its protocol (every model with ``show_all``) whose name
    contains ``search`` (case-insensitive), each benchmark's measured rows then the papers' reported numbers
    (unranked, in italics), plus the ``technical`` columns asked for; two decimals shown."""
    return styled(_view(read_board()[0], search, benchmark, show_all, technical))


def board_status(search: str = "", benchmark: str = ALL, show_all: bool = False) -> str:
    """What the board shows and why: seeding progress, the empty board's instructions (what to provide and
    where), the count of the rows the filters show, when it was last reloaded, and skipped files."""
    return _status_line(*read_board(), search, benchmark, show_all)


def _status_line(snapshot: BoardSnapshot, updated: str, search: str, benchmark: str, show_all: bool) -> str:
    benchmark = benchmark or ALL  # an API call may send None
    problems = [*snapshot.problems, *list_requests()[1]]
    skipped = f"\n\nSkipped {len(problems)} unusable file(s): " + "; ".join(problems) if problems else ""
    seeding = _seeding_line()
    if not snapshot.rows:
        return (seeding or _empty_board()) + skipped
    try:
        view = _view(snapshot, search, benchmark, show_all)
    except gr.Error as error:  # said here, where the count of rows would be (the table refuses it too)
        return f"⚠️ {error.message}"
    measured = view[view["source"] == SOURCES[MEASURED]]  # the papers' numbers follow, never counted
    if measured.empty and benchmark != ALL and benchmark not in benchmarks_present():
        return seeding + _no_data(benchmark) + skipped
    rows = (
        f"{len(measured)} result(s) for {measured['model'].nunique()} model(s) shown, then "
        f"{len(view) - len(measured)} number(s) the papers report (*reported*, in italics: never ranked). "
        "Each benchmark ranks the models trained for its protocol (see About); "
        f"{FLAG} marks results on fewer than {SMALL_TEST_SET} samples."
    )
    return f"{seeding}{rows} Last updated {updated}.{skipped}"


def board_refresh(
    search: str, benchmark: str, show_all: bool, technical: list[str] | None, shown: str
) -> tuple[Any, ...]:
    """Everything the Leaderboard tab shows, from one read of the board (a page load, a timer tick): the
    status line, the table, the five figures (only when the board changed since the version ``shown``: else
    they are left as they are) and the version they show."""
    snapshot, updated = read_board()
    figures = (
        tuple(gr.skip() for _ in PLOT_LABELS)
        if snapshot.version == shown
        else _figures(snapshot, benchmark, search, show_all)
    )
    return (
        _status_line(snapshot, updated, search, benchmark, show_all),
        styled(_view(snapshot, search, benchmark, show_all, technical)),
        *figures,
        snapshot.version,
    )


def _seeding_line() -> str:
    status = seed_status()
    if status.state == "seeding":
        return f"⏳ Scoring the registry's models: {status.done}/{status.total} (now `{status.current}`). "
    if status.state == "done" and not status.evaluated and status.skipped:
        first = status.skipped[0]
        return (
            f"⚠️ None of the registry's models could be scored ({len(status.skipped)} skipped), e.g. "
            f"`{first['model']}`: {first['reason']}\n\n"
        )
    return ""


def _empty_board() -> str:
    root = leaderboard_dir()
    if benchmarks_present():
        return f"**No results yet** (nothing in `{root}/results`): the registry's models are scored at start."
    return (
        f"{_no_data()} Or set `LEADERBOARD_DIR` to a board that holds results (or "
        "`RESULTS_REPO` to a Hub dataset of results)."
    )


def _no_data(benchmark: str = ALL) -> str:
    """What to provide, and where it was looked for: the empty board's instructions (``all``), and those
    of a picked benchmark without data."""
    root = leaderboard_dir()
    if benchmark == ALL:
        head = f"**No benchmark data**, so no results (nothing in `{root}/results`)."
    else:
        head = f"**No benchmark data for {benchmark}**, so no results on it."
    return f"{head} {no_data_message(None if benchmark == ALL else [benchmark], root)}"


def board_plots(
    benchmark: str = ALL, search: str = "", show_all: bool = False
) -> tuple[go.Figure, go.Figure, go.Figure, go.Figure, go.Figure]:
    """MAE per axis, MAE by |yaw|, cumulative MAE, cumulative geodesic error and the robustness sweep of
    the models the table shows on one benchmark (the first stored one for ``all``); "no results" in each
    when it shows none."""
    return _figures(read_board()[0], benchmark, search, show_all)


def _figures(
    snapshot: BoardSnapshot, benchmark: str, search: str, show_all: bool
) -> tuple[go.Figure, go.Figure, go.Figure, go.Figure, go.Figure]:
    if benchmark in (ALL, None):
        table = board_frame(snapshot)
        benchmark = table["benchmark"].iloc[0] if not table.empty else next(iter(BENCHMARKS))
    try:
        figures = board_figures(snapshot, benchmark, bool(show_all), search)
    except ValueError as error:  # a search over the bound
        raise refusal(str(error)) from None
    if not figures:
        note = "" if benchmark in benchmarks_present() else "no benchmark data: see above"
        return tuple(no_results_figure(label, benchmark, note) for label in PLOT_LABELS)
    return tuple(figures.values())


def export_results(fmt: Literal["csv", "json"] = "csv") -> str:
    """Every stored result, then every number the papers report, as a downloadable CSV or JSON file (path):
    its rank (none for a paper's number), ``kind`` (measured or reported), the difference, every field at
    full precision (:func:`~leaderboard.display.downloads.download_frame`); the CSV is safe for
    spreadsheets."""
    if fmt not in ("csv", "json"):
        raise gr.Error(f"unknown format {fmt!r}: choose csv or json")
    # One pruned folder, files named by content: calls leave no folder behind.
    table = download_frame(board_frame_with_reported(read_board()[0]))
    return save_bytes(format_table(table, fmt).encode(), f".{fmt}", stem="leaderboard")


def _status(request: dict[str, Any]) -> str:
    """``pending`` (and what it waits for), ``running (progress)``, ``finished`` or ``failed: reason``."""
    if request["status"] == "running" and request.get("progress"):
        return f"running ({request['progress']})"
    if request["status"] == "failed":
        return f"failed: {request.get('reason')}"
    if request["status"] == "pending":
        return f"pending: {_blocked_by() or 'waiting for its turn'}"
    return request["status"]


def _blocked_by() -> str | None:
    """What keeps every pending request waiting on this Space, if anything."""
    if not worker_enabled():
        return "waiting for a worker (python -m leaderboard worker --watch)"
    if not benchmarks_present():
        return "waiting for benchmark data (see the Leaderboard tab)"
    return None


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


def your_request(request: dict[str, Any] | None) -> Any:
    """The submitted request as it is now, in a sentence: its state, a pending one's place in the queue and
    what it waits for (the Submit tab follows it)."""
    if not isinstance(request, dict):
        return gr.skip()
    current = next((r for r in list_requests()[0] if r["id"] == request.get("id")), None)
    if current is None:
        return gr.skip()
    sentence = describe_request(current, current.get("position"))
    blocked = _blocked_by() if current["status"] == "pending" else None
    return f"{sentence} It is {blocked}." if blocked else sentence


def _accepted_message(request: dict[str, Any]) -> str:
    if worker_enabled() and not benchmarks_present():
        when = (
            "It waits for benchmark data: this board has none yet (the Leaderboard tab says what to set); "
            "it is evaluated as soon as there is"
        )
    elif worker_enabled():
        when = "It is evaluated automatically on every benchmark present"
    else:
        when = "A worker (`python -m leaderboard worker --watch`) evaluates it on every benchmark present"
    ranked = (
        ""
        if request.get("protocol")
        else " It states no protocol, so it is ranked only with **Show every model** on."
    )
    return (
        f"✅ **Accepted**: request `{request['id']}`. {when}; follow it in the queue below. When it is "
        f"finished, its row is on the **Leaderboard** tab: search for `{request['model_name']}`.{ranked}"
    )


def submit_variant(
    files: list[str] | None = None,
    name: str = "",
    repo_id: str = "",
    revision: str = "",
    trained_on: str = "",
    protocol: str = NOT_STATED,
    request: gr.Request | None = None,
) -> tuple[dict[str, Any], str]:
    """Validate and queue uploaded ``config.json`` + ``model.safetensors``, or a Hub repo at a revision;
    ``trained_on`` and ``protocol`` are recorded where its config is silent (a model that states no protocol
    is ranked only with every model shown).

    The repo id is only ever a Hub id (``owner/name``): it is never looked up on this server's disk. Each
    submitter (:func:`space.clients.client_key`: the Hugging Face user; off a Space, a keyed hash of the
    client's address) has the leaderboard's limits (requests waiting, submissions an hour). On a Space an
    anonymous visitor is refused: submissions need a Hugging Face login.
    """
    if not clients.may_submit(request):
        raise gr.Error(clients.submit_refusal(), title="Submission rejected")
    # An API call may send None (or nothing) for any field: the same as left empty.
    name, repo_id, revision, trained_on = (str(text or "") for text in (name, repo_id, revision, trained_on))
    protocol = protocol or NOT_STATED
    stated = {
        "trained_on": trained_on.strip() or None,
        "protocol": None if protocol == NOT_STATED else protocol,
    }
    options = {"results": board_store(), "submitter": clients.client_key(request), "stated": stated}
    try:
        if files and repo_id.strip():
            raise SubmissionError("give either files or a Hub repo id, not both")
        if files:
            if not name.strip():
                raise SubmissionError("give the variant a name")
            queued = submit_files(files, name.strip(), **options)
        elif repo_id.strip():
            revision = revision.strip() or None
            queued = submit_repo(repo_id, revision=revision, name=name.strip() or None, **options)
        else:
            raise SubmissionError("upload config.json and model.safetensors, or give a Hub repo id")
    except SubmissionError as error:
        raise gr.Error(str(error), title="Submission rejected") from None
    _Reloads.listed_at = -float("inf")  # the queue shown next includes this request
    public = queued.public()  # what the page shows: no submitter
    return public, _accepted_message(public)


def leaderboard_tab(demo: gr.Blocks) -> None:
    # The page as the board is at start (the first paint, and what the page's config says); each page load
    # and timer tick then refreshes everything from one read of the board (board_refresh).
    status = gr.Markdown(board_status(), elem_id="board-status")
    with gr.Row():
        search = gr.Textbox(
            value="",
            label="Search models",
            placeholder="e.g. caps, ssrnet",
            max_length=MAX_SEARCH,  # the page sends no more than the board takes
            elem_id="board-search",
        )
        benchmark = gr.Dropdown([ALL, *BENCHMARKS], value=ALL, label="Benchmark")
        show_all = gr.Checkbox(
            False,
            label="Show every model (also those trained for the other protocol or stating none)",
            elem_id="board-all",
        )
    technical = gr.CheckboxGroup(
        list(TECHNICAL), value=[], label="Technical columns", elem_id="board-technical"
    )
    table = gr.Dataframe(
        board_table(),
        label="Mean absolute error (degrees)",
        interactive=False,
        wrap=True,  # long names wrap: the table fits its box
        elem_id="board-table",
    )
    with gr.Row():
        fmt = gr.Radio(["csv", "json"], value="csv", label="Download format")
        download = gr.Button("Download results", elem_id="board-download")
        file = gr.File(label="Results file", elem_id="board-file")
    # One per row: readable with many models. No label chip: it would cover the figure's own title.
    plots = [gr.Plot(label=label, show_label=False, elem_classes="board-plot") for label in PLOT_LABELS]
    filters = [search, benchmark, show_all]
    # New results appear without a restart: the store is re-read on page load and on a timer, once for
    # everything the tab shows (the figures are redrawn on the timer only when the board changed).
    shown = gr.State("")  # the version of the board the figures show (none yet: a page load draws them)
    timer = gr.Timer(poll_seconds())
    refresh = {"inputs": [*filters, technical, shown], "outputs": [status, table, *plots, shown]}
    demo.load(board_refresh, **refresh, api_visibility="private")
    timer.tick(board_refresh, **refresh, api_visibility="private", show_progress="hidden")
    gr.on(
        [search.change, benchmark.change, show_all.change],
        board_status,
        filters,
        status,
        api_visibility="private",
        queue=False,
    )
    gr.on(
        [search.change, benchmark.change, show_all.change, technical.change],
        board_table,
        [*filters, technical],
        table,
        api_name="leaderboard",
    )
    gr.on(
        [search.change, benchmark.change, show_all.change],
        board_plots,
        [benchmark, search, show_all],
        plots,
        api_name="plots",
    )
    download.click(export_results, fmt, file, api_name="results")


def about_tab() -> None:
    gr.Markdown(ABOUT, elem_id="about-text")
    gr.Markdown("**The sign of each angle**")
    gr.Image(  # no label badge: it would cover the figure's first caption
        str(ANGLES_FIGURE), show_label=False, interactive=False, buttons=[], elem_id="about-angles"
    )
    gr.Markdown(quoted_numbers(), elem_id="about-reported")  # long: after the figure the angles text needs


def submit_tab() -> None:
    gr.Markdown(
        "Submit a new variant or backbone: its `config.json` and `model.safetensors` (no pickle files), "
        "or a Hub model repo id and revision. Files are validated at once; accepted submissions are "
        "queued and evaluated on every benchmark present, and appear on the leaderboard when finished. "
        "Say what it was trained on: a model is ranked only among those of its protocol."
        + (
            " On this Space, log in with Hugging Face first: submissions are made in your name."
            if clients.login_required()
            else ""
        )
    )
    with gr.Row():
        with gr.Column():
            files = gr.File(
                label="config.json + model.safetensors", file_count="multiple", elem_id="submit-files"
            )
            name = gr.Textbox(value="", label="Variant name", placeholder="e.g. caps_1x1-my-run")
        with gr.Column():
            repo_id = gr.Textbox(value="", label="or Hub repo id", placeholder="user/fsanet-variant")
            revision = gr.Textbox(value="", label="Revision (commit, tag or branch)", placeholder="main")
    with gr.Row():
        trained_on = gr.Textbox(
            value="", label="Trained on", placeholder="e.g. 300W-LP", elem_id="submit-trained-on"
        )
        protocol = gr.Dropdown(
            PROTOCOL_CHOICES, value=NOT_STATED, label="Trained for", elem_id="submit-protocol"
        )
    if clients.login_offered():  # on a Space: submissions are made in a Hugging Face user's name
        gr.LoginButton(elem_id="submit-login")
    send = gr.Button("Submit", variant="primary", elem_id="submit-button")
    message = gr.Markdown(label="Submission status", elem_id="submit-message")
    # The request as anyone may read it: /submit's first output (for API callers); the page says it in words.
    request = gr.JSON(label="Your submission", visible=False, elem_id="submit-request")
    followed = gr.Markdown(elem_id="submit-followed")
    refresh = gr.Button("Refresh queue")
    queue = gr.Dataframe(requests_table, label="Queue and status", interactive=False, elem_id="submit-queue")
    inputs = [files, name, repo_id, revision, trained_on, protocol]
    # The queue is not an output of the submission: a refused one leaves it a table (then refreshes it).
    sent = send.click(submit_variant, inputs, [request, message], api_name="submit")
    sent.then(requests_table, None, queue, api_visibility="private", show_progress="hidden")
    sent.success(your_request, request, followed, api_visibility="private", show_progress="hidden")
    refresh.click(requests_table, None, queue, api_name="requests")
    live = gr.Timer(QUEUE_REFRESH_S)  # the live status: pending -> running (progress) -> finished
    live.tick(requests_table, None, queue, api_visibility="private", show_progress="hidden")
    live.tick(your_request, request, followed, api_visibility="private", show_progress="hidden")
