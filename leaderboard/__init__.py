"""The FSA-Net head-pose leaderboard: the protocol as code, usable without the UI.

Every score comes from the same code, a pinned dataset revision and a model identified by what it computes:
rows are keyed by (model identity = weights + config, benchmark, dataset revision, code version), official
rows (the registry's models) apart from community ones. See ``leaderboard.settings`` for the environment
variables (``LEADERBOARD_DIR``, ``RESULTS_REPO``, ``LEADERBOARD_DATA_<BENCHMARK>`` ...).

A house in floors, each importing only the floors below it (``tests/test_architecture.py`` checks it):
``settings`` and ``errors`` (the basement), ``storage`` (backends, typed rows and requests, the results and
request stores, the board snapshot), ``protocol`` (benchmarks, data, importers, metrics, a runner that
returns a typed row and stores nothing, the papers' reported numbers), ``service`` (validation, limits,
submissions, evaluations, equivalence, the worker, seeding) and ``display`` (columns, views, plots,
downloads, model-card rows); the CLI and this module on the roof.

Functions the Space calls (all importable from ``leaderboard``):

* Board: ``ResultsStore(root=None).snapshot() -> BoardSnapshot`` (``.rows``, typed; ``.problems``;
  ``.version``: the same snapshot until a file of the store changes), ``board_frame(snapshot)`` (the
  results table, made once per snapshot), ``board_frame_with_reported(snapshot)`` (that table, then the
  numbers the papers report, ``kind`` "reported", with their difference to the measured row),
  ``.predictions(key)``; ``format_table(frame, "csv" | "json" | "markdown")``; ``board_view(table,
  benchmark, show_all, search, technical)`` (reported rows unranked, after the measured ones);
  ``reported_rows()`` (every declared paper number, typed).
* Evaluate: ``evaluate(model, benchmark, store=None, force=False, ...) -> Evaluation`` (``.row``, ``.path``,
  ``.cached``, ``.equivalent``); ``seed_rows(store=None) -> {"evaluated", "skipped", "benchmarks"}``.
* Submissions: ``submit_files([config.json, model.safetensors], name, submitter=...)``,
  ``submit_repo(repo_id, revision=None, name=None, submitter=...)``, ``submit(dir_or_repo_id)`` -> a typed
  ``Request`` (``.public()``: what anyone may read); ``RequestStore().list() -> (requests, problems)``,
  ``.public_list()``, ``.get(id)``, ``.public_get(id)``; ``retry_request(id)``; rejections raise
  ``SubmissionError`` with a one-line reason. The store is ``REQUESTS_REPO`` or ``LEADERBOARD_DIR``.
* Worker: ``run_worker(watch=False, limit=None) -> [request]``; ``start_background_worker() -> (thread,
  stop event)``.
* Plots (plotly figures): ``mae_bars(table, benchmark)``, ``yaw_bin_figure(rows, benchmark)``,
  ``cumulative_figure(rows, benchmark, "mae" | "geodesic")``, ``scatter_figure(predictions)``,
  ``robustness_figure(rows, benchmark)``, ``save_figure(fig, "x.html" | "x.png")``.
* Data: ``BENCHMARKS``, ``load_benchmark_data(source, revision=None)``, ``present_benchmarks()``,
  ``prepare_aflw2000``, ``prepare_biwi``, ``prepare_npz``.

CLI: ``python -m leaderboard {prepare,evaluate,table,submit,requests,retry,worker,seed,plot} --help``.
"""

from .display.columns import board_frame, board_frame_with_reported
from .display.downloads import format_table
from .display.plots import (
    cumulative_figure,
    mae_bars,
    robustness_figure,
    save_figure,
    scatter_figure,
    yaw_bin_figure,
)
from .display.views import board_view
from .errors import SubmissionError
from .protocol.benchmarks import BENCHMARKS, CODE_VERSION, get_benchmark
from .protocol.data import DatasetUnavailableError, load_benchmark_data
from .protocol.importers import prepare_aflw2000, prepare_biwi, prepare_npz
from .protocol.loading import present_benchmarks
from .protocol.reported import reported_rows
from .service.evaluation import Evaluation, evaluate
from .service.seed import seed_rows
from .service.submission import retry_request, submit, submit_files, submit_repo
from .service.validation import validate_submission
from .service.worker import run_worker, start_background_worker
from .storage.requests import Request, RequestStore
from .storage.results import BoardSnapshot, ResultsStore
from .storage.rows import BoardRow, MeasuredRow, ReportedRow, ResultKey

__all__ = [
    "BENCHMARKS",
    "CODE_VERSION",
    "BoardRow",
    "BoardSnapshot",
    "DatasetUnavailableError",
    "Evaluation",
    "MeasuredRow",
    "ReportedRow",
    "Request",
    "RequestStore",
    "ResultKey",
    "ResultsStore",
    "SubmissionError",
    "board_frame",
    "board_frame_with_reported",
    "board_view",
    "cumulative_figure",
    "evaluate",
    "format_table",
    "get_benchmark",
    "load_benchmark_data",
    "mae_bars",
    "prepare_aflw2000",
    "prepare_biwi",
    "prepare_npz",
    "present_benchmarks",
    "reported_rows",
    "retry_request",
    "robustness_figure",
    "run_worker",
    "save_figure",
    "scatter_figure",
    "seed_rows",
    "start_background_worker",
    "submit",
    "submit_files",
    "submit_repo",
    "validate_submission",
    "yaw_bin_figure",
]
