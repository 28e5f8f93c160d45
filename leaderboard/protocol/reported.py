"""The numbers the papers report, shown beside what this board measures and never ranked among it.

Two places declare them, and a method is in exactly one (``tests/test_reported.py`` checks it):

* a family declares its own paper's numbers (``Family.reported``, :mod:`fsanet.models.family`), with the
  registry ``name.tag`` each describes, so the board can set its measured row beside it;
* :data:`WITHOUT_FAMILY` holds methods the board cannot run (their code and weights are not ported, so there
  is no family to declare them): published results, quoted for comparison. They are facts about this board's
  benchmarks, not about a model the library builds, so they live with the protocol. When such a method gains
  a family, its numbers move there.

:func:`reported_rows` turns both into typed :class:`~leaderboard.storage.rows.ReportedRow` objects; a
declaration the board cannot show (an unknown benchmark, another protocol than the benchmark's, a value out
of range: a plug-in family's mistake) is left out with a warning, never failing the board.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pydantic import ValidationError

from fsanet.models.catalogue import families, split_name
from fsanet.models.family import Reported

from ..storage.results import warn_once
from ..storage.rows import ReportedRow
from .benchmarks import BENCHMARKS

log = logging.getLogger(__name__)

TRINET = "Cao, Chu, Liu & Chen, A Vector-based Representation to Enhance Head Pose Estimation, WACV 2021"
IMG2POSE = (
    "Albiero, Chen, Yin, Pang & Hassner, img2pose: Face Alignment and Detection via 6DoF, Face Pose "
    "Estimation, CVPR 2021"
)
SYNERGYNET = (
    "Wu, Xu & Neumann, Synergy between 3DMM and 3D Landmarks for Accurate 3D Facial Geometry, 3DV 2021"
)

# {method: its paper's numbers}, for methods without a family here; quoted as published (see the README).
WITHOUT_FAMILY: dict[str, tuple[Reported, ...]] = {
    "TriNet": (
        Reported("aflw2000", "protocol 1", (4.198, 5.767, 4.042, 4.669), TRINET, "AFLW2000 comparison",
                 trained_on="300W-LP"),
        Reported("biwi", "protocol 1", (3.046, 4.758, 4.112, 3.972), TRINET, "BIWI comparison",
                 trained_on="300W-LP"),
        Reported("biwi_70_30", "protocol 2", (2.93, 3.04, 2.44, 2.80), TRINET, "BIWI 70/30 comparison",
                 note="the authors' random split, not the board's fixed one", trained_on="BIWI 70%"),
    ),
    "img2pose": (
        # AFLW2000: the authors' evaluation notebook prints these (aflw_2000_3d_evaluation.ipynb, d8681f4).
        Reported("aflw2000", "protocol 1", (3.426, 5.034, 3.278, 3.913), IMG2POSE, "AFLW2000-3D comparison",
                 note="finds the faces itself, no given box", trained_on="WIDER FACE (its own PnP poses)"),
        Reported("biwi", "protocol 1", (4.567, 3.546, 3.244, 3.786), IMG2POSE, "BIWI comparison",
                 note="finds the faces itself, no given box", trained_on="WIDER FACE (its own PnP poses)"),
    ),
    "SynergyNet": (
        Reported("aflw2000", "protocol 1", (3.42, 4.09, 2.55, 3.35), SYNERGYNET, "AFLW2000-3D comparison",
                 note="3DDFA's 120x120 crops", trained_on="300W-LP"),
    ),
}  # fmt: skip


def declared() -> Iterator[tuple[str, Reported]]:
    """Every declared paper number with its method: the families' (the catalogue's order), then the rest."""
    for family in families().values():
        for reported in family.reported:
            yield family.method, reported
    for method, numbers in WITHOUT_FAMILY.items():
        for reported in numbers:
            yield method, reported


def reported_rows() -> tuple[ReportedRow, ...]:
    """Every declared paper number the board can show, as a typed row (others left out, with a warning)."""
    rows = []
    for method, reported in declared():
        try:
            rows.append(_row(method, reported))
        except ValueError as error:  # pydantic's ValidationError and the registry's UnknownModelError are
            warn_once(log, f"left out {method}'s reported number on {reported.benchmark!r}: {_why(error)}")
    return tuple(rows)


def _row(method: str, reported: Reported) -> ReportedRow:
    benchmark = BENCHMARKS.get(reported.benchmark)
    if benchmark is None:
        raise ValueError("not a benchmark of this board")
    if benchmark.protocol != reported.protocol:
        raise ValueError(f"{reported.benchmark} is {benchmark.protocol}, the number says {reported.protocol}")
    trained_on = reported.trained_on or None
    if reported.model is not None:
        _, _, weights = split_name(reported.model)  # UnknownModelError: a name the registry lacks
        if weights is None:
            raise ValueError(f"{reported.model!r} names no pretrained weights")
        trained_on = weights.trained_on.name
    yaw, pitch, roll, mean = reported.mae
    return ReportedRow(
        model_name=reported.model or reported.label or method,
        benchmark=reported.benchmark,
        mae=mean,
        mae_yaw=yaw,
        mae_pitch=pitch,
        mae_roll=roll,
        method=method,
        trained_on=trained_on,
        model_protocol=reported.protocol,
        protocol=benchmark.protocol,
        paper=reported.source,
        table=reported.table,
        note=reported.note or None,
        registry_model=reported.model,
    )


def _why(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
    return str(error)[:200]
