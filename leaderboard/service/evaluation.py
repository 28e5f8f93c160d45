"""Evaluate one model on one benchmark and store its row: the runner scores, this decides what is stored.

A registry name is scored into the official namespace; a local folder, a Hub repo or a module handed in into
the community one. The row is keyed by the model's identity (:func:`fsanet.model_identity`, computed once and
carried with the model and its engine), so the same weights and config under any name are answered with the
row already stored, in whichever namespace it is; a community model whose predictions equal a stored row's
(:mod:`.equivalence`) is answered with that row and stores none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from fsanet.errors import FSANetError
from fsanet.models.base import PoseModel
from fsanet.models.identity_cache import carried_identity
from fsanet.models.registry import load_model, parse_spec
from fsanet.utils import settings

from ..protocol.benchmarks import CODE_VERSION
from ..protocol.loading import resolve_benchmark
from ..protocol.runner import DEFAULT_BATCH_SIZE, Candidate, score
from ..storage.names import name_key, official_names
from ..storage.results import ResultsStore
from ..storage.rows import MeasuredRow, ResultKey
from .equivalence import equivalent_row


@dataclass(frozen=True)
class Evaluation:
    row: MeasuredRow
    path: Path
    cached: bool  # True when nothing was stored: the same row was already there, or an equivalent one
    equivalent: bool = False  # True: ``row`` is another model's whose predictions equal this one's

    @property
    def key(self) -> ResultKey:
        return self.row.key


def resolve_model(model: str | Path | PoseModel, revision: str | None = None) -> Candidate:
    """A registry name (an official row), or a local folder, Hub repo or module (a community row).

    Only the registry's own names reach the official namespace: a module handed in, whatever its name, is
    scored as a community model.
    """
    if isinstance(model, torch.nn.Module):
        return Candidate(model.name, "community", model.eval(), carried_identity(model))
    spec = parse_spec(model, revision)
    module = load_model(model, revision).eval()
    identity = carried_identity(module)
    if spec.kind == "registry":
        return Candidate(spec.value, "official", module, identity)
    if spec.kind == "local":  # its config's name, unless that is the registry's (a training run's often is)
        name = str(module.config.get("name") or "")
        return Candidate(name if name and not _imitates(name) else str(model), "community", module, identity)
    name = f"{spec.value}@{spec.revision}" if spec.revision else spec.value
    return Candidate(name, "community", module, identity)


def _imitates(name: str) -> str | None:
    """The registry name ``name`` is, or looks like (None when it is its own)."""
    return official_names().get(name_key(name))


def evaluate(
    model: str | Path | PoseModel,
    benchmark: str | Path,
    store: ResultsStore | None = None,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    revision: str | None = None,
    robustness: bool = True,
    progress: bool = True,
    data_root: str | Path | None = None,
    request_id: str | None = None,
) -> Evaluation:
    """Score ``model`` on ``benchmark`` and store it; a no-op returning the stored row unless ``force``.

    A community model is never stored beside an official row of the same identity, even with ``force``, nor
    beside a row it is equivalent to. ``data_root``: the board whose benchmark data is used (default the
    store's root; a worker's evaluation stores into a staging folder but reads the board's data).
    ``request_id``: the submission it scores.
    """
    if batch_size < 1:  # datasets' iter(batch_size=0) never ends
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    store = store or ResultsStore()
    name, data, filter_99 = resolve_benchmark(benchmark, store.root if data_root is None else data_root)
    candidate = resolve_model(model, revision)
    imitated = _imitates(candidate.name) if candidate.namespace == "community" else None
    if imitated:
        raise FSANetError(
            f"{candidate.name!r} looks like the official model {imitated!r}: a model that is not the "
            "registry's needs a name of its own (its folder's, or \"name\" in its config.json)"
        )
    key = ResultKey(candidate.namespace, candidate.identity, name, data.revision, CODE_VERSION)
    board = store.snapshot()
    stored = board.get(key)
    if stored is not None and (not force or stored.namespace != key.namespace):
        return Evaluation(stored, store.paths(stored.key)[0], cached=True)
    scored = score(
        candidate,
        name,
        data,
        filter_99,
        batch_size=batch_size,
        device=settings.device(device),
        robustness=robustness,
        progress=progress,
        request_id=request_id,
    )
    if candidate.namespace == "community":
        same = equivalent_row(store, board, scored.row, scored.predictions)
        if same is not None:
            return Evaluation(same, store.paths(same.key)[0], cached=True, equivalent=True)
    return Evaluation(scored.row, store.write(scored.row, scored.predictions), cached=False)
