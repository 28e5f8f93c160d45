"""Seed rows: the authors' shipped models (both protocols) and the fusion, on every present benchmark."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import fsanet
from fsanet.errors import FSANetError

from .runner import evaluate
from .store import ResultsStore
from .worker import present_benchmarks

log = logging.getLogger(__name__)


def seed_rows(
    store: ResultsStore | None = None,
    models: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    force: bool = False,
    progress: bool = False,
    robustness: bool = True,
) -> dict[str, list]:
    """Evaluate ``models`` (default: every shipped ``name.tag``, unusable ones included) on ``benchmarks``
    (default: all present).

    A model that cannot be loaded (e.g. the NaN-weighted 300W-LP ``fsanet_netvlad_var``) is reported in
    ``skipped`` with the reason and does not stop the others. Stored results are not redone unless ``force``.
    """
    store = store or ResultsStore()
    benchmarks = list(benchmarks) if benchmarks is not None else present_benchmarks(store.root)
    done, skipped = [], []
    for name in models if models is not None else fsanet.pretrained_names(include_unusable=True):
        try:
            model = fsanet.load_model(name)
        except FSANetError as err:
            log.warning("seed: skipping %s: %s", name, err)
            skipped.append({"model": name, "reason": str(err)})
            continue
        model.name = name
        for benchmark in benchmarks:
            try:
                evaluation = evaluate(
                    model, benchmark, store, force=force, progress=progress, robustness=robustness
                )
            except FSANetError as err:
                skipped.append({"model": name, "benchmark": benchmark, "reason": str(err)})
                continue
            done.append({"model": name, "benchmark": benchmark, "cached": evaluation.cached})
    return {"evaluated": done, "skipped": skipped, "benchmarks": benchmarks}
