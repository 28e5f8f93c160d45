"""A registered benchmark's data for a board: located (:func:`~.benchmarks.dataset_source`), imported from its
original layout the first time, and loaded once per revision per process (:func:`~.data.load_benchmark_data`).
"""

from __future__ import annotations

from pathlib import Path

from ..settings import leaderboard_dir
from .benchmarks import BENCHMARKS, get_benchmark
from .data import BenchmarkData, DatasetUnavailableError, load_benchmark_data
from .importers import import_original, original_layout


def load_benchmark(name: str, root: str | Path | None = None) -> BenchmarkData:
    """A registered benchmark's data for the board at ``root``; a folder in its original layout (AFLW2000's
    ``.jpg`` + ``.mat``, BIWI's ``hpdb``) is imported into the board's ``datasets/<name>`` first, once."""
    spec = BENCHMARKS[name]
    source = spec.source(root)
    if original_layout(Path(source)):
        try:
            source = str(import_original(name, Path(source), leaderboard_dir(root) / "datasets" / name))
        except (OSError, ValueError) as error:
            raise DatasetUnavailableError(f"{name}: importing {Path(source).name} failed: {error}") from None
    return load_benchmark_data(source, spec.revision())


def present_benchmarks(root: str | Path | None = None) -> list[str]:
    """The registered benchmarks whose data, located for the board at ``root``, can be loaded now."""
    present = []
    for spec in BENCHMARKS.values():
        try:
            load_benchmark(spec.name, root)
        except DatasetUnavailableError:
            continue
        present.append(spec.name)
    return present


def resolve_benchmark(
    benchmark: str | Path, root: str | Path | None = None
) -> tuple[str, BenchmarkData, bool]:
    """``(name, data, filter_99)`` for a registered benchmark name (its data located for the board at
    ``root``) or a dataset directory / Hub repo id."""
    if str(benchmark) in BENCHMARKS:
        spec = get_benchmark(str(benchmark))
        try:
            data = load_benchmark(spec.name, root)
        except DatasetUnavailableError as error:
            raise DatasetUnavailableError(
                f"no {spec.name} data: {error} (write it with `python -m leaderboard prepare ... --out DIR`, "
                f"or set {spec.env_var})"
            ) from None
        return spec.name, data, spec.filter_99
    data = load_benchmark_data(benchmark)
    name = data.meta.get("benchmark") or Path(str(benchmark)).name
    spec = BENCHMARKS.get(name)
    return name, data, spec.filter_99 if spec else True
