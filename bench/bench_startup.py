"""Start-up cost of the leaderboard commands on the 16 AFLW2000 samples, as users run them.

    .venv/bin/python bench/bench_startup.py [--checkout DIR] [--repeats 3] [--no-seed]

Each command runs in a fresh interpreter (``python -m leaderboard ...`` from ``--checkout``, default this
one, so an older checkout can be timed the same way): ``evaluate`` of the fusion (3 models) with a cold
weights cache (the authors' ``.h5`` converted) and then warm, and ``seed`` (every shipped model) cold and
warm (``--force``: everything re-evaluated, nothing converted). Prints wall seconds and CPU seconds (user +
system of the child): on a shared machine the CPU figure is the steadier one.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FSANET_SHARED_DIR", ROOT.parent / "shared"))


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the repository whose commands are timed")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs of evaluate")
    parser.add_argument("--no-seed", action="store_true", help="only evaluate (seed converts 19 models)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        board, cache = Path(tmp) / "board", Path(tmp) / "cache"
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "FSANET_CACHE": str(cache),
            "FSANET_OFFICIAL_MIRROR": str(SHARED / "fsanet-official"),
            "PYTHONPATH": str(args.checkout),
            "LEADERBOARD_DIR": str(board),  # older checkouts read the datasets from here only
        }
        python = [sys.executable, "-m", "leaderboard", "--results", str(board)]
        data = board / "datasets" / "aflw2000"
        prepare = [*python, "prepare", "aflw2000", "--source", str(SHARED / "data/aflw2000-sample16")]
        subprocess.run(
            [*prepare, "--out", str(data)], cwd=args.checkout, env=env, check=True, capture_output=True
        )
        evaluate = [*python, "evaluate", "--model", "fsanet_fusion.300w_lp", "--benchmark", str(data)]
        evaluate += ["--force", "--no-progress"]
        rows = [("evaluate fusion, cold cache", *timed(evaluate, args.checkout, env))]
        rows += [("evaluate fusion, warm", *timed(evaluate, args.checkout, env)) for _ in range(args.repeats)]
        if not args.no_seed:
            seed_cache = Path(tmp) / "cache-seed"
            env_seed = {**env, "FSANET_CACHE": str(seed_cache)}
            rows.append(
                ("seed (1 benchmark), cold cache", *timed([*python, "seed"], args.checkout, env_seed))
            )
            rows.append(("seed --force, warm", *timed([*python, "seed", "--force"], args.checkout, env_seed)))
    print(f"checkout: {args.checkout}")
    for name, wall, cpu in rows:
        print(f"{name:34s} {wall:6.2f} s wall {cpu:6.2f} s CPU")


if __name__ == "__main__":
    main()
