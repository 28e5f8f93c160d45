"""The FSA-Net head-pose leaderboard: the protocol as code, usable without the UI.

Every score comes from the same code, a pinned dataset revision and pinned weights; results are keyed by
(model, weights sha256, benchmark, dataset revision, code version). See ``leaderboard.config`` for the
environment variables (``LEADERBOARD_DIR``, ``RESULTS_REPO``, ``LEADERBOARD_DATA_<BENCHMARK>`` ...).

Functions the Space calls (all importable from ``leaderboard``):

* Board: ``ResultsStore(root=None).table() -> pandas.DataFrame``; ``.records() -> (records, problems)``;
  ``.predictions(key) -> DataFrame``; ``format_table(frame, "csv" | "json" | "markdown") -> str``.
* Evaluate: ``evaluate(model, benchmark, store=None, force=False, ...) -> Evaluation`` (``.record``,
  ``.path``, ``.cached``); ``seed_rows(store=None) -> {"evaluated", "skipped", "benchmarks"}``.
* Submissions (``requests``, ``validation``): ``submit_files([config.json, model.safetensors], name)``,
  ``submit_repo(repo_id, revision=None, name=None)``, ``submit(dir_or_repo_id)`` -> request;
  ``RequestQueue().list() -> (requests, problems)``, ``.get(id)``; ``retry_request(id)``; rejections raise
  ``SubmissionError`` with a one-line reason. The store is ``REQUESTS_REPO`` or ``LEADERBOARD_DIR``
  (``backends``).
* Worker (``worker``, ``isolation``): ``run_worker(watch=False, limit=None) -> [request]``;
  ``start_background_worker() -> (thread, stop event)``.
* Plots (plotly figures): ``mae_bars(table, benchmark)``, ``yaw_bin_figure(records, benchmark)``,
  ``cumulative_figure(records, benchmark, "mae" | "geodesic")``, ``scatter_figure(predictions)``,
  ``robustness_figure(records, benchmark)``, ``save_figure(fig, "x.html" | "x.png")``.
* Data: ``BENCHMARKS``, ``load_benchmark_data(source, revision=None)``, ``present_benchmarks()``,
  ``prepare_aflw2000``, ``prepare_biwi``, ``prepare_npz``.

CLI: ``python -m leaderboard {prepare,evaluate,table,submit,requests,retry,worker,seed,plot} --help``.
"""

from .config import BENCHMARKS, CODE_VERSION, get_benchmark
from .data import DatasetUnavailableError, load_benchmark_data
from .importers import prepare_aflw2000, prepare_biwi, prepare_npz
from .plots import cumulative_figure, mae_bars, robustness_figure, save_figure, scatter_figure, yaw_bin_figure
from .requests import RequestQueue, retry_request, submit, submit_files, submit_repo
from .runner import Evaluation, evaluate
from .seed import seed_rows
from .store import ResultKey, ResultsStore, format_table
from .validation import SubmissionError, validate_submission
from .worker import present_benchmarks, run_worker, start_background_worker

__all__ = [
    "BENCHMARKS",
    "CODE_VERSION",
    "DatasetUnavailableError",
    "Evaluation",
    "ResultKey",
    "RequestQueue",
    "ResultsStore",
    "SubmissionError",
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
