"""Command line: ``python -m fsanet {list,convert,bench,export,predict,train} ...``.

Each subcommand lives in its own module, which exposes ``add_parser(subparsers)``; the
parser it adds sets ``func`` to a callable taking the parsed arguments and returning an
exit code. Bad arguments and errors a user can fix (:class:`fsanet.errors.FSANetError`, file
errors) print one line and exit with code 2, never a stack trace (:mod:`fsanet.cli.args`).
"""

from __future__ import annotations

import importlib

from fsanet.cli.args import CliParser, parse, program, run_command

SUBCOMMAND_MODULES = ("fsanet.cli.models", "fsanet.cli.export", "fsanet.cli.predict", "fsanet.cli.train")


def build_parser() -> CliParser:
    parser = CliParser(prog=program("fsanet"), description="FSA-Net head-pose estimation")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    return args if isinstance(args, int) else run_command(args)
