"""The same end-to-end pipeline on each pose engine, interleaved in one process: the fair comparison on a
noisy machine.

    .venv/bin/python bench/bench_engines.py [--repeat 25] [--detector mtcnn] [--model fsanet_fusion.300w_lp]

Scenes as in ``bench/bench_pipeline.py`` (decode -> detect -> pose -> draw). Each repetition runs every
engine once per scene, so load spikes from other processes hit both; prints the median per engine and
the ratio ONNX Runtime / torch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import detector_options, scenes  # noqa: E402

from fsanet.pipeline.drawing import draw_poses  # noqa: E402
from fsanet.pipeline.estimate import PoseEstimator  # noqa: E402
from fsanet.runtime.optimize import optimize_for_inference  # noqa: E402

ENGINES = ("onnx", "torch")


def run_once(estimator: PoseEstimator, data: bytes) -> float:
    start = time.perf_counter()
    image = estimator.load(data)
    draw_poses(image, estimator.estimate_rgb(image))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--detector", default="mtcnn")
    parser.add_argument("--model", default="fsanet_fusion.300w_lp")
    args = parser.parse_args()

    from fsanet import create_model
    from fsanet.detect.detectors import create_detector

    model = create_model(args.model, pretrained=True).eval()
    detector = create_detector(args.detector, **detector_options(args.detector))
    estimators = {e: PoseEstimator(optimize_for_inference(model, engine=e), detector) for e in ENGINES}
    for scene, (data, _) in scenes().items():
        timings: dict[str, list[float]] = {engine: [] for engine in ENGINES}
        for estimator in estimators.values():  # warm-up
            for _ in range(3):
                run_once(estimator, data)
        for _ in range(args.repeat):
            for engine, estimator in estimators.items():
                timings[engine].append(run_once(estimator, data))
        medians = {engine: statistics.median(values) * 1000 for engine, values in timings.items()}
        figures = "  ".join(f"{engine} {ms:6.1f} ms" for engine, ms in medians.items())
        print(f"{args.detector} {scene:18s} {figures}  onnx/torch {medians['onnx'] / medians['torch']:.2f}")


if __name__ == "__main__":
    main()
