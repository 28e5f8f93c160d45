"""End-to-end speed (decode -> detect -> pose -> draw) per detector, and AFLW2000-sample accuracy.

    .venv/bin/python bench/bench_pipeline.py [--repeat 15] [--json bench/pipeline.json] [--no-accuracy]

Scenes: a 640x480 photo with one face and a 1280x720 photo with five faces, both built from
skimage's astronaut photo and JPEG-encoded so decoding is part of the timing. Prints median
milliseconds per detector, with the load average of each row (the machine is shared); targets (default
detector, 2-core CPU): <= 60 ms and <= 150 ms; BlazeFace: <= 8 ms and <= 20 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("FSANET_OFFICIAL_MIRROR", str(ROOT.parent / "shared" / "fsanet-official"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from PIL import Image  # noqa: E402

from fsanet.pipeline.drawing import draw_poses  # noqa: E402
from fsanet.pipeline.estimate import PoseEstimator  # noqa: E402

SSD_DIR = ROOT.parent / "shared" / "detectors" / "opencv-ssd"


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def scenes() -> dict[str, tuple[bytes, int]]:
    """name -> (JPEG bytes, number of faces placed)."""
    astronaut = skimage.data.astronaut()
    single = np.full((480, 640, 3), 200, np.uint8)
    single[:, 64:576] = cv2.resize(astronaut, (512, 480))
    face = astronaut[20:260, 130:320]  # 190x240 head-and-shoulders crop
    several = np.full((720, 1280, 3), 180, np.uint8)
    for i in range(5):
        x, y = 20 + i * 250, 120 + (i % 2) * 300
        several[y : y + 240, x : x + 190] = face
    return {"640x480 1 face": (_jpeg(single), 1), "1280x720 5 faces": (_jpeg(several), 5)}


def time_scene(estimator: PoseEstimator, data: bytes, repeat: int) -> tuple[float, int]:
    timings, found = [], 0
    for _ in range(repeat + 2):  # two warm-up runs
        start = time.perf_counter()
        image = estimator.load(data)
        result = estimator.estimate_rgb(image)
        draw_poses(image, result)
        timings.append(time.perf_counter() - start)
        found = len(result.faces)
    return statistics.median(timings[2:]) * 1000, found


def detector_options(name: str) -> dict:
    return {"model_dir": SSD_DIR} if name == "ssd" else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--no-accuracy", action="store_true", help="skip the AFLW2000-sample MAE/recall")
    parser.add_argument("--detectors", default="mtcnn,ssd,haar,blazeface,blazeface_full")
    args = parser.parse_args()

    from fsanet import create_model
    from fsanet.detect.detectors import create_detector

    model = create_model("fsanet_fusion.300w_lp", pretrained=True).eval()
    figures: dict[str, dict] = {}
    for name in args.detectors.split(","):
        if name == "ssd" and not SSD_DIR.exists():
            print(f"ssd: skipped, {SSD_DIR} is absent")
            continue
        estimator = PoseEstimator(model, create_detector(name, **detector_options(name)), device="cpu")
        figures[name] = {}
        for scene, (data, placed) in scenes().items():
            ms, found = time_scene(estimator, data, args.repeat)
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            figures[name][scene] = {
                "median_ms": round(ms, 1),
                "faces_found": found,
                "faces_placed": placed,
                "loadavg": load,
            }
            print(f"{name:14s} {scene:18s} median {ms:7.1f} ms  faces {found}/{placed}  (load {load})")
        if not args.no_accuracy:
            from tests.test_pipeline import AFLW, aflw_samples, aflw_scores

            if AFLW.exists():
                samples = aflw_samples()
                recall, mae, angles = aflw_scores(estimator, samples)
                labels = np.stack([s[1] for s in samples])
                per_angle = np.nanmean(np.abs(angles - labels), axis=0)
                figures[name]["aflw2000_sample16"] = {"recall": recall, "mae": round(mae, 2)}
                print(f"{name:14s} AFLW2000 x16: recall {recall:.3f}  MAE {mae:.2f} {per_angle.round(2)}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
