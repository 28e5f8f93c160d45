"""``python -m fsanet list | convert | bench``."""

from __future__ import annotations

import argparse
import json

from fsanet.cli.args import device_name, input_file, output_dir, output_file, positive_int
from fsanet.models.catalogue import list_models
from fsanet.utils.files import check_regular


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    listing = subparsers.add_parser("list", help="list model names (with --pretrained: the tagged weights)")
    listing.add_argument("--pretrained", action="store_true", help="only name.tag entries that have weights")
    listing.set_defaults(func=run_list)

    convert = subparsers.add_parser(
        "convert",
        help="convert an original weight file (e.g. the authors' Keras .h5) to config.json + safetensors",
    )
    convert.add_argument("h5", help="the original weight file; its family is recognised from its content")
    convert.add_argument("out_dir", help="directory to write config.json and model.safetensors into")
    convert.add_argument("--name", help="model name to record in config.json (default: the file's stem)")
    convert.set_defaults(func=run_convert)

    bench = subparsers.add_parser(
        "bench", help="latency (batch 1) and throughput (batch 64) of every variant"
    )
    bench.add_argument("--models", nargs="+", help="model names (default: every variant and the fusion)")
    bench.add_argument("--batches", nargs="+", type=positive_int, default=[1, 64])
    bench.add_argument("--repeats", type=positive_int, default=20)
    bench.add_argument("--device", type=device_name, help="cpu or cuda (default: cuda when available)")
    bench.add_argument("--out", default="artifacts/bench.json", help="JSON report path")
    bench.add_argument("--no-official", action="store_true", help="skip the TensorFlow frozen graphs")
    bench.set_defaults(func=run_bench)


def run_list(args: argparse.Namespace) -> int:
    print("\n".join(list_models(pretrained=args.pretrained)))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from fsanet.models.catalogue import converter_for, validate_state_dict
    from fsanet.models.hub import save_pretrained

    path = input_file(args.h5)
    check_regular(args.out_dir, "out_dir")  # a named pipe or a device fails at once; the folder comes later
    converter = converter_for(path).converter
    assert converter is not None
    config, state = converter.convert(path, args.name)
    model = validate_state_dict(config, state)
    model.load_state_dict(state)
    save_pretrained(model, output_dir(args.out_dir, "out_dir"))
    print(
        json.dumps({"name": config["name"], "architecture": config["architecture"], "out_dir": args.out_dir})
    )
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from fsanet.runtime.bench import BENCH_MODELS, format_table, run_benchmark, write_report

    output_file(args.out)  # before the benchmark: a bad --out fails at once
    report = run_benchmark(
        tuple(args.models or BENCH_MODELS),
        tuple(args.batches),
        args.repeats,
        args.device,
        official=not args.no_official,
    )
    write_report(report, args.out)
    print(format_table(report))
    print(f"report written to {args.out}")
    return 0
