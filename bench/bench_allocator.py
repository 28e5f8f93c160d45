"""Minor page faults of five 640x480 detections with glibc's allocator tuned and with its defaults.

    .venv/bin/python bench/bench_allocator.py [--engines torch onnx]

Each setting runs in a fresh interpreter (``FSANET_TUNE_MALLOC=1`` / ``0``) and prints the faults of five
MTCNN detections after three warm-up calls, per engine, side by side. With glibc's defaults every call
page-faults its activations in again (see ``fsanet/runtime/optimize.py``). A count, but a noisy one on a
shared machine, so it is reported here rather than asserted (``tests/test_mtcnn.py`` checks the
mechanism: activation-sized blocks come from the heap once tuned).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAULTS_SCRIPT = """
import resource, sys
import numpy as np, skimage.data, torch
from fsanet.runtime.optimize import tune_allocator
from fsanet.detect.mtcnn import MTCNN
torch.set_num_threads(2)
cascade = MTCNN(engine=sys.argv[1])
image = np.ascontiguousarray(np.tile(skimage.data.astronaut(), (1, 2, 1))[:480, :640])
for _ in range(3):  # ONNX Runtime plans its buffers over the first calls
    cascade.detect(image)
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    cascade.detect(image)
print(tune_allocator(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


def faults(engine: str, tuned: bool) -> int:
    env = {**os.environ, "FSANET_TUNE_MALLOC": "1" if tuned else "0", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", FAULTS_SCRIPT, engine], env=env, capture_output=True, text=True, check=True
    )
    applied, count = out.stdout.split()
    if (applied == "True") != tuned:
        raise SystemExit(f"FSANET_TUNE_MALLOC={int(tuned)} was not honoured: tune_allocator() = {applied}")
    return int(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", nargs="+", default=["torch", "onnx"])
    args = parser.parse_args()
    for engine in args.engines:
        tuned, default = faults(engine, True), faults(engine, False)
        print(f"{engine:6s} minor faults, 5 detections: tuned {tuned:7d}  glibc defaults {default:7d}")


if __name__ == "__main__":
    main()
