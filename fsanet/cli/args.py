"""Argument checking shared by ``python -m fsanet`` and ``python -m leaderboard``.

Every value a user types is checked when it is parsed: a bad one prints one line naming the argument and
what it accepts, and the command exits with code 2 before any work starts (no usage dump, no traceback).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from fsanet.errors import FSANetError
from fsanet.utils.files import check_regular

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def program(module: str) -> str:
    """The name users typed: ``fsanet`` for the installed command, ``python -m fsanet`` otherwise."""
    return module if Path(sys.argv[0]).name == module else f"python -m {module}"


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit code 2 (subparsers inherit it)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _number(convert: Callable[[str], float], text: str, what: str) -> float:
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, epochs, counts)."""
    value = _number(int, text, "a whole number >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (worker processes, 'every N steps' where 0 means never)."""
    value = _number(int, text, "a whole number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, factors)."""
    value = _number(float, text, "a number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def device_name(text: str) -> str:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``, and only a device this machine has."""
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    if text.startswith("cuda"):
        import torch

        count = torch.cuda.device_count()
        index = int(text.partition(":")[2] or 0)
        if index >= count:
            found = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise argparse.ArgumentTypeError(f"{text} is not available: this machine has {found}")
    if text == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError("mps is not available on this machine")
    return text


def output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create the folder ``path`` (or check the existing one) and prove it is writable, before any work."""
    path = check_regular(path, flag)
    if path.exists() and not path.is_dir():
        raise FSANetError(f"{flag} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise FSANetError(f"{flag} {path} is not a writable folder: {error.strerror or error}") from None
    return path


def output_file(path: str | Path, flag: str = "--out") -> Path:
    """A file to write: absent or a regular file (:func:`~fsanet.utils.files.check_regular`), not a folder."""
    path = check_regular(path, flag)
    if path.is_dir():
        raise FSANetError(f"{flag} {path} is a folder, not a file")
    return path


def input_file(path: str | Path, flag: str = "") -> Path:
    """A file to read: an existing regular file (never a named pipe, which would block, or a device)."""
    path = check_regular(path, flag)
    named = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise FSANetError(f"{named} is a folder, not a file")
    if not path.is_file():
        raise FSANetError(f"{named}: no such file")
    return path


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code argparse chose (2 for a bad value, 0 for ``--help``)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed verb; errors users can act on become one line on stderr and exit code 2.

    ``OSError`` is one of them: a full disk, a permission or a missing file is about the user's
    files, and its message names the path.
    """
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `fsanet list | head`: the reader is gone, which is no error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (FSANetError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
