"""Throughput of ``leaderboard.evaluate`` (decode, forward, metrics); target >= 1000 crops/s per variant.

    .venv/bin/python bench/bench_leaderboard.py [--n 4096] [--batch-size 256] [--model fsanet_caps_1x1]

Builds a synthetic canonical dataset of ``n`` 64x64 crops in a temporary folder, evaluates one variant on it
(no robustness sweep: that is 10 more passes over the same crops) and prints crops/s for the whole run and
for the model forward alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fsanet  # noqa: E402
from leaderboard.protocol.data import write_dataset  # noqa: E402
from leaderboard.protocol.runner import predict  # noqa: E402
from leaderboard.service.evaluation import evaluate  # noqa: E402
from leaderboard.storage.results import ResultsStore  # noqa: E402
from tests.test_leaderboard_submissions import synthetic_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--model", default="fsanet_caps_1x1", help="architecture name (random weights)")
    args = parser.parse_args()
    model = fsanet.create_model(args.model).eval()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(synthetic_rows(args.n), Path(tmp) / "bench", {"benchmark": "aflw2000"})
        store = ResultsStore(Path(tmp) / "board", repo="")
        evaluate(model, data, store, robustness=False, progress=False, batch_size=args.batch_size)  # warm-up
        start = time.perf_counter()
        result = evaluate(
            model, data, store, force=True, robustness=False, progress=False, batch_size=args.batch_size
        )
        total = time.perf_counter() - start
    faces = np.random.default_rng(1).integers(0, 256, (args.batch_size, 64, 64, 3), dtype=np.uint8)
    optimized = fsanet.optimize_for_inference(model.to(device))  # what evaluate() runs
    predict(optimized, faces, device)
    start = time.perf_counter()
    repeats = max(1, args.n // args.batch_size)
    for _ in range(repeats):
        predict(optimized, faces, device)
    forward = repeats * args.batch_size / (time.perf_counter() - start)
    threads = torch.get_num_threads()
    print(f"model {args.model}, n={args.n}, batch {args.batch_size}, device {device}, threads {threads}")
    print(f"evaluate(): {args.n / total:8.0f} crops/s end to end ({total:.2f} s incl. metrics and storing)")
    print(f"prediction loop: {result.row.run['crops_per_s']:8.0f} crops/s (decode + forward)")
    print(f"forward only:    {forward:8.0f} crops/s (the optimised graph)")


if __name__ == "__main__":
    main()
