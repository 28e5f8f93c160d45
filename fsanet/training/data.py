"""Training data in the leaderboard's canonical format, read lazily.

A dataset has an ``image`` column (``datasets.Image``: a 64x64 face crop, or a full image with a
``box`` ``[x1, y1, x2, y2]``, exclusive end) and ``yaw``, ``pitch``, ``roll`` in degrees; other columns
are ignored. Sources are local ``save_to_disk`` directories (memory-mapped Arrow), local folders of
parquet files, or Hub dataset repo ids. Only the three label columns are read into memory; images are
decoded per batch, so 300W-LP-sized sets (122k crops) cost a few MB of RAM.

This module reads the on-disk format directly: ``fsanet`` never imports ``leaderboard``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from fsanet.data.preprocess import INPUT_SIZE, crop_resize
from fsanet.errors import FSANetError
from fsanet.training.augment import augment_batch

if TYPE_CHECKING:
    import datasets

LABEL_COLUMNS = ("yaw", "pitch", "roll")
PROTOCOL_MAX_ANGLE = 99.0  # the authors keep only samples with every angle in [-99, 99]
SPLIT_PREFERENCE = ("train", "test", "validation")


class DataError(FSANetError):
    """A training or validation source cannot be read as a canonical pose dataset."""


def open_dataset(source: str | Path, split: str | None = None) -> datasets.Dataset:
    """A canonical dataset from a local directory or a Hub repo id (``split``, or the only/train split)."""
    import datasets  # here: importing it takes ~0.7 s, which every `python -m fsanet` command paid

    path = Path(source)
    try:
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(str(path))
        elif path.is_dir() or str(source).count("/") == 1:
            loaded = datasets.load_dataset(str(source), split=split)
        else:
            raise DataError(f"{source} is neither a dataset directory nor a Hub repo id")
    except DataError:
        raise
    except Exception as error:  # datasets raises many types for a missing/offline/invalid source
        raise DataError(f"cannot load dataset {source}: {error}") from error
    if isinstance(loaded, datasets.DatasetDict):
        if split is None:
            found = [name for name in SPLIT_PREFERENCE if name in loaded] or list(loaded)
            split = found[0]
        if split not in loaded:
            raise DataError(f"{source} has no split {split!r} (splits: {sorted(loaded)})")
        loaded = loaded[split]
    missing = {"image", *LABEL_COLUMNS} - set(loaded.column_names)
    if missing:
        raise DataError(f"{source} lacks the canonical columns {sorted(missing)}")
    return loaded


@dataclass
class PoseData:
    """Several canonical datasets as one indexable set (300W-LP's subsets concatenate this way).

    ``labels`` (N, 3) float32 yaw/pitch/roll of the kept rows; ``rows`` maps a kept index to
    ``(dataset number, row)``. Rows with any |angle| > ``max_angle`` are dropped, as the authors did.
    """

    parts: list[datasets.Dataset]
    labels: np.ndarray
    rows: np.ndarray
    size: int = INPUT_SIZE

    @classmethod
    def open(
        cls,
        sources: Sequence[str | Path],
        split: str | None = None,
        max_angle: float | None = PROTOCOL_MAX_ANGLE,
        size: int = INPUT_SIZE,
    ) -> PoseData:
        parts, labels, rows = [], [], []
        for number, source in enumerate(sources):
            part = open_dataset(source, split)
            columns = part.select_columns(list(LABEL_COLUMNS)).with_format("numpy")
            part_labels = np.stack([np.asarray(columns[c], np.float32) for c in LABEL_COLUMNS], axis=1)
            keep = np.ones(len(part_labels), bool)
            if max_angle is not None:
                keep = (np.abs(part_labels) <= max_angle).all(axis=1)
            index = np.flatnonzero(keep)
            parts.append(part.select_columns(["image", "box"] if "box" in part.column_names else ["image"]))
            labels.append(part_labels[index])
            rows.append(np.stack([np.full(len(index), number), index], axis=1))
        data = cls(parts, np.concatenate(labels), np.concatenate(rows).astype(np.int64), size)
        if len(data) == 0:
            raise DataError(f"no samples with every angle within ±{max_angle}° in {list(sources)}")
        return data

    def __len__(self) -> int:
        return len(self.labels)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (len(indices), size, size, 3) RGB crops, in the order given."""
        out = np.empty((len(indices), self.size, self.size, 3), np.uint8)
        rows = self.rows[indices]
        for number, part in enumerate(self.parts):
            where = np.flatnonzero(rows[:, 0] == number)
            if len(where) == 0:
                continue
            batch = part[rows[where, 1].tolist()]  # one Arrow take per part and batch
            boxes = batch.get("box", [None] * len(where))
            for slot, image, box in zip(where, batch["image"], boxes, strict=True):
                out[slot] = self._crop(np.asarray(image.convert("RGB")), box)
        return out

    def _crop(self, array: np.ndarray, box: Sequence[int] | None) -> np.ndarray:
        if box is not None:
            return crop_resize(array, box, self.size, inclusive=False)
        if array.shape[:2] != (self.size, self.size):
            return cv2.resize(array, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        return array


class BatchSource(torch.utils.data.Dataset):
    """Map-style dataset whose items are whole batches: ``(epoch, batch_number, indices)`` ->
    ``(uint8 (B, H, W, 3) images, float32 (B, 3) labels)``.

    The augmentation generator is seeded from ``(seed, epoch, batch_number)``, so a batch is the same
    whichever worker makes it and whether or not training was resumed in between.
    """

    def __init__(self, data: PoseData, seed: int, augment: bool):
        self.data, self.seed, self.augment = data, seed, augment

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, item: tuple[int, int, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, number, indices = item
        images = self.data.images(indices)
        if self.augment:
            images = augment_batch(images, np.random.default_rng([self.seed, epoch, number]))
        return torch.from_numpy(images), torch.from_numpy(self.data.labels[indices])


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The epoch's shuffled full batches (a trailing partial batch is dropped, as in most recipes)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def batch_loader(
    data: PoseData,
    batch_size: int,
    seed: int,
    epoch: int,
    start_batch: int = 0,
    augment: bool = True,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """The epoch's batches from ``start_batch`` on (resuming mid-epoch skips the ones already seen)."""
    batches = epoch_batches(len(data), batch_size, seed, epoch)
    items = [(epoch, number, batch) for number, batch in enumerate(batches)][start_batch:]
    return torch.utils.data.DataLoader(
        BatchSource(data, seed, augment),
        batch_size=None,
        sampler=items,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
    )


def eval_loader(data: PoseData, batch_size: int, num_workers: int = 0) -> torch.utils.data.DataLoader:
    """Every sample once, in order, without augmentation."""
    order = np.arange(len(data))
    items = [
        (0, number, order[i : i + batch_size]) for number, i in enumerate(range(0, len(data), batch_size))
    ]
    return torch.utils.data.DataLoader(
        BatchSource(data, 0, False), batch_size=None, sampler=items, num_workers=num_workers
    )
