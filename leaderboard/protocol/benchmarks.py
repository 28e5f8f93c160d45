"""The benchmarks, the protocol's version, and where each benchmark's data is found: configuration."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fsanet.utils.files import atomic_write_json

from ..settings import benchmark_data, leaderboard_dir

# Bump when a change alters any score (protocol, preprocessing, metric): results carry it in their key,
# so older rows stay distinguishable instead of silently mixing with new ones.
CODE_VERSION = "2"  # 2: rows keyed by model identity (weights + config) in namespaces

# The official test filter: keep samples whose yaw, pitch and roll all lie in [-99, 99] degrees.
ANGLE_LIMIT = 99.0


@dataclass(frozen=True)
class Benchmark:
    """One registered benchmark: a name, its protocol and where its canonical dataset comes from."""

    name: str
    title: str
    protocol: str
    description: str
    filter_99: bool
    # FSA-Net authors' crop of this benchmark (their test databases): margin around the box, slice end.
    margin: float
    crop_end: str
    original: str  # the dataset's original layout, which LEADERBOARD_DATA_<NAME> may name too

    @property
    def env_var(self) -> str:
        return f"LEADERBOARD_DATA_{self.name.upper()}"

    def source(self, root: str | Path | None = None) -> str:
        """Where this benchmark's data is read from for the board at ``root`` (:func:`dataset_source`)."""
        return dataset_source(self.name, root)

    def revision(self) -> str | None:
        return benchmark_data(f"{self.env_var}_REVISION")


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "aflw2000",
            "AFLW2000",
            "protocol 1",
            "Trained on 300W-LP, tested on AFLW2000-3D; crop from the 2-D landmark box, margin 0.6.",
            filter_99=True,
            margin=0.6,
            crop_end="exclusive",
            original="the original AFLW2000 folder (`.jpg` + `.mat`)",
        ),
        Benchmark(
            "biwi",
            "BIWI",
            "protocol 1",
            "Trained on 300W-LP, tested on BIWI without tracking (MTCNN boxes, margin 0.4).",
            filter_99=True,
            margin=0.4,
            crop_end="inclusive",
            original="the BIWI `hpdb` folder",
        ),
        Benchmark(
            "biwi_70_30",
            "BIWI 70/30",
            "protocol 2",
            "Trained on 16 BIWI sequences, tested on the other 8 (MTCNN boxes, margin 0.4), no angle filter.",
            filter_99=False,
            margin=0.4,
            crop_end="inclusive",
            original="the BIWI `hpdb` folder",
        ),
    )
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def dataset_source(name: str, root: str | Path | None = None) -> str:
    """A benchmark's local dir or Hub repo id: ``LEADERBOARD_DATA_<NAME>``, else where ``prepare --out``
    last put it for this board (``<root>/datasets.json``), else ``<root>/datasets/<name>``."""
    spec = get_benchmark(name)
    configured = benchmark_data(spec.env_var)
    if configured:
        return configured
    board = leaderboard_dir(root)
    prepared = _prepared_locations(board).get(name)
    return prepared if prepared else str(board / "datasets" / name)


def remember_dataset(name: str, path: str | Path, root: str | Path | None = None) -> None:
    """Record where ``prepare --out`` wrote a benchmark so that ``evaluate``/``seed``/``worker`` find it."""
    board = leaderboard_dir(root)
    locations = _prepared_locations(board)
    default = (board / "datasets" / name).resolve()
    if Path(path).resolve() == default:
        locations.pop(name, None)
    else:
        locations[name] = str(Path(path).resolve())
    atomic_write_json(board / PREPARED_FILE, locations)


def looked_in(root: str | Path | None = None, names: Iterable[str] | None = None) -> str:
    """Where the data of every benchmark (or of ``names``) was looked for, for messages that find none."""
    return "; ".join(f"{name}: {dataset_source(name, root)}" for name in names or BENCHMARKS)


def no_data_message(names: Sequence[str] | None = None, root: str | Path | None = None) -> str:
    """What to set for benchmarks that have no data (every one, or ``names``), and where their data was
    looked for: the one message of the Space's empty board and of a benchmark picked without data."""
    specs = [get_benchmark(name) for name in names or BENCHMARKS]
    variables = ", ".join(f"`{spec.env_var}`" for spec in specs)
    originals = " or ".join(dict.fromkeys(spec.original for spec in specs))
    return (
        f"Set {variables} to a Hub dataset id, a prepared dataset folder (`python -m leaderboard prepare`), "
        f"or {originals} (imported at start), then restart: the registry's models are scored on it. "
        f"Looked in: {looked_in(root, [spec.name for spec in specs])}."
    )


PREPARED_FILE = "datasets.json"


def _prepared_locations(board: Path) -> dict[str, str]:
    try:
        locations = json.loads((board / PREPARED_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in locations.items() if k in BENCHMARKS and isinstance(v, str)}
