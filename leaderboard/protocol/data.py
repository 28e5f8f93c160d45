"""The canonical benchmark format, and loading it from a local directory or a Hub dataset repo.

One row per test sample (split ``test``):

* ``sample_id`` (string): stable id, e.g. ``image00050`` or ``01/frame_00003``.
* ``image`` (``datasets.Image``, RGB, lossless): a context crop of the original photo, large enough for any
  model's recipe (the face box grown by its own width/height on every side, clipped to the photo); in
  datasets of the first format, the authors' 64x64 crop itself.
* ``face_box`` (4 x float64 or null): the protocol's face box ``[x1, y1, x2, y2]`` in the original photo's
  pixels (AFLW2000: the authors' 2-D landmark box before any margin; BIWI: the MTCNN box). Each model's
  recipe (:mod:`fsanet.data.recipes`) cuts its own crop from it.
* ``origin`` (2 x int32), ``frame_size`` (2 x int32): where ``image`` sits in the original photo and that
  photo's (width, height): recipes clip to the photo as the authors did.
* ``landmarks`` (list of [x, y] float32): the source's 2-D landmarks in photo pixels, empty where none.
* ``box`` (4 x int32 or null): the FSA-Net authors' crop of this benchmark in ``image`` (exclusive end), so
  readers of the first format (training) still get their 64x64 crop; null when ``image`` is that crop.
* ``yaw``, ``pitch``, ``roll`` (float64): labels in degrees.
* ``source_revision`` (string): what the row was made from (``<dataset>@<sha256 of the source file>``).

Datasets of the first format (no ``face_box``: only the 64x64 crop) still load; models of another input
size get that crop resized.

Local datasets are written with ``save_to_disk`` (Arrow, memory-mapped on load) next to a
``leaderboard_dataset.json`` that says which benchmark, protocol and importer made them. Their revision is
the sha256 of the Arrow files, so it pins the exact content evaluated. Hub datasets are loaded with
``datasets.load_dataset`` at a resolved commit sha.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import datasets
import numpy as np

from fsanet.data.preprocess import INPUT_SIZE, crop_resize
from fsanet.data.recipes import CropProtocol, crop_face
from fsanet.utils.files import TEMP_PREFIX

SPLIT = "test"
META_FILE = "leaderboard_dataset.json"
FEATURES = datasets.Features(
    {
        "sample_id": datasets.Value("string"),
        "image": datasets.Image(),
        "box": datasets.Sequence(datasets.Value("int32"), length=4),
        "yaw": datasets.Value("float64"),
        "pitch": datasets.Value("float64"),
        "roll": datasets.Value("float64"),
        "source_revision": datasets.Value("string"),
        "face_box": datasets.Sequence(datasets.Value("float64"), length=4),
        "origin": datasets.Sequence(datasets.Value("int32"), length=2),
        "frame_size": datasets.Sequence(datasets.Value("int32"), length=2),
        "landmarks": datasets.Sequence(datasets.Sequence(datasets.Value("float32"), length=2)),
    }
)
# The first format's columns: every dataset has them; the others arrived with per-model recipes.
LEGACY_COLUMNS = ("sample_id", "image", "box", "yaw", "pitch", "roll", "source_revision")


class DatasetUnavailableError(Exception):
    """A benchmark's configured data cannot be loaded (absent, offline, or not in the canonical format)."""


@dataclass
class BenchmarkData:
    dataset: datasets.Dataset
    source: str
    revision: str
    meta: dict[str, Any] = field(default_factory=dict)


def write_dataset(
    rows: Iterable[dict[str, Any]], out: Path, meta: dict[str, Any], overwrite: bool = False
) -> Path:
    """Stream ``rows`` (canonical columns, ``image`` as an RGB uint8 array) into a dataset at ``out``.

    The dataset is built in a temporary sibling folder and renamed into place, so an interrupted import
    never leaves a half dataset, and an existing one is replaced only with ``overwrite``.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} already exists and is not empty (pass overwrite to replace it)")
    rows = iter(rows)
    first = next(rows, None)  # importer errors surface here, before anything is created
    if first is None:
        raise ValueError("the importer found no samples: nothing written")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f"{TEMP_PREFIX}{out.name}-{uuid.uuid4().hex[:8]}"
    cache = staging.with_name(staging.name + "-cache")
    try:
        ds = datasets.Dataset.from_generator(
            _generator(itertools.chain([first], rows)),
            features=FEATURES,
            cache_dir=str(cache),
            split=datasets.Split.TEST,
            fingerprint=uuid.uuid4().hex,  # never reuse a cached build of other source files
        )
        ds.save_to_disk(str(staging))
        del ds
        meta = {**meta, "n": _num_rows(staging), "revision": _local_revision(staging)}
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if out.exists():
            backup = out.parent / f"{TEMP_PREFIX}{out.name}-old-{uuid.uuid4().hex[:8]}"
            out.rename(backup)
            staging.rename(out)
            shutil.rmtree(backup)
        else:
            staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    return out


def _generator(rows: Iterable[dict[str, Any]]):
    # Rows of the first format (a crop, no protocol box) leave the newer columns out.
    absent = {"face_box": None, "origin": None, "frame_size": None, "landmarks": []}

    def generate() -> Iterator[dict[str, Any]]:
        for row in rows:
            yield absent | row

    return generate


def _num_rows(path: Path) -> int:
    return len(datasets.load_from_disk(str(path)))


def _local_revision(path: Path) -> str:
    """sha256 over the data files (sorted by name): changes exactly when the stored content does."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.suffix in (".arrow", ".parquet"))
    for p in files:
        digest.update(p.relative_to(path).as_posix().encode())
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


def load_benchmark_data(source: str | Path, revision: str | None = None) -> BenchmarkData:
    """Load a canonical dataset from a local directory or a Hub dataset repo id (``revision`` pins it).

    Once per revision per process: a local folder is loaded (and its revision hashed) again only when its
    files change (:func:`folder_fingerprint`), a Hub dataset only at another commit; every caller (the
    worker's look for data, each evaluation, the Space) shares that one load.
    """
    path = Path(source)
    if path.is_dir():
        return _once(("local", str(path.resolve())), folder_fingerprint(path), lambda: _load_local(path))
    if path.exists() or str(source).startswith((".", "/")) or str(source).count("/") != 1:
        raise DatasetUnavailableError(f"{source} is neither a dataset directory nor a Hub repo id")
    sha = _hub_commit(str(source), revision)
    return _once(("hub", str(source)), sha, lambda: _load_hub(str(source), sha))


_LOADED: dict[tuple[str, str], tuple[str, BenchmarkData]] = {}  # (kind, where) -> (revision stamp, data)
_LOADING = threading.Lock()


def _once(where: tuple[str, str], stamp: str, load: Callable[[], BenchmarkData]) -> BenchmarkData:
    with _LOADING:  # one load at a time: a second caller waits for the first's result instead of loading too
        cached = _LOADED.get(where)
        if cached is None or cached[0] != stamp:
            _LOADED[where] = stamp, load()
        return _LOADED[where][1]


def folder_fingerprint(source: Path) -> str:
    """Names, sizes and modification times of every file under ``source``: changes when they do."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _load_local(path: Path) -> BenchmarkData:
    meta_path = path / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    try:
        if (path / "state.json").exists():
            ds = datasets.load_from_disk(str(path))
        else:  # e.g. a downloaded Hub snapshot of parquet files
            ds = datasets.load_dataset(str(path), split=SPLIT)
    except Exception as err:  # datasets raises many types for a folder that is not a dataset
        raise DatasetUnavailableError(f"{path} is not a loadable dataset: {err}") from err
    _check_columns(ds, str(path))
    return BenchmarkData(ds, str(path), _local_revision(path), meta)


def _hub_commit(repo_id: str, revision: str | None) -> str:
    from huggingface_hub import HfApi

    try:
        return str(HfApi().dataset_info(repo_id, revision=revision).sha)
    except Exception as err:  # offline, missing repo, wrong revision: all mean "not present"
        raise DatasetUnavailableError(
            f"cannot load Hub dataset {repo_id}@{revision or 'main'}: {err}"
        ) from err


def _load_hub(repo_id: str, sha: str) -> BenchmarkData:
    try:
        ds = datasets.load_dataset(repo_id, split=SPLIT, revision=sha)
    except Exception as err:  # offline, a broken commit
        raise DatasetUnavailableError(f"cannot load Hub dataset {repo_id}@{sha}: {err}") from err
    _check_columns(ds, repo_id)
    return BenchmarkData(ds, repo_id, sha, {})


def _check_columns(ds: datasets.Dataset, source: str) -> None:
    missing = set(LEGACY_COLUMNS) - set(ds.column_names)
    if missing:
        raise DatasetUnavailableError(f"{source} lacks the canonical columns {sorted(missing)}")


def iter_batches(
    ds: datasets.Dataset,
    batch_size: int,
    recipe: dict[str, Any] | None = None,
    protocol: CropProtocol | None = None,
) -> Iterator[tuple[list[str], np.ndarray, np.ndarray]]:
    """Yield ``(sample_ids, faces uint8 (N, S, S, 3) RGB, labels float64 (N, 3) yaw/pitch/roll)``.

    Without ``recipe``: the FSA-Net authors' 64x64 crop as stored. With one: the model's crop of the protocol
    box, under the benchmark's crop ``protocol`` (what FSA-Net's recipe takes from the benchmark).
    """
    if recipe is not None and protocol is None:
        raise ValueError("a recipe needs the benchmark's crop protocol")
    for batch in ds.iter(batch_size=batch_size):
        rows = [{key: batch[key][i] for key in batch} for i in range(len(batch["sample_id"]))]
        faces = np.stack([_face(row, recipe, protocol) for row in rows])
        labels = np.stack([batch["yaw"], batch["pitch"], batch["roll"]], axis=1).astype(np.float64)
        yield list(batch["sample_id"]), faces, labels


def authors_crop(image: np.ndarray, box: list[int] | None) -> np.ndarray:
    """The FSA-Net authors' 64x64 crop of a row: ``image`` cut at ``box``, or ``image`` if it is that crop."""
    if box is not None:
        return crop_resize(image, box, INPUT_SIZE, inclusive=False)
    if image.shape[:2] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"a row without box must hold a {INPUT_SIZE}x{INPUT_SIZE} crop, got {image.shape}")
    return image


def _face(row: dict[str, Any], recipe: dict[str, Any] | None, protocol: CropProtocol | None) -> np.ndarray:
    array = np.asarray(row["image"].convert("RGB"))
    if recipe is not None and row.get("face_box") is not None:
        return crop_face(
            array, row["face_box"], recipe, protocol, tuple(row["origin"]), tuple(row["frame_size"])
        )
    array = authors_crop(array, row["box"])
    size = int(recipe["size"]) if recipe else INPUT_SIZE
    # Only the authors' crop is stored (first format, or no protocol box): other sizes get it resized.
    return array if size == INPUT_SIZE else cv2.resize(array, (size, size), interpolation=cv2.INTER_LINEAR)


def push_dataset_to_hub(path: Path, repo_id: str, private: bool = False) -> str:
    """Upload a local canonical dataset (parquet + metadata file) to a Hub dataset repo; returns the URL."""
    from huggingface_hub import HfApi

    ds = datasets.load_from_disk(str(path))
    ds.push_to_hub(repo_id, split=SPLIT, private=private)
    info = HfApi().upload_file(
        path_or_fileobj=str(Path(path) / META_FILE),
        path_in_repo=META_FILE,
        repo_id=repo_id,
        repo_type="dataset",
    )
    return str(info)
