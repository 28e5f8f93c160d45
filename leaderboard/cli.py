"""``python -m leaderboard``: prepare data, evaluate, print the table, submit, run the worker, seed, plot."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fsanet.errors import FSANetError

from .config import BENCHMARKS, get_benchmark
from .data import DatasetUnavailableError, push_dataset_to_hub
from .store import ResultsStore, format_table

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


def _root(args: argparse.Namespace) -> Path | None:
    return Path(args.results) if args.results else None


def _prepare(args: argparse.Namespace) -> Any:
    from . import importers

    benchmark = args.benchmark or {"aflw2000": "aflw2000", "biwi": "biwi"}.get(args.kind)
    if benchmark is None:
        raise ValueError("prepare npz needs --benchmark (which benchmark the .npz file is)")
    out = Path(args.out) if args.out else Path(get_benchmark(benchmark).source())
    if args.kind == "aflw2000":
        path = importers.prepare_aflw2000(Path(args.source), out, args.overwrite)
    elif args.kind == "biwi":
        sequences = [int(s) for s in args.test_sequences.split(",")] if args.test_sequences else None
        path = importers.prepare_biwi(Path(args.source), out, benchmark, None, sequences, args.overwrite)
    else:
        path = importers.prepare_npz(Path(args.source), out, benchmark, args.overwrite)
    meta = json.loads((path / "leaderboard_dataset.json").read_text())
    if args.push_to_hub:
        meta["pushed"] = push_dataset_to_hub(path, args.push_to_hub)
    return {"path": str(path), **meta}


def _evaluate(args: argparse.Namespace) -> Any:
    from .runner import evaluate

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
    config, run = evaluation.record["config"], evaluation.record["run"]
    scores = evaluation.record["results"][config["benchmark"]]
    return {
        "model": config["model_name"],
        "benchmark": config["benchmark"],
        **{k: scores[k] for k in SUMMARY_KEYS},
        "crops_per_s": run.get("crops_per_s"),
        "device": run.get("device"),
        "cached": evaluation.cached,
        "result": str(evaluation.path),
    }


def _table(args: argparse.Namespace) -> str:
    store = ResultsStore(_root(args))
    _, problems = store.records()
    for message in problems:
        print(f"warning: {message}", file=sys.stderr)
    return format_table(store.table(), args.format)


def _submit(args: argparse.Namespace) -> Any:
    from .submissions import submit

    return submit(args.source, name=args.name, revision=args.revision, root=_root(args))


def _requests(args: argparse.Namespace) -> Any:
    from .submissions import request_status

    return request_status(args.id, _root(args))


def _retry(args: argparse.Namespace) -> Any:
    from .submissions import retry_request

    return retry_request(args.id, _root(args))


def _worker(args: argparse.Namespace) -> Any:
    from .submissions import run_worker

    return run_worker(_root(args), limit=args.limit, progress=not args.no_progress)


def _seed(args: argparse.Namespace) -> Any:
    from .seed import seed_rows

    return seed_rows(ResultsStore(_root(args)), models=args.models or None, force=args.force)


def _plot(args: argparse.Namespace) -> Any:
    from . import plots

    store = ResultsStore(_root(args))
    records, _ = store.records()
    out = Path(args.out)
    figures = {
        "mae_bars": plots.mae_bars(store.table(), args.benchmark),
        "mae_by_yaw": plots.yaw_bin_figure(records, args.benchmark),
        "cumulative_mae": plots.cumulative_figure(records, args.benchmark, "mae"),
        "cumulative_geodesic": plots.cumulative_figure(records, args.benchmark, "geodesic"),
        "robustness": plots.robustness_figure(records, args.benchmark),
    }
    return [
        str(plots.save_figure(fig, out / f"{args.benchmark}_{name}.{args.ext}"))
        for name, fig in figures.items()
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m leaderboard", description=__doc__)
    parser.add_argument("--results", help="board directory (default: $LEADERBOARD_DIR or ./leaderboard-data)")
    sub = parser.add_subparsers(dest="command", required=True)

    prepare = sub.add_parser("prepare", help="import a dataset from its original layout")
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

    ev = sub.add_parser("evaluate", help="score a model on a benchmark and store the result")
    ev.add_argument("--model", required=True, help="registry name, local dir, or Hub repo id")
    ev.add_argument("--benchmark", required=True, help="benchmark name or dataset dir / Hub repo id")
    ev.add_argument("--revision", help="Hub revision of the model")
    ev.add_argument("--force", action="store_true", help="re-run even if this exact result is stored")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    ev.add_argument("--no-robustness", action="store_true", help="skip the rotation/flip sweep")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=_evaluate)

    table = sub.add_parser("table", help="print the board")
    table.add_argument("--format", choices=["csv", "json", "markdown"], default="markdown")
    table.set_defaults(func=_table)

    submit = sub.add_parser("submit", help="validate and queue new weights")
    submit.add_argument("source", help="directory with config.json + model.safetensors, or a Hub repo id")
    submit.add_argument("--name", help="display name (default: config name or source)")
    submit.add_argument("--revision", help="Hub revision to pin")
    submit.set_defaults(func=_submit)

    requests = sub.add_parser("requests", help="show submission requests")
    requests.add_argument("--id")
    requests.set_defaults(func=_requests)

    retry = sub.add_parser("retry", help="requeue a failed or stuck request")
    retry.add_argument("id")
    retry.set_defaults(func=_retry)

    worker = sub.add_parser("worker", help="evaluate pending requests on every present benchmark")
    worker.add_argument("--limit", type=int, help="at most this many requests")
    worker.add_argument("--no-progress", action="store_true")
    worker.set_defaults(func=_worker)

    seed = sub.add_parser("seed", help="evaluate the authors' shipped models on every present benchmark")
    seed.add_argument("--models", nargs="*", help="only these registry names")
    seed.add_argument("--force", action="store_true")
    seed.set_defaults(func=_seed)

    plot = sub.add_parser("plot", help="write the board's figures for one benchmark")
    plot.add_argument("--benchmark", required=True)
    plot.add_argument("--out", required=True)
    plot.add_argument("--ext", choices=["html", "png"], default="html")
    plot.set_defaults(func=_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        output = args.func(args)
    except (
        FSANetError,
        DatasetUnavailableError,
        ValueError,
        KeyError,
        FileExistsError,
        FileNotFoundError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(output if isinstance(output, str) else json.dumps(output, indent=2, default=str))
    return 0
