"""Recall of every face detector on the AFLW2000 sample, its mirror images and copies rotated by +-20 degrees.

    .venv/bin/python bench/bench_detectors.py [--json artifacts/detectors.json]

A face counts as found when a detected box is centred on its visible-landmark box (tests/aflw_copies.py).
The last column says whether the detector finds every face that MTCNN, the default, finds: the condition
for a detector to become the default. The load average is printed with the figures (shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fsanet.detect.detectors import DEFAULT_DETECTOR, create_detector, list_detectors  # noqa: E402
from tests.aflw_copies import COPIES, aflw_copy, found  # noqa: E402
from tests.test_pipeline import AFLW  # noqa: E402

SSD_DIR = ROOT.parent / "shared" / "detectors" / "opencv-ssd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if not AFLW.exists():
        sys.exit(f"{AFLW} is absent: this benchmark needs the project's ../shared material")
    copies = {name: aflw_copy(name) for name in COPIES}
    hits: dict[str, dict[str, list[str]]] = {}
    for name in list_detectors():
        if name == "ssd" and not SSD_DIR.exists():
            print(f"ssd: skipped, {SSD_DIR} is absent")
            continue
        detector = create_detector(name, **({"model_dir": SSD_DIR} if name == "ssd" else {}))
        hits[name] = {copy: found(detector, samples) for copy, samples in copies.items()}
    figures = {"loadavg": Path("/proc/loadavg").read_text().split()[:3], "detectors": {}}
    print(f"load average {' '.join(figures['loadavg'])}")
    print(
        f"{'detector':15s} " + " ".join(f"{copy:>13s}" for copy in COPIES) + "  finds every face mtcnn finds"
    )
    for name, per_copy in hits.items():
        covers = all(set(hits[DEFAULT_DETECTOR][c]) <= set(per_copy[c]) for c in COPIES)
        row = {c: f"{len(per_copy[c])}/{len(copies[c])}" for c in COPIES}
        figures["detectors"][name] = {"recall": row, "covers_default": covers, "found": per_copy}
        print(f"{name:15s} " + " ".join(f"{row[c]:>13s}" for c in COPIES) + f"  {'yes' if covers else 'no'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    main()
