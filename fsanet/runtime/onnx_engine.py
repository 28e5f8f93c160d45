"""ONNX export of the pose models and the ONNX Runtime engine that runs them on CPU.

:func:`export_onnx` writes what ``python -m fsanet export`` ships: float32 ``(N, 3, S, S)`` RGB in
[0, 255] in (``input``), ``(N, 3)`` [yaw, pitch, roll] degrees out (``angles``), a dynamic batch, opset
:data:`OPSET`, and the model's name, config and identity in the file's metadata. A plain
``onnxruntime`` session runs it with nothing from this project installed.

:class:`OnnxPoseModel` is what :func:`fsanet.runtime.optimize.optimize_for_inference` returns on CPU when
onnxruntime is installed: the same call contract as the model (tensor in, tensor out). The exported
graph is cached under ``$FSANET_CACHE/onnx``, beside the converted weights, keyed by the model's identity
(:func:`fsanet.model_identity`: weights and config) and the opset, and written atomically. The legacy
(TorchScript-based) exporter of torch 2.13 is used (``dynamo=False``): it gives a dynamic batch and parity
for every shipped model (``tests/test_onnx.py``: within 1e-3 degrees of torch, and of the official outputs
as tight as the torch port); the dynamo exporter would add onnxscript as a dependency and was not needed.
"""

from __future__ import annotations

import io
import json
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fsanet.errors import FSANetError
from fsanet.models.identity_cache import carried_identity
from fsanet.models.weights import weights_identity
from fsanet.runtime.engine import EngineModel
from fsanet.runtime.threads import inference_threads
from fsanet.utils import settings
from fsanet.utils.files import atomic_write
from fsanet.utils.settings import ENGINE_ENV, cache_dir

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "input", "angles"
ENGINES = ("auto", "onnx", "torch")


_EXPORTING = threading.Lock()


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def requested_engine(engine: str | None = None) -> str:
    """The engine asked for: the argument, else ``$FSANET_ENGINE``, else ``auto``."""
    choice = (engine or settings.engine()).strip().lower()
    if choice not in ENGINES:
        raise FSANetError(f"{ENGINE_ENV} (or engine=) must be one of {', '.join(ENGINES)}, not {choice!r}")
    return choice


def choose_engine(engine: str | None, device: torch.device) -> str:
    """``"onnx"`` or ``"torch"`` for :func:`requested_engine`: ``auto`` is ONNX Runtime on CPU when
    installed, torch on CUDA (training always uses torch)."""
    choice = requested_engine(engine)
    if choice == "torch" or (choice == "auto" and (device.type != "cpu" or not onnxruntime_available())):
        return "torch"
    if device.type != "cpu":
        raise FSANetError(f"the onnx engine runs on CPU, not {device}: use {ENGINE_ENV}=torch on CUDA")
    if not onnxruntime_available():
        raise FSANetError("the onnx engine needs onnxruntime: pip install onnxruntime (or use torch)")
    return "onnx"


def onnx_bytes(
    module: nn.Module,
    example: torch.Tensor,
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    metadata: dict[str, str],
    opset: int = OPSET,
) -> bytes:
    """``module`` exported in eval mode (its mode restored after) with one input, :data:`INPUT_NAME`, and
    ``metadata`` attached."""
    import onnx

    buffer, was_training = io.BytesIO(), module.training
    # torch's exporter keeps process-wide state: two threads exporting at once (the Space seeding the board
    # while it loads a model) would trip over each other.
    with _EXPORTING, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter: see the module docstring
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=output_names,
            dynamic_axes=dynamic_axes,
        )
    module.train(was_training)
    graph = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    return graph.SerializeToString()


def pose_metadata(model: nn.Module, opset: int = OPSET) -> dict[str, str]:
    """What the exported file records about ``model`` (ONNX metadata_props: strings only); its identity is the
    one the model carries (hashed only if it carries none: :mod:`fsanet.models.identity_cache`), a bare
    module's its weights identity."""
    if hasattr(model, "config"):
        identity = carried_identity(model)
        weights, key = identity.weights, identity.key
    else:
        weights = key = weights_identity(model.state_dict())
    return {
        "fsanet.name": str(getattr(model, "name", type(model).__name__)),
        "fsanet.config": json.dumps(getattr(model, "config", {}), sort_keys=True),
        "fsanet.weights_identity": weights,
        "fsanet.identity": key,
        "fsanet.input_size": str(int(getattr(model, "input_size", 64))),
        "fsanet.opset": str(opset),
        "fsanet.input": "float32 (N, 3, S, S) RGB in [0, 255]",
        "fsanet.output": "float32 (N, 3) [yaw, pitch, roll] degrees",
    }


def pose_onnx_bytes(model: nn.Module, opset: int = OPSET, metadata: dict[str, str] | None = None) -> bytes:
    """``model`` as an ONNX file: dynamic batch, :func:`pose_metadata` attached."""
    size = int(getattr(model, "input_size", 64))
    source = next(model.parameters(), None)
    if source is not None and source.device.type != "cpu":
        raise FSANetError("export a model on the CPU (model.cpu())")
    batch = {0: "batch"}
    return onnx_bytes(
        model,
        torch.zeros(2, 3, size, size),
        [OUTPUT_NAME],
        {INPUT_NAME: batch, OUTPUT_NAME: batch},
        metadata or pose_metadata(model, opset),
        opset,
    )


def export_onnx(model: nn.Module, path: str | os.PathLike, opset: int = OPSET) -> dict[str, str]:
    """Write ``model`` to ``path`` as ONNX (atomically); returns the metadata written into the file.

    See the module docstring for the contract. An exporter failure is an :class:`FSANetError`.
    """
    metadata = pose_metadata(model, opset)  # the identity the model carries: hashed at most once
    try:
        data = pose_onnx_bytes(model, opset, metadata)
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as error:
        raise FSANetError(
            f"{metadata['fsanet.name']} cannot be exported to ONNX ({type(error).__name__})"
        ) from error
    atomic_write(Path(path), data)
    return metadata


def session_options() -> Any:
    """Threads from :func:`fsanet.runtime.threads.inference_threads`, never spinning (see there)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = inference_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def create_session(model: bytes | Path) -> Any:
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, session_options(), providers=["CPUExecutionProvider"])


def cached_graph_path(key: str) -> Path:
    """Where :func:`cached_session` keeps the graph of ``key``."""
    return cache_dir() / "onnx" / f"{key}.opset{OPSET}.onnx"


def cached_session(
    key: str, export: Callable[[], bytes], expected: dict[str, str], outputs: list[str], cache: bool = True
) -> Any:
    """A session on ``$FSANET_CACHE/onnx/<key>.opset<OPSET>.onnx``, exported (and cached) when absent.

    A cached file that does not load, or whose metadata or output names differ from ``expected`` and
    ``outputs`` (written by an older version), is exported again.
    """
    path = cached_graph_path(key)
    if cache and path.is_file():
        try:
            session = create_session(path)
        except Exception:  # noqa: BLE001 - onnxruntime's own error types; re-exported below
            session = None
        if session is not None:
            stored = session.get_modelmeta().custom_metadata_map
            names = [output.name for output in session.get_outputs()]
            if names == outputs and all(stored.get(name) == value for name, value in expected.items()):
                return session
    data = export()
    if cache:
        try:
            atomic_write(path, data)
        except OSError as error:  # a read-only cache (e.g. a sandboxed worker) costs an export per load
            warnings.warn(f"could not cache the ONNX graph in {path.parent}: {error}", stacklevel=2)
    return create_session(data)


# Batches run in chunks of this size, whose activations stay in cache: on the 2-core CPU, caps_1x1 at
# batch 64 ran 5111 / 5187 / 5221 / 4551 img/s in chunks of 64 / 32 / 16 / 8 on a quiet machine, and
# 1989 / 2404 / 2854 / 2979 img/s under load.
ONNX_CHUNK = 16


class OnnxPoseModel(EngineModel):
    """A pose model run by ONNX Runtime, standing in for its source model."""

    def __init__(self, session: Any, source: nn.Module, chunk: int = ONNX_CHUNK):
        super().__init__(source, chunk)
        self.session = session

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run(x.detach().to("cpu", torch.float32).contiguous().numpy()))

    def angles(self, batch: np.ndarray) -> np.ndarray:
        """The graph on NumPy, no tensor made (a batch at another size goes to the source model)."""
        if self.other_sizes is not None and batch.shape[2:] != (self.input_size, self.input_size):
            return super().angles(batch)
        return self._run(np.ascontiguousarray(batch, np.float32))

    def _run(self, array: np.ndarray) -> np.ndarray:
        parts = [
            self.session.run([OUTPUT_NAME], {INPUT_NAME: array[start : start + self.chunk]})[0]
            for start in range(0, len(array), self.chunk)
        ]
        return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _pose_session(model: nn.Module, metadata: dict[str, str], cache: bool) -> Any:
    return cached_session(
        metadata["fsanet.identity"],
        lambda: pose_onnx_bytes(model, metadata=metadata),
        # The file is named by the identity's key (a prefix): a match is confirmed on the full identity.
        {
            k: metadata[k]
            for k in ("fsanet.config", "fsanet.identity", "fsanet.weights_identity", "fsanet.opset")
        },
        [OUTPUT_NAME],
        cache,
    )


def onnx_pose_model(model: nn.Module, cache: bool = True, chunk: int = ONNX_CHUNK) -> OnnxPoseModel:
    """``model`` on ONNX Runtime, its graph cached by its identity and opset (``cache=False``: not
    written, e.g. for untrained models whose weights are thrown away); batches run in chunks of ``chunk``."""
    return OnnxPoseModel(_pose_session(model, pose_metadata(model), cache), model, chunk)


def pose_graph_file(model: nn.Module) -> tuple[Path, str]:
    """``model``'s cached ONNX file, the bytes :func:`export_onnx` writes (exported when absent), and its
    identity key: what the Space serves to the Webcam tab."""
    metadata = pose_metadata(model)
    _pose_session(model, metadata, cache=True)
    key = metadata["fsanet.identity"]
    return cached_graph_path(key), key
