"""Each face detector side by side in one run: its recall on the default detector's sets, its end-to-end time.

    .venv/bin/python bench/bench_pipeline.py [--repeat 15] [--json bench/pipeline.json] [--detectors a,b]

Recall: faces found on each set of tests/detection_sets.py (the 16 AFLW2000 samples, mirrored, rotated
+-20 degrees, the 1280x720 wide frame with five ~90-pixel faces, the group collage), and the MAE of the
fusion model on the faces found in the AFLW2000 sample. Time: decode -> detect -> pose (fusion) -> draw
of the two scenes of tests/detection_sets.astronaut_scenes (640x480 with one face, the wide frame),
JPEG-encoded so decoding is part of it; the detectors take turns in every round, so a load spike hits them
alike: each median is given with its ratio to MTCNN's in this run (the median of the rounds' ratios). The
targets (the default detector, issue 28): recall >= MTCNN's on every set and 5/5 in the wide frame;
<= 0.35x MTCNN's time at 640x480 and <= 0.5x at 1280x720. The load average is printed before and after
(the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FSANET_OFFICIAL_MIRROR", str(ROOT.parent / "shared" / "fsanet-official"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from fsanet.pipeline.drawing import draw_poses  # noqa: E402
from fsanet.pipeline.estimate import PoseEstimator  # noqa: E402
from tests.detection_sets import SETS, astronaut_scenes, detection_sets, faces_in, found, jpeg  # noqa: E402

SSD_DIR = ROOT.parent / "shared" / "detectors" / "opencv-ssd"
DETECTORS = "blazeface_scan,mtcnn,blazeface,blazeface_full,ssd,haar"
BASELINE = "mtcnn"


def scenes() -> dict[str, tuple[bytes, int]]:
    """name -> (JPEG bytes, number of faces placed)."""
    return {name: (jpeg(image), len(boxes)) for name, (image, boxes) in astronaut_scenes().items()}


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_once(estimator: PoseEstimator, data: bytes) -> tuple[float, int]:
    start = time.perf_counter()
    image = estimator.load(data)
    result = estimator.estimate_rgb(image)
    draw_poses(image, result)
    return time.perf_counter() - start, len(result.faces)


def timings(estimators: dict[str, PoseEstimator], repeat: int) -> dict[str, dict[str, dict]]:
    """Median milliseconds and faces found per detector and scene, the detectors taking turns, and the median
    of each round's ratio to MTCNN's time (a round's detectors see the same load)."""
    samples = {name: {scene: [] for scene in scenes()} for name in estimators}
    faces = {name: {} for name in estimators}
    for round_ in range(repeat + 2):  # two warm-up rounds
        for name, estimator in estimators.items():
            for scene, (data, _) in scenes().items():
                seconds, faces[name][scene] = run_once(estimator, data)
                if round_ >= 2:
                    samples[name][scene].append(seconds * 1000)
    placed = {scene: count for scene, (_, count) in scenes().items()}
    return {
        name: {
            scene: {
                "median_ms": round(statistics.median(times), 2),
                "min_ms": round(min(times), 2),
                "x_mtcnn": round(statistics.median(np.divide(times, samples[BASELINE][scene])), 3),
                "faces_found": faces[name][scene],
                "faces_placed": placed[scene],
            }
            for scene, times in per_scene.items()
        }
        for name, per_scene in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--detectors", default=DETECTORS, help=f"comma-separated (default {DETECTORS})")
    args = parser.parse_args()

    from fsanet import create_model
    from fsanet.detect.detectors import create_detector
    from tests.test_pipeline import AFLW, aflw_samples, aflw_scores

    if not AFLW.exists():
        sys.exit(f"{AFLW} is absent: this benchmark needs the project's ../shared material")
    names = [n for n in args.detectors.split(",") if n != "ssd" or SSD_DIR.exists()]
    if BASELINE not in names:
        names.append(BASELINE)
    model = create_model("fsanet_fusion.300w_lp", pretrained=True).eval()
    estimators = {
        name: PoseEstimator(model, create_detector(name, **({"model_dir": SSD_DIR} if name == "ssd" else {})))
        for name in names
    }
    figures: dict = {"loadavg_before": loadavg()}
    sets, samples = detection_sets(), aflw_samples()
    for name, estimator in estimators.items():
        _, mae, _ = aflw_scores(estimator, samples)
        figures[name] = {
            "recall": {s: f"{len(found(estimator.detector, sets[s]))}/{faces_in(sets[s])}" for s in SETS},
            "aflw2000_mae": round(mae, 2),
        }
    for name, per_scene in timings(estimators, args.repeat).items():
        figures[name]["time"] = per_scene
    figures["loadavg_after"] = loadavg()

    print(f"load average {figures['loadavg_before']} before, {figures['loadavg_after']} after")
    header = ["detector", *SETS, "MAE", *(f"{scene} (x {BASELINE})" for scene in scenes())]
    print(" | ".join(header))
    for name in names:
        row = figures[name]
        times = [
            f"{t['median_ms']:.1f} ms ({t['x_mtcnn']:.2f}x) {t['faces_found']}/{t['faces_placed']}"
            for t in row["time"].values()
        ]
        print(" | ".join([name, *row["recall"].values(), f"{row['aflw2000_mae']:.2f}", *times]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
