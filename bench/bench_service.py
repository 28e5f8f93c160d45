"""Submission -> row on the board, through the Space with its own background worker; target <= 60 s (median).

    .venv/bin/python bench/bench_service.py [--n 2000] [--repeats 5]

Starts ``python app.py`` (local store in a temporary folder, a synthetic benchmark of ``n`` 64x64 crops,
``LEADERBOARD_POLL_S=1``), submits ``repeats`` fresh ``fsanet_caps_1x1`` variants one after the other through
``/submit`` as the Submit tab does, and times each from the call until its row is returned by
``/leaderboard``. Prints each time, the median, and the peak RSS of each evaluation process (its own
``ru_maxrss``, recorded by the worker in the request). First, how long validation takes to refuse hostile
configs on real weights (``stage_num: [1e9]*3`` and friends), the median of 5 calls each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fsanet  # noqa: E402
from leaderboard.errors import SubmissionError  # noqa: E402
from leaderboard.service.validation import validate_submission  # noqa: E402
from leaderboard.storage.backends import LocalBackend  # noqa: E402
from leaderboard.storage.requests import RequestStore  # noqa: E402
from tests.test_leaderboard_submissions import synthetic_benchmark  # noqa: E402
from tests.test_space_api import serve_app  # noqa: E402

TIMEOUT_S = 600


HOSTILE_CONFIGS = {
    "stage_num [1e9]*3": {"stage_num": [1e9] * 3},
    "stage_num [10**9]*3": {"stage_num": [10**9] * 3},
    "routings 10**7": {"routings": 10**7},
    "100000 stages": {"stage_num": [3] * 100_000},
}


def validation_timings(tmp: Path) -> None:
    good = fsanet.save_pretrained(fsanet.create_model("fsanet_caps_1x1"), tmp / "good")
    validate_submission(good)  # warm-up: imports and a first build on the meta device
    for label, change in HOSTILE_CONFIGS.items():
        folder = tmp / label.replace(" ", "_")
        shutil.copytree(good, folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **change}))
        times = []
        for _ in range(5):
            start = time.perf_counter()
            try:
                validate_submission(folder)
            except SubmissionError as error:
                reason = str(error)
            times.append(time.perf_counter() - start)
        print(f"validation refuses {label}: {1000 * statistics.median(times):.1f} ms ({reason})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000, help="crops in the synthetic benchmark")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        validation_timings(tmp)
        if args.repeats < 1:
            return
        env = {
            "LEADERBOARD_WORKER": "1",
            "LEADERBOARD_POLL_S": "1",
            "LEADERBOARD_DATA_AFLW2000": str(synthetic_benchmark(tmp / "aflw2000", args.n)),
            "LEADERBOARD_DATA_BIWI": str(tmp / "absent"),
            "LEADERBOARD_DATA_BIWI_70_30": str(tmp / "absent"),
        }
        with serve_app(tmp / "board", tmp / "app.log", **env) as url:
            client = Client(url, verbose=False)
            seconds, peaks = [], []
            for index in range(args.repeats):
                variant = fsanet.save_pretrained(fsanet.create_model("fsanet_caps_1x1"), tmp / f"v{index}")
                files = [handle_file(str(variant / n)) for n in ("config.json", "model.safetensors")]
                name = f"bench/v{index}"
                start = time.perf_counter()
                request, _ = client.predict(files, name, "", "", "300W-LP", "protocol 1", api_name="/submit")
                while not client.predict(name, "all", api_name="/leaderboard")["data"]:
                    if time.perf_counter() - start > TIMEOUT_S:
                        raise SystemExit(
                            f"{name} did not reach the board in {TIMEOUT_S} s; see {tmp}/app.log"
                        )
                    time.sleep(0.5)
                seconds.append(time.perf_counter() - start)
                queue = RequestStore(LocalBackend(tmp / "board"))
                while (done := queue.get(request["id"])).status != "finished":  # the row shows first
                    time.sleep(0.2)
                peaks.append(done.results[0].peak_rss_mb)
                print(
                    f"{name}: {seconds[-1]:6.1f} s submission -> row, evaluation peak RSS {peaks[-1]:.0f} MB"
                )
    print(
        f"n={args.n} crops, {args.repeats} submissions: median {statistics.median(seconds):.1f} s "
        f"(min {min(seconds):.1f}, max {max(seconds):.1f}); evaluation peak RSS max {max(peaks):.0f} MB"
    )


if __name__ == "__main__":
    main()
