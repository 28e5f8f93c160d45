"""The board's typed rows, their keys, and reading one stored file into a row without ever failing the board.

:class:`BoardRow` is what every kind of row holds: a model's name and what it is, the benchmark, the four
MAEs (what views, plots and downloads read). :class:`MeasuredRow` (``kind="measured"``) is a row this board
scored: what made it (namespace, model identity, dataset revision, code version, :class:`ResultKey`), the
model's size and recipe, and every score. :class:`ReportedRow` (``kind="reported"``) is a number a paper
reports, quoted: never stored, never ranked, shown beside the measured rows (``leaderboard.protocol.reported``
makes them). Another kind of row is another subclass of :class:`BoardRow` with its own ``kind``.

A measured row is stored as one JSON file, as the HF leaderboard template stores results::

    {"config": {"model_name", "namespace", "weights_identity", "config_identity", "benchmark",
                "dataset_revision", "code_version", ...optional: method, trained_on, params, ...},
     "results": {"<benchmark>": {"mae", "mae_yaw", "mae_pitch", "mae_roll", "n", "n_dropped",
                                 ...optional: geodesic_mean, mae_by_yaw_bin, robustness, ...}},
     "run": {...}}

:func:`read_row` validates a file once, when it is read: a bad **required** field skips the file, a bad
**optional** field is dropped from that row only; either way one message says what and where. Files above
:data:`MAX_RECORD_BYTES` are never parsed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fsanet.models.registry import ModelIdentity

MAX_RECORD_BYTES = 1024 * 1024  # a result is ~10 kB; anything near this is not one of ours
NAMESPACES = ("official", "community")  # registry models; everything else (submissions, local folders)
PROTOCOLS = ("protocol 1", "protocol 2")

Text = Annotated[str, Field(max_length=200)]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Angle = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # an error in degrees
Number = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Curve = Annotated[list[Annotated[list[Number], Field(min_length=2, max_length=2)]], Field(max_length=200)]
# A stored measured row's sections: the scores (``results.<benchmark>``), ``run``, and its config (the rest).
REQUIRED_SCORES = ("mae", "mae_yaw", "mae_pitch", "mae_roll", "n", "n_dropped")
SCORES = (
    *REQUIRED_SCORES,
    "geodesic_mean",
    "geodesic_median",
    "mae_by_yaw_bin",
    "cumulative_mae_curve",
    "cumulative_geodesic_curve",
    "worst_samples",
    "robustness",
)
# The fields without which a file is no row, in the order a message names the first one missing.
REQUIRED = (
    "model_name",
    "namespace",
    "weights_identity",
    "config_identity",
    "benchmark",
    "dataset_revision",
    "code_version",
    *REQUIRED_SCORES,
)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class YawBin(_Strict):
    bin: Annotated[str, Field(max_length=20)]
    n: Count
    mae: Angle | None


class WorstSample(_Strict):
    sample_id: Text
    mae: Angle
    pred: Annotated[list[Number], Field(min_length=3, max_length=3)]
    true: Annotated[list[Number], Field(min_length=3, max_length=3)]


class RobustnessPoint(_Strict):
    angle: Number
    flip: bool
    mae: Angle
    geodesic_mean: Angle


class BoardRow(_Strict):
    """What every row of the board holds, whatever made it: the fields views, plots and downloads read."""

    kind: str
    model_name: Annotated[str, Field(min_length=1, max_length=80)]
    benchmark: Annotated[str, Field(min_length=1, max_length=40)]
    mae: Angle
    mae_yaw: Angle
    mae_pitch: Angle
    mae_roll: Angle
    method: Annotated[str, Field(max_length=40)] | None = None
    trained_on: Annotated[str, Field(max_length=80)] | None = None
    model_protocol: Literal["protocol 1", "protocol 2"] | None = None  # what the model was trained for
    protocol: Annotated[str, Field(max_length=40)] | None = None  # the benchmark's


@dataclass(frozen=True)
class ResultKey:
    """What made a measured row; its file name follows from it, with the full model identity."""

    namespace: str
    identity: ModelIdentity
    benchmark: str
    dataset_revision: str
    code_version: str

    @property
    def stem(self) -> str:
        parts = (
            f"{self.identity.weights}-{self.identity.config}",
            self.benchmark,
            self.dataset_revision.removeprefix("sha256:"),
            f"v{self.code_version}",
        )
        return "__".join(_safe(part)[: 64 if index else 129] for index, part in enumerate(parts))

    @property
    def row(self) -> tuple[str, str, str, str, str]:
        """The row's identity, namespace aside: two keys with the same ``row`` are the same result."""
        return (
            self.identity.weights,
            self.identity.config,
            self.benchmark,
            self.dataset_revision,
            self.code_version,
        )


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-") or "_"


class MeasuredRow(BoardRow):
    """A row this board scored: the model that made it, on which data, with which code, and every score."""

    kind: Literal["measured"] = "measured"
    # What made it (the key): required.
    namespace: Literal["official", "community"]
    weights_identity: Hex64
    config_identity: Hex64
    dataset_revision: Text
    code_version: Annotated[str, Field(max_length=20)]
    n: Annotated[int, Field(ge=1)]
    n_dropped: Count
    # About the model and the run: optional, a bad value is dropped from the row.
    architecture: Text | None = None
    params: Count | None = None
    gflops: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    input_size: Annotated[int, Field(ge=1, le=4096)] | None = None
    preprocess: dict[str, Any] | None = None
    dataset_source: Text | None = None
    filter_99: bool | None = None
    request_id: Annotated[str, Field(max_length=80)] | None = None
    geodesic_mean: Angle | None = None
    geodesic_median: Angle | None = None
    mae_by_yaw_bin: Annotated[list[YawBin], Field(max_length=50)] | None = None
    cumulative_mae_curve: Curve | None = None
    cumulative_geodesic_curve: Curve | None = None
    worst_samples: Annotated[list[WorstSample], Field(max_length=50)] | None = None
    robustness: Annotated[list[RobustnessPoint], Field(max_length=100)] | None = None
    run: dict[str, Any] = Field(default_factory=dict)

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.weights_identity, self.config_identity)

    @property
    def key(self) -> ResultKey:
        return ResultKey(
            self.namespace, self.identity, self.benchmark, self.dataset_revision, self.code_version
        )

    def to_record(self) -> dict[str, Any]:
        """The stored form (see the module doc); what is not known is left out."""
        data = {k: v for k, v in self.model_dump(mode="json", exclude={"kind"}).items() if v is not None}
        scores = {field: data.pop(field) for field in SCORES if field in data}
        run = data.pop("run")
        return {"config": data, "results": {self.benchmark: scores}, "run": run}


class ReportedRow(BoardRow):
    """A number a paper reports, quoted as published: nothing on this board measured it, so it is never
    ranked.

    ``registry_model`` is the registry ``name.tag`` it describes where the paper's weights are the ones
    shipped (its measured row is the one to compare with); None for a model never released or not ported.
    """

    kind: Literal["reported"] = "reported"
    paper: Annotated[str, Field(min_length=1, max_length=200)]  # the citation
    table: Annotated[str, Field(min_length=1, max_length=80)]  # where in the paper the numbers are
    note: Text | None = None  # what differs from the board's protocol, in a few words
    registry_model: Annotated[str, Field(max_length=80)] | None = None


def _message(error: dict[str, Any]) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    section = "results" if field in SCORES else "config"
    where = ".".join(str(part) for part in error["loc"])
    return f"{section}.{where}: {error['msg']}" if where else error["msg"]


def row_from_record(record: Any) -> tuple[MeasuredRow, list[str]]:
    """The row a stored record holds, and one message per optional field dropped from it.

    Raises ValueError (saying which field) when a required field is missing or wrong: that file is skipped.
    """
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError("not a leaderboard result (no 'config' object)")
    config, results = record["config"], record.get("results")
    benchmark = config.get("benchmark")
    scores = results.get(benchmark) if isinstance(results, dict) and isinstance(benchmark, str) else None
    fields = {k: v for k, v in config.items() if k in MeasuredRow.model_fields and k not in SCORES}
    fields.pop("kind", None)
    if isinstance(scores, dict):
        fields |= {k: v for k, v in scores.items() if k in SCORES}
    fields["run"] = record["run"] if isinstance(record.get("run"), dict) else {}
    try:
        return MeasuredRow.model_validate(fields), []
    except ValidationError as error:
        errors = error.errors()
    required = sorted(
        (e for e in errors if e["loc"] and e["loc"][0] in REQUIRED), key=lambda e: REQUIRED.index(e["loc"][0])
    )
    if not isinstance(scores, dict) and not any(_message(e).startswith("config.") for e in required):
        raise ValueError(f"no results for benchmark {str(benchmark)[:40]!r}")
    if required:
        raise ValueError(_message(required[0]))
    dropped = {str(e["loc"][0]): _message(e).split(".", 1)[1] for e in errors}
    try:
        row = MeasuredRow.model_validate({k: v for k, v in fields.items() if k not in dropped})
    except ValidationError as again:  # cannot happen: every field left validated above
        raise ValueError(_message(again.errors()[0])) from None
    return row, [f"{field} ({message.split(': ', 1)[-1][:80]})" for field, message in dropped.items()]


def read_row(data: bytes, name: str) -> tuple[MeasuredRow | None, list[str]]:
    """A stored file's row (None: skipped) and the messages about it, each naming the file."""
    if len(data) > MAX_RECORD_BYTES:
        return None, [f"skipped {name}: {len(data)} bytes, over the {MAX_RECORD_BYTES}-byte cap"]
    try:
        row, dropped = row_from_record(json.loads(data))
    except (ValueError, RecursionError, UnicodeDecodeError) as error:
        return None, [f"skipped {name}: {' '.join(str(error).split())[:200]}"]
    return row, [f"{name}: dropped {', '.join(dropped)}"] if dropped else []
