"""Seed rows: the registry's shipped models (both protocols) and the fusion, on every present benchmark."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import fsanet
from fsanet.errors import FSANetError

from ..protocol.data import present_benchmarks
from ..protocol.runner import evaluate
from .store import ResultsStore

log = logging.getLogger(__name__)


def seed_rows(
    store: ResultsStore | None = None,
    models: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = False,
    robustness: bool = True,
    on_model: Callable[[int, int, str], None] | None = None,
) -> dict[str, list]:
    """Evaluate ``models`` (default: every shipped ``name.tag``, unusable ones included) on ``benchmarks``
    (default: all present) into the official namespace; ``on_model(done, total, name)`` reports progress.

    A model that cannot be loaded (e.g. the NaN-weighted 300W-LP ``fsanet_netvlad_var``, or weights whose
    mirror is not set) is reported in ``skipped`` with the reason and does not stop the others. Stored
    results are not redone unless ``force``.
    """
    store = store or ResultsStore()
    benchmarks = list(benchmarks) if benchmarks is not None else present_benchmarks(store.root)
    names = list(models) if models is not None else fsanet.pretrained_names(include_unusable=True)
    done, skipped = [], []
    for index, name in enumerate(names):
        if on_model is not None:
            on_model(index, len(names), name)
        for benchmark in benchmarks:
            try:
                evaluation = evaluate(
                    name, benchmark, store, force=force, progress=progress, robustness=robustness
                )
            except FSANetError as err:
                log.warning("seed: skipping %s on %s: %s", name, benchmark, err)
                skipped.append({"model": name, "benchmark": benchmark, "reason": str(err)})
                continue
            done.append({"model": name, "benchmark": benchmark, "cached": evaluation.cached})
    return {"evaluated": done, "skipped": skipped, "benchmarks": benchmarks}
