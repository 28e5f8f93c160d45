"""The original PyTorch checkpoints of the peer families (6DRepNet's ``.pth``, HopeNet's ``.pkl``), read once.

They are pickles: read only with ``torch.load(weights_only=True)`` (tensors and plain containers, never code),
after a size cap and a look at the file's first bytes, so any other file (an HDF5, a text) is turned away
without unpickling anything. Both of torch's formats are read: the zip archive (memory-mapped, so recognising
a 150 MB file costs little) and the legacy pickle stream of the 2017-era files.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from fsanet.errors import InvalidWeightsError

MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024  # far above either peer's file (150 MB, 96 MB)
# torch's legacy format starts with the pickled magic number 0x1950a86a20f9469cfc6c (a protocol-2 long).
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
WRAPPERS = ("model_state_dict", "state_dict")  # training scripts' {'model_state_dict': ...} checkpoints


def looks_like_torch_checkpoint(path: Path) -> bool:
    """A zip archive or a legacy torch pickle of a sane size (nothing is unpickled)."""
    try:
        if path.stat().st_size > MAX_CHECKPOINT_BYTES:
            return False
        with path.open("rb") as handle:
            head = handle.read(len(LEGACY_MAGIC))
    except OSError:
        return False
    return head == LEGACY_MAGIC or zipfile.is_zipfile(path)


def read_state_dict(path: Path) -> dict[str, torch.Tensor] | None:
    """The tensors of a torch checkpoint (a state dict, or one wrapped as ``{'model_state_dict': ...}``);
    None when ``path`` is no such file."""
    if not looks_like_torch_checkpoint(path):
        return None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        raise InvalidWeightsError(f"{path.name}: not a readable PyTorch checkpoint ({error})") from error
    for wrapper in WRAPPERS:
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in loaded.items()
    ):
        return None
    return dict(loaded)


def exact_keys(
    state: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    ignored: tuple[str, ...] = (),
    what: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """``state`` restricted to the model's tensors (``expected``) as float32, after checking that every one
    is there with its shape and nothing else is, apart from the keys ending in ``ignored`` (vestigial layers,
    BatchNorm step counters). Integer tensors the file lacks (the counters of pre-0.4.1 files) are zeros."""
    counters = {key for key, value in expected.items() if not value.is_floating_point()}
    missing = sorted(set(expected) - set(state) - counters)
    unexpected = sorted(key for key in set(state) - set(expected) if not key.endswith(ignored))
    if missing or unexpected:
        raise InvalidWeightsError(
            f"{what}: missing tensors {missing[:5]} ({len(missing)} in all), "
            f"unexpected tensors {unexpected[:5]} ({len(unexpected)} in all)"
        )
    converted = {}
    for key, reference in expected.items():
        value = state.get(key)
        if value is None:
            converted[key] = torch.zeros_like(reference, device="cpu")
            continue
        if tuple(value.shape) != tuple(reference.shape):
            shape, needed = tuple(value.shape), tuple(reference.shape)
            raise InvalidWeightsError(f"{what}: {key} has shape {shape}, the model needs {needed}")
        dtype = torch.float32 if reference.is_floating_point() else reference.dtype
        converted[key] = value.detach().to(dtype=dtype, copy=True).contiguous()  # off the file's memory map
    return converted
