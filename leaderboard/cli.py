"""``python -m leaderboard``: prepare data, evaluate, print the table, submit, run the worker, seed, plot."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fsanet.cli.args import (
    CliParser,
    device_name,
    output_dir,
    parse,
    positive_float,
    positive_int,
    program,
)
from fsanet.errors import FSANetError
from fsanet.utils.files import check_regular

from .display.columns import MEASURED, SOURCES, board_frame_with_reported
from .display.downloads import download_frame, format_table
from .display.views import ALL, PROTOCOLS, board_view
from .protocol.benchmarks import BENCHMARKS, get_benchmark, looked_in, remember_dataset
from .protocol.data import DatasetUnavailableError, push_dataset_to_hub
from .settings import leaderboard_dir
from .storage.results import ResultsStore

SUMMARY_KEYS = (
    "mae_yaw",
    "mae_pitch",
    "mae_roll",
    "mae",
    "n",
    "n_dropped",
    "geodesic_mean",
    "geodesic_median",
)


def _root(args: argparse.Namespace) -> Path:
    """The board directory of this run: ``--results`` (before or after the verb), else the default."""
    root = leaderboard_dir(args.results)
    if root.exists() and not root.is_dir():
        raise FSANetError(f"--results {root} is a file, not a folder")
    return root


def _prepare(args: argparse.Namespace) -> Any:
    from .protocol import importers

    benchmark = args.benchmark or {"aflw2000": "aflw2000", "biwi": "biwi"}.get(args.kind)
    if benchmark is None:
        raise ValueError("prepare npz needs --benchmark (which benchmark the .npz file is)")
    # A named pipe would block the import, a device never ends: refused before anything is read or made.
    source = check_regular(args.source, "--source")
    out = check_regular(args.out or get_benchmark(benchmark).source(_root(args)), "--out")
    if args.kind == "aflw2000":
        path = importers.prepare_aflw2000(source, out, args.overwrite)
    elif args.kind == "biwi":
        sequences = [int(s) for s in args.test_sequences.split(",")] if args.test_sequences else None
        path = importers.prepare_biwi(source, out, benchmark, None, sequences, args.overwrite)
    else:
        path = importers.prepare_npz(source, out, benchmark, args.overwrite)
    remember_dataset(benchmark, path, _root(args))  # evaluate/seed/worker look there from now on
    meta = json.loads((path / "leaderboard_dataset.json").read_text())
    if args.push_to_hub:
        meta["pushed"] = push_dataset_to_hub(path, args.push_to_hub)
    return {"path": str(path), **meta}


def _evaluate(args: argparse.Namespace) -> Any:
    from .service.evaluation import evaluate

    evaluation = evaluate(
        args.model,
        args.benchmark,
        ResultsStore(_root(args)),
        force=args.force,
        batch_size=args.batch_size,
        device=args.device,
        revision=args.revision,
        robustness=not args.no_robustness,
        progress=not args.no_progress,
    )
    row = evaluation.row
    return {
        "model": row.model_name,
        "benchmark": row.benchmark,
        **{k: getattr(row, k) for k in SUMMARY_KEYS},
        "crops_per_s": row.run.get("crops_per_s"),
        "device": row.run.get("device"),
        "cached": evaluation.cached,
        "equivalent": evaluation.equivalent,
        "result": str(evaluation.path),
    }


def _table(args: argparse.Namespace) -> str:
    """The board as the Space ranks it: each benchmark's protocol apart (``--all``: every model), the papers'
    reported numbers after each benchmark's measured rows."""
    store = ResultsStore(_root(args))
    snapshot = store.snapshot()  # unusable result files are reported once, as warnings
    table = board_frame_with_reported(snapshot)
    benchmark = args.benchmark or ALL
    known = set(BENCHMARKS) | set(table["benchmark"])
    if benchmark != ALL and benchmark not in known:
        raise FSANetError(f"--benchmark {benchmark!r} is unknown; known: {', '.join(sorted(known))}")
    if not snapshot.rows:
        raise FSANetError(
            f"no results on the board at {store.root} (none in {store.results_dir}): score models with "
            "`python -m leaderboard seed`, or give --results / LEADERBOARD_DIR of a board"
        )
    view = board_view(table, benchmark, show_all=args.all, search=args.search)
    if not view["source"].eq(SOURCES[MEASURED]).any():
        raise FSANetError(
            f"no ranked results for {benchmark} on this board (--all shows the models of the other protocol "
            "and those that state none)"
        )
    if args.format == "markdown":  # for reading: rounded and flagged as on screen
        return format_table(view, args.format)
    return format_table(download_frame(table, benchmark, args.all, args.search), args.format)  # data


def _queue(args: argparse.Namespace) -> Any:
    from .storage.backends import open_backend
    from .storage.requests import RequestStore

    return RequestStore(open_backend(_root(args)))


def _submit(args: argparse.Namespace) -> Any:
    from .service.submission import submit

    results = ResultsStore(_root(args))
    stated = {"trained_on": args.trained_on, "protocol": args.protocol}
    queue = _queue(args)
    request = submit(
        args.source,
        name=args.name,
        revision=args.revision,
        queue=queue,
        results=results,
        stated=stated,
    )
    return _said(args, [request.id], queue)[0]


def _requests(args: argparse.Namespace) -> Any:
    """The queue as anyone may read it (no submitter, no worker host)."""
    queue = _queue(args)
    if args.id:
        queue.get(args.id)  # an unknown id: refused before anything is printed
        return _said(args, [args.id], queue)[0]
    said = _said(args, None, queue)
    return said if args.json else "\n".join(said) or "No requests."


def _retry(args: argparse.Namespace) -> Any:
    from .service.submission import retry_request

    queue = _queue(args)
    retry_request(args.id, queue)
    return _said(args, [args.id], queue)[0]


def _said(args: argparse.Namespace, ids: list[str] | None, queue: Any) -> list[Any]:
    """The requests ``ids`` (None: every one, oldest first) as anyone may read them: a sentence each with
    their state and place in the queue, or with ``--json`` their public records."""
    from .display.requests import describe_request
    from .service.limits import queue_positions

    requests, problems = queue.list()
    for message in problems if ids is None else ():
        print(f"warning: {message}", file=sys.stderr)
    chosen = [r for r in requests if ids is None or r.id in ids]
    if args.json:
        return [request.public() for request in chosen]
    positions = queue_positions(requests)
    return [describe_request(r.public(), positions.get(r.id)) for r in chosen]


def _worker(args: argparse.Namespace) -> Any:
    from .service.worker import Worker

    worker = Worker(_queue(args), ResultsStore(_root(args)))  # datasets located for that board too
    return [request.public() for request in worker.run(watch=args.watch, limit=args.limit, poll_s=args.poll)]


def _seed(args: argparse.Namespace) -> Any:
    from .protocol.loading import present_benchmarks
    from .service.seed import seed_rows

    root = _root(args)
    benchmarks = present_benchmarks(root)
    if not benchmarks:  # before loading a single model
        raise DatasetUnavailableError(
            f"no benchmark data found, nothing evaluated; looked in {looked_in(root)} "
            "(write one with `python -m leaderboard prepare ... --out DIR`, or set LEADERBOARD_DATA_<NAME>)"
        )
    store = ResultsStore(root)
    report = seed_rows(store, models=args.models or None, benchmarks=benchmarks, force=args.force)
    for skip in report["skipped"]:  # every model it could not score, and why
        print(f"skipped {skip['model']} on {skip['benchmark']}: {skip['reason']}", file=sys.stderr)
    if not report["evaluated"]:
        raise FSANetError(f"nothing could be seeded: all {len(report['skipped'])} evaluations were skipped")
    return report


def _plot(args: argparse.Namespace) -> Any:
    from .display import plots

    if args.ext == "png" and importlib.util.find_spec("kaleido") is None:
        raise FSANetError(
            "--ext png needs the kaleido package and a Chrome or Chromium (pip install -c constraints.txt "
            "-r requirements.txt; apt install chromium); --ext html needs neither"
        )
    snapshot = ResultsStore(_root(args)).snapshot()
    rows = snapshot.rows
    if not any(row.benchmark == args.benchmark for row in rows):
        known = sorted({row.benchmark for row in rows})
        raise FSANetError(
            f"no results for --benchmark {args.benchmark!r} in {_root(args)}; "
            f"benchmarks with results: {', '.join(known) or 'none'}"
        )
    figures = plots.board_figures(snapshot, args.benchmark, show_all=args.all)  # as the Space draws them
    if not figures:
        raise FSANetError(
            f"no ranked results for {args.benchmark} on this board (--all draws the models of the other "
            "protocol and those that state none)"
        )
    out = output_dir(args.out)
    try:
        return [
            str(plots.save_figure(fig, out / f"{args.benchmark}_{name}.{args.ext}"))
            for name, fig in figures.items()
        ]
    except RuntimeError as error:  # kaleido present but unable to export (no Chrome): its message says why
        raise FSANetError(
            f"--ext png failed: {str(error).splitlines()[0]} (kaleido drives a Chrome or Chromium: "
            "apt install chromium, or plotly_get_chrome); --ext html needs neither"
        ) from None


JSON_HELP = "print the request(s) as JSON (what anyone may read of them), not as sentences"
RESULTS_HELP = "board directory (default: $LEADERBOARD_DIR or ./leaderboard-data); before or after the verb"


def build_parser() -> CliParser:
    parser = CliParser(prog=program("leaderboard"), description=__doc__)
    parser.add_argument("--results", help=RESULTS_HELP)
    # Each verb accepts --results too; SUPPRESS keeps a value given before the verb when none follows it.
    board = CliParser(add_help=False)
    board.add_argument("--results", default=argparse.SUPPRESS, help=RESULTS_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    def verb(name: str, **options: Any) -> CliParser:
        return sub.add_parser(name, parents=[board], **options)

    prepare = verb("prepare", help="import a dataset from its original layout")
    prepare.add_argument("kind", choices=["aflw2000", "biwi", "npz"])
    prepare.add_argument("--source", required=True, help="AFLW2000 folder, BIWI hpdb folder, or .npz file")
    prepare.add_argument("--out", help="output dataset dir (default: the benchmark's configured location)")
    prepare.add_argument(
        "--benchmark", choices=list(BENCHMARKS), help="biwi: biwi or biwi_70_30; npz: required"
    )
    prepare.add_argument(
        "--test-sequences", help="biwi_70_30 test sequences, e.g. 3,5,7 (default: fixed split)"
    )
    prepare.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    prepare.add_argument("--push-to-hub", metavar="REPO", help="also upload it to this Hub dataset repo")
    prepare.set_defaults(func=_prepare)

    ev = verb("evaluate", help="score a model on a benchmark and store the result")
    ev.add_argument(
        "--model", required=True, help="registry name, local dir (a training run's --out too), or Hub repo id"
    )
    ev.add_argument("--benchmark", required=True, help="benchmark name or dataset dir / Hub repo id")
    ev.add_argument("--revision", help="Hub revision of the model")
    ev.add_argument("--force", action="store_true", help="re-run even if this exact result is stored")
    ev.add_argument("--batch-size", type=positive_int, default=256)
    ev.add_argument("--device", type=device_name, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    ev.add_argument("--no-robustness", action="store_true", help="skip the rotation/flip sweep")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=_evaluate)

    table = verb("table", help="print the board, ranked per benchmark as the Space shows it")
    table.add_argument(
        "--format",
        choices=["csv", "json", "markdown"],
        default="markdown",
        help="markdown: as on screen (rounded, small test sets flagged); csv, json: data (rank, every field, "
        "full precision)",
    )
    table.add_argument("--benchmark", help="only this benchmark's rows")
    table.add_argument("--all", action="store_true", help="every model, also those of the other protocol")
    table.add_argument("--search", default="", help="only models whose name contains this")
    table.set_defaults(func=_table)

    submit = verb("submit", help="validate and queue new weights")
    submit.add_argument("source", help="directory with config.json + model.safetensors, or a Hub repo id")
    submit.add_argument("--name", help="display name (default: config name or source)")
    submit.add_argument("--revision", help="Hub revision to pin")
    submit.add_argument(
        "--trained-on", help="what the model was trained on (e.g. 300W-LP), if config.json is silent"
    )
    submit.add_argument(
        "--protocol", choices=PROTOCOLS, help="the protocol it was trained for, if config.json is silent"
    )
    submit.add_argument("--json", action="store_true", help=JSON_HELP)
    submit.set_defaults(func=_submit)

    requests = verb("requests", help="show submission requests: their state and place in the queue")
    requests.add_argument("--id")
    requests.add_argument("--json", action="store_true", help=JSON_HELP)
    requests.set_defaults(func=_requests)

    retry = verb("retry", help="requeue a failed request")
    retry.add_argument("id")
    retry.add_argument("--json", action="store_true", help=JSON_HELP)
    retry.set_defaults(func=_retry)

    worker = verb("worker", help="evaluate pending requests on every present benchmark")
    mode = worker.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="drain the queue, then exit (the default)")
    mode.add_argument("--watch", action="store_true", help="keep polling the store for new requests")
    worker.add_argument("--limit", type=positive_int, help="at most this many requests")
    worker.add_argument(
        "--poll", type=positive_float, help="seconds between polls ($LEADERBOARD_POLL_S or 10)"
    )
    worker.set_defaults(func=_worker)

    seed = verb("seed", help="evaluate the authors' shipped models on every present benchmark")
    seed.add_argument("--models", nargs="*", help="only these registry names")
    seed.add_argument("--force", action="store_true")
    seed.set_defaults(func=_seed)

    plot = verb("plot", help="write the board's figures for one benchmark, its protocol's models as in table")
    plot.add_argument("--benchmark", required=True)
    plot.add_argument("--out", required=True)
    plot.add_argument(
        "--ext", choices=["html", "png"], default="html", help="html: plotly.min.js once beside them"
    )
    plot.add_argument("--all", action="store_true", help="every model, also those of the other protocol")
    plot.set_defaults(func=_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(build_parser(), list(argv) if argv is not None else None)
    if isinstance(args, int):
        return args
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        output = args.func(args)
    except (FSANetError, DatasetUnavailableError, ValueError, KeyError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # KeyError quotes its text
        print(f"error: {message}", file=sys.stderr)
        return 2
    text = output if isinstance(output, str) else json.dumps(output, indent=2, default=str)
    print(text, end="" if text.endswith("\n") else "\n")  # a table ends with its own newline
    return 0
