"""The one typed schema of a result record, and reading one file against it without ever failing the board.

A record (one JSON file per model, benchmark, dataset revision and code version, as the HF leaderboard
template stores them)::

    {"config": {"model_name", "namespace", "weights_identity", "config_identity", "benchmark",
                "dataset_revision", "code_version", ...optional: method, trained_on, params, ...},
     "results": {"<benchmark>": {"mae", "mae_yaw", "mae_pitch", "mae_roll", "n", "n_dropped",
                                 ...optional: geodesic_mean, mae_by_yaw_bin, robustness, ...}},
     "run": {...}}

:func:`read_record` validates a file when it is read: a bad **required** field skips the file, a bad
**optional** field is dropped from that row only; either way one message says what and where. Files above
:data:`MAX_RECORD_BYTES` are never parsed.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

MAX_RECORD_BYTES = 1024 * 1024  # a result is ~10 kB; anything near this is not one of ours
NAMESPACES = ("official", "community")  # registry models; everything else (submissions, local folders)

Text = Annotated[str, Field(max_length=200)]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Angle = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # an error in degrees
Number = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class RequiredConfig(_Strict):
    """What makes a row: the model's identity and namespace, the benchmark, the data, the code."""

    model_name: Annotated[str, Field(min_length=1, max_length=80)]
    namespace: Literal["official", "community"]
    weights_identity: Hex64
    config_identity: Hex64
    benchmark: Annotated[str, Field(min_length=1, max_length=40)]
    dataset_revision: Text
    code_version: Annotated[str, Field(max_length=20)]


class RequiredScores(_Strict):
    """What ranks a row."""

    mae: Angle
    mae_yaw: Angle
    mae_pitch: Angle
    mae_roll: Angle
    n: Annotated[int, Field(ge=1)]
    n_dropped: Count


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


Curve = Annotated[list[Annotated[list[Number], Field(min_length=2, max_length=2)]], Field(max_length=200)]
OPTIONAL_CONFIG: dict[str, Any] = {
    "architecture": Text,
    "method": Annotated[str, Field(max_length=40)],
    "trained_on": Annotated[str, Field(max_length=80)],
    "model_protocol": Literal["protocol 1", "protocol 2"] | None,
    "params": Count,
    "gflops": Annotated[float, Field(ge=0, allow_inf_nan=False)],
    "input_size": Annotated[int, Field(ge=1, le=4096)],
    "preprocess": dict[str, Any],
    "protocol": Annotated[str, Field(max_length=40)],
    "dataset_source": Text,
    "filter_99": bool,
    "request_id": Annotated[str, Field(max_length=80)],
}
OPTIONAL_SCORES: dict[str, Any] = {
    "geodesic_mean": Angle,
    "geodesic_median": Angle,
    "mae_by_yaw_bin": Annotated[list[YawBin], Field(max_length=50)],
    "cumulative_mae_curve": Curve,
    "cumulative_geodesic_curve": Curve,
    "worst_samples": Annotated[list[WorstSample], Field(max_length=50)],
    "robustness": Annotated[list[RobustnessPoint], Field(max_length=100)],
}
_ADAPTERS = {
    section: {field: TypeAdapter(kind, config=ConfigDict(strict=True)) for field, kind in fields.items()}
    for section, fields in (("config", OPTIONAL_CONFIG), ("scores", OPTIONAL_SCORES))
}


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def validate_record(record: Any) -> tuple[dict[str, Any], list[str]]:
    """The record as the board may use it, and one message per optional field dropped from it.

    Raises ValueError (saying which field) when a required field is missing or wrong: that file is skipped.
    """
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError("not a leaderboard result (no 'config' object)")
    try:
        config = RequiredConfig.model_validate(record["config"]).model_dump()
    except ValidationError as error:
        raise ValueError(f"config.{_first_error(error)}") from None
    results = record.get("results")
    scores_in = results.get(config["benchmark"]) if isinstance(results, dict) else None
    if not isinstance(scores_in, dict):
        raise ValueError(f"no results for benchmark {config['benchmark']!r}")
    try:
        scores = RequiredScores.model_validate(scores_in).model_dump()
    except ValidationError as error:
        raise ValueError(f"results.{_first_error(error)}") from None
    dropped: list[str] = []
    for section, source, target in (("config", record["config"], config), ("scores", scores_in, scores)):
        for field, adapter in _ADAPTERS[section].items():
            if field not in source:
                continue
            try:
                target[field] = adapter.dump_python(adapter.validate_python(source[field]), mode="json")
            except ValidationError as error:
                dropped.append(f"{field} ({_first_error(error)[:80]})")
    run = record.get("run") if isinstance(record.get("run"), dict) else {}
    return {"config": config, "results": {config["benchmark"]: scores}, "run": run}, dropped


def read_record(data: bytes, name: str) -> tuple[dict[str, Any] | None, list[str]]:
    """A stored file's record (None: skipped) and the messages about it, each naming the file."""
    if len(data) > MAX_RECORD_BYTES:
        return None, [f"skipped {name}: {len(data)} bytes, over the {MAX_RECORD_BYTES}-byte cap"]
    try:
        record, dropped = validate_record(json.loads(data))
    except (ValueError, RecursionError, UnicodeDecodeError) as error:
        return None, [f"skipped {name}: {' '.join(str(error).split())[:200]}"]
    return record, [f"{name}: dropped {', '.join(dropped)}"] if dropped else []
