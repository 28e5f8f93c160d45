"""The FSA-Net head-pose leaderboard: the protocol as code, usable without the UI.

Every score comes from the same code, a pinned dataset revision and a model identified by what it computes:
rows are keyed by (model identity = weights + config, benchmark, dataset revision, code version), official
rows (the registry's models) apart from community ones. See ``leaderboard.settings`` for the environment
variables (``LEADERBOARD_DIR``, ``RESULTS_REPO``, ``LEADERBOARD_DATA_<BENCHMARK>`` ...).

Grouped by role, as the HF leaderboard template is: ``protocol`` (benchmarks, data, importers, metrics,
records, runner), ``submission`` (validation, names, limits, requests), ``service`` (backends, store,
worker, isolation, seed) and ``display`` (columns, views, plots, model-card rows).

Functions the Space calls (all importable from ``leaderboard``):

* Board: ``ResultsStore(root=None).records() -> (records, problems)`` (each file parsed once until it
  changes), ``.table() -> pandas.DataFrame``, ``.predictions(key)``; ``format_table(frame, "csv" | "json" |
  "markdown")``; ``board_view(table, benchmark, show_all, search, technical)``.
* Evaluate: ``evaluate(model, benchmark, store=None, force=False, ...) -> Evaluation`` (``.record``,
  ``.path``, ``.cached``); ``seed_rows(store=None) -> {"evaluated", "skipped", "benchmarks"}``.
* Submissions: ``submit_files([config.json, model.safetensors], name, submitter=...)``,
  ``submit_repo(repo_id, revision=None, name=None, submitter=...)``, ``submit(dir_or_repo_id)`` -> request;
  ``RequestQueue().list() -> (requests, problems)``, ``.get(id)``; ``retry_request(id)``; rejections raise
  ``SubmissionError`` with a one-line reason. The store is ``REQUESTS_REPO`` or ``LEADERBOARD_DIR``.
* Worker: ``run_worker(watch=False, limit=None) -> [request]``; ``start_background_worker() -> (thread,
  stop event)``.
* Plots (plotly figures): ``mae_bars(table, benchmark)``, ``yaw_bin_figure(records, benchmark)``,
  ``cumulative_figure(records, benchmark, "mae" | "geodesic")``, ``scatter_figure(predictions)``,
  ``robustness_figure(records, benchmark)``, ``save_figure(fig, "x.html" | "x.png")``.
* Data: ``BENCHMARKS``, ``load_benchmark_data(source, revision=None)``, ``present_benchmarks()``,
  ``prepare_aflw2000``, ``prepare_biwi``, ``prepare_npz``.

CLI: ``python -m leaderboard {prepare,evaluate,table,submit,requests,retry,worker,seed,plot} --help``.
"""

from .display.columns import format_table
from .display.plots import (
    cumulative_figure,
    mae_bars,
    robustness_figure,
    save_figure,
    scatter_figure,
    yaw_bin_figure,
)
from .display.views import board_view
from .protocol.benchmarks import BENCHMARKS, CODE_VERSION, get_benchmark
from .protocol.data import DatasetUnavailableError, load_benchmark_data, present_benchmarks
from .protocol.importers import prepare_aflw2000, prepare_biwi, prepare_npz
from .protocol.runner import Evaluation, evaluate
from .service.seed import seed_rows
from .service.store import ResultKey, ResultsStore
from .service.worker import run_worker, start_background_worker
from .submission.requests import RequestQueue, retry_request, submit, submit_files, submit_repo
from .submission.validation import SubmissionError, validate_submission

__all__ = [
    "BENCHMARKS",
    "CODE_VERSION",
    "DatasetUnavailableError",
    "Evaluation",
    "ResultKey",
    "RequestQueue",
    "ResultsStore",
    "SubmissionError",
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
