"""Counting the work a code path does: model builds, weight hashes, config validations, dataset loads, board
reads, results tables made and registry listings. Counts are deterministic (unlike timings): tests assert
them, ``bench/bench_board_work.py`` reports them.

Each counted function is wrapped where it is defined and in every loaded module that imported it by name,
so a call through any of those names counts once.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# what -> (module, attribute path): the one function every such piece of work goes through
COUNTED = {
    "model builds": ("fsanet.models.family", "Family.build"),
    "weight hashes": ("fsanet.models.weights", "weights_identity"),
    "config validations": ("fsanet.models.registry", "validate_config"),
    "dataset loads": ("leaderboard.protocol.data", "_load_local"),
    "board reads": ("leaderboard.storage.results", "ResultsStore.snapshot"),
    "tables made": ("leaderboard.display.columns", "_frame"),
    "registry listings": ("fsanet.models.registry", "list_models"),
}


def _wrap(original: Callable[..., Any], counts: Counter, what: str) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[what] += 1
        return original(*args, **kwargs)

    return counted


@contextmanager
def counting(*whats: str) -> Iterator[Counter]:
    """Count the work named in ``whats`` (default: all of :data:`COUNTED`) while the block runs."""
    counts: Counter = Counter({what: 0 for what in whats or COUNTED})
    undo: list[tuple[Any, str, Any]] = []
    try:
        for what in counts:
            module_name, path = COUNTED[what]
            owner: Any = importlib.import_module(module_name)
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            original = getattr(owner, name)
            wrapped = _wrap(original, counts, what)
            holders = [owner] if parents else [m for m in list(sys.modules.values()) if m is not None]
            for holder in holders:
                try:
                    holds = getattr(holder, name, None) is original
                except Exception:  # noqa: BLE001  (a module whose attribute lookup imports something)
                    holds = False
                if holds:
                    undo.append((holder, name, original))
                    setattr(holder, name, wrapped)
        yield counts
    finally:
        for holder, name, original in reversed(undo):
            setattr(holder, name, original)


# Imported at start-up by every Python process whose path holds the folder (``site`` imports
# ``sitecustomize``): counts that process's work until it exits and writes it to ``<folder>/<pid>.json``.
SITECUSTOMIZE = """
import atexit, json, os, sys
sys.path.insert(0, {root!r})
from tests.work_counters import counting
_counting = counting()
_counts = _counting.__enter__()
_out = os.path.join({folder!r}, f"{{os.getpid()}}.json")
atexit.register(lambda: open(_out, "w").write(json.dumps(_counts)))
"""


def count_in_children(folder: Path, root: Path) -> Path:
    """A folder to put first on the ``PYTHONPATH`` of child processes so that each counts its work
    (:func:`children_counts` reads it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE.format(root=str(root), folder=str(folder)))
    return folder


def children_counts(folder: Path) -> list[Counter]:
    """What each child process that ran with :func:`count_in_children`'s folder counted."""
    return [Counter(json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]
