"""Latency and throughput of every variant: ``python -m fsanet bench``.

Times the plain modules and :func:`fsanet.runtime.optimize.optimize_for_inference` copies on each engine
(``torch-optimized``: BN folded and frozen; ``onnxruntime``: the exported graph, CPU only) at batch 1
(latency) and batch 64 (throughput), median of repeated runs after warm-up, on CPU or CUDA.
When ``tensorflow`` is importable (optional, not a project dependency) and the authors' frozen
graphs are found under ``FSANET_OFFICIAL_MIRROR``, they are timed side by side in the same
process on the same inputs, which is the only fair comparison on a noisy machine; the report then
gives each engine's speed as a ratio to TF's (throughput ratio at the largest batch, latency ratio
at batch 1).

Every row also states the useful work it did, in GFLOP/s (the model's forward FLOPs per face, counted by
torch's flop counter, times faces per second), and the report measures the machine's own ceiling in the same
run: a 2048x2048 float32 matrix product on torch's threads (``sgemm_gflop_per_s``), which convolutions of a
few dozen channels do not reach. A throughput target above that ceiling cannot be met at float32.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fsanet.errors import WeightsUnavailableError
from fsanet.models.base import gflops_per_face
from fsanet.models.catalogue import list_models, model_entry
from fsanet.models.family import WeightsFile
from fsanet.models.pretrained import create_model, fetch_original
from fsanet.runtime.onnx_engine import onnxruntime_available
from fsanet.runtime.optimize import optimize_for_inference
from fsanet.utils import settings

# Every listed model at the FSA-Net authors' 64x64 input (models of larger inputs on request).
BENCH_MODELS = tuple(name for name in list_models() if model_entry(name).config().get("image_size", 64) <= 64)


def median_seconds(run: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        run()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def _record(model: str, backend: str, batch: int, seconds: float, gflops: float) -> dict[str, Any]:
    return {
        "model": model,
        "backend": backend,
        "batch": batch,
        "median_ms": round(seconds * 1e3, 3),
        "images_per_s": round(batch / seconds, 1),
        "gflop_per_s": round(gflops * batch / seconds, 1),
    }


def sgemm_gflop_per_s(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """The machine's float32 ceiling as torch reaches it: one large square matrix product, GFLOP/s."""
    a, b = (torch.rand(size, size, device=device) for _ in range(2))

    def run() -> None:
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return 2 * size**3 / median_seconds(run, repeats) / 1e9


def time_torch(model: torch.nn.Module, batch: int, repeats: int, device: torch.device) -> float:
    size = int(getattr(model, "input_size", 64))  # each model at its own input size
    x = torch.rand(batch, 3, size, size, device=device) * 255

    def run() -> None:
        with torch.inference_mode():
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return median_seconds(run, repeats)


def _frozen_graph_runner(file: WeightsFile) -> Callable[[np.ndarray], np.ndarray] | None:
    """The authors' frozen TensorFlow graph as a function, when TensorFlow and the file are at hand."""
    try:
        import tensorflow as tf

        data = fetch_original(file, f"the frozen graph {file.path}")
    except (ImportError, WeightsUnavailableError):
        return None
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(data)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    output = graph.get_tensor_by_name("pred_pose/mul_24:0")
    return lambda x: session.run(output, {"input_1:0": x})


def run_benchmark(
    models: tuple[str, ...] = BENCH_MODELS,
    batches: tuple[int, ...] = (1, 64),
    repeats: int = 20,
    device: str | None = None,
    optimized: bool = True,
    official: bool = True,
) -> dict[str, Any]:
    """Benchmark ``models`` and return a JSON-serialisable report."""
    target = settings.device(device)
    results = []
    for name in models:
        model = create_model(name).to(target).eval()  # timings do not depend on the weight values
        gflops = gflops_per_face(model, int(getattr(model, "input_size", 64)))
        backends = {"torch": model}
        if optimized:
            backends["torch-optimized"] = optimize_for_inference(model, engine="torch")
            if target.type == "cpu" and onnxruntime_available():  # untrained weights: not cached
                backends["onnxruntime"] = optimize_for_inference(model, engine="onnx", cache=False)
        for backend, module in backends.items():
            for batch in batches:
                seconds = time_torch(module, batch, repeats, target)
                results.append(_record(name, backend, batch, seconds, gflops))
        graph = model_entry(name).reference_graph
        runner = _frozen_graph_runner(graph) if official and graph is not None else None
        if runner is not None:
            for batch in batches:
                x = np.random.default_rng(0).uniform(0, 255, (batch, 64, 64, 3)).astype(np.float32)
                results.append(
                    _record(
                        name,
                        "tf-frozen-graph",
                        batch,
                        median_seconds(lambda x=x, run=runner: run(x), repeats),
                        gflops,
                    )
                )
    return {
        "ratios_to_tf": ratios_to_tf(results),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "onnxruntime": _version("onnxruntime"),
            "tensorflow": _version("tensorflow", "tensorflow-cpu"),
            "threads": torch.get_num_threads(),
            "device": str(target),
            "sgemm_gflop_per_s": round(sgemm_gflop_per_s(target), 1),
        },
        "repeats": repeats,
        "results": results,
    }


def _version(*distributions: str) -> str | None:
    """The installed version of the first of ``distributions`` found (TF ships as tensorflow-cpu too)."""
    from importlib.metadata import PackageNotFoundError, version

    for distribution in distributions:
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return None


def ratios_to_tf(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and engine timed beside the TF graph: throughput / TF's at the largest batch (higher is
    better) and latency / TF's at batch 1 (lower is better), from the same run."""
    rows = {(r["model"], r["backend"], r["batch"]): r for r in results}
    ratios = []
    for (model, backend, batch), row in rows.items():
        tf = rows.get((model, "tf-frozen-graph", batch))
        if tf is None or backend == "tf-frozen-graph":
            continue
        key = {"model": model, "backend": backend, "batch": batch}
        if batch == 1:
            ratios.append({**key, "latency_vs_tf": round(row["median_ms"] / tf["median_ms"], 2)})
        elif batch == max(b for m, k, b in rows if m == model and k == backend):
            ratios.append({**key, "throughput_vs_tf": round(row["images_per_s"] / tf["images_per_s"], 2)})
    return ratios


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'model':24} {'backend':18} {'batch':>5} {'median ms':>10} {'img/s':>9} {'GFLOP/s':>8}"]
    for row in report["results"]:
        lines.append(
            f"{row['model']:24} {row['backend']:18} {row['batch']:>5} {row['median_ms']:>10.3f} "
            f"{row['images_per_s']:>9.1f} {row['gflop_per_s']:>8.1f}"
        )
    for ratio in report.get("ratios_to_tf", []):
        figure = (
            f"throughput {ratio['throughput_vs_tf']:.2f}x TF's"
            if "throughput_vs_tf" in ratio
            else f"latency {ratio['latency_vs_tf']:.2f}x TF's"
        )
        lines.append(f"{ratio['model']:24} {ratio['backend']:18} {ratio['batch']:>5} {figure}")
    ceiling = report["machine"].get("sgemm_gflop_per_s")
    if ceiling:
        lines.append(f"machine ceiling (float32 2048x2048 matrix product, same run): {ceiling:.1f} GFLOP/s")
    return "\n".join(lines)


def write_report(report: dict[str, Any], path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2))
