"""Command line: ``python -m fsanet {list,convert,bench,predict,train} ...``.

Each subcommand lives in its own module, which exposes ``add_parser(subparsers)``; the
parser it adds sets ``func`` to a callable taking the parsed arguments and returning an
exit code. Errors a user can fix (:class:`fsanet.errors.FSANetError`) print one line,
never a stack trace.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fsanet.errors import FSANetError

SUBCOMMAND_MODULES = ("fsanet.cli.models", "fsanet.cli.predict", "fsanet.cli.train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fsanet", description="FSA-Net head-pose estimation")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FSANetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
