"""A normal photo's latency while 70 sessions flood the Space with 20-megapixel photos.

    .venv/bin/python bench/bench_flood.py [--sessions 70] [--seconds 45]

The app runs as behind a Space's proxy (``SPACE_PROXY_HOPS=1``): each client says its address in
``X-Forwarded-For``, as Hugging Face's proxy writes it. One client sends a 450x450 photo (one face) to
``/predict`` again and again, one call after the other; its latencies (p50, p95, max) are measured:

* ``quiet``: alone;
* ``one_client``: while ``--sessions`` sessions of ONE other client (one address: the issue's flood, where
  every session chose its own id) each send a 5000x4000 JPEG to ``/predict`` again as soon as the previous
  answer, or refusal, came back;
* ``many_clients``: the same, each session from an address of its own (many visitors at once).

For each flood: how many huge photos were served and how many refused (and why), and the load average
before and after (the machine is shared: the figures move with it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_space_api import client_at, serve_app  # noqa: E402

PHOTO_SIDE = 450
HUGE = (5000, 4000)  # 20 megapixels
FLOOD_PROCESSES = 5


def _photos(work: Path) -> tuple[Path, Path]:
    astronaut = Image.fromarray(data.astronaut())
    photo = work / "photo_450.jpg"
    astronaut.resize((PHOTO_SIDE, PHOTO_SIDE)).save(photo, quality=92)
    huge = work / "huge_20mp.jpg"
    noise = np.random.default_rng(0).integers(0, 24, (HUGE[1], HUGE[0], 3), dtype=np.uint8)
    pixels = np.asarray(astronaut.resize(HUGE)) // 2 + noise  # detail, so the JPEG is a real-size one
    Image.fromarray(pixels.astype(np.uint8)).save(huge, quality=90)
    return photo, huge


def _reason(error: Exception) -> str:
    text = str(error)
    for words in ("busy with other large", "already have a large", "requests running", "uploads under way"):
        if words in text:
            return words
    return text[:60] or type(error).__name__


def _latencies(url: str, photo: Path, until: float) -> list[float]:
    from gradio_client import handle_file

    client = client_at(url, "192.0.2.10", ssl_verify=False)
    times = []
    while time.monotonic() < until:
        started = time.perf_counter()
        client.predict(handle_file(str(photo)), api_name="/predict")
        times.append(time.perf_counter() - started)
    return times


def _flood_process(url: str, huge: str, indices: list[int], spread: bool, until: float, results) -> None:
    """Some of the flooding sessions, in a process of their own (threads of one process would share its
    interpreter lock with the measured client)."""
    from gradio_client import handle_file

    outcomes: Counter = Counter()

    def session(index: int) -> None:
        address = f"10.{index // 250}.{index % 250}.7" if spread else "198.51.100.99"
        client = client_at(url, address, ssl_verify=False)
        while time.monotonic() < until:
            try:
                client.predict(handle_file(huge), api_name="/predict")
                outcomes["served"] += 1
            except Exception as error:  # noqa: BLE001
                outcomes[_reason(error)] += 1

    threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in indices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, until - time.monotonic()) + 60)
    results.put(dict(outcomes))


def _flood(url: str, huge: Path, sessions: int, spread: bool, until: float) -> tuple[list, object]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    groups = [list(range(sessions))[i::FLOOD_PROCESSES] for i in range(FLOOD_PROCESSES)]
    processes = [
        context.Process(target=_flood_process, args=(url, str(huge), group, spread, until, results))
        for group in groups
        if group
    ]
    for process in processes:
        process.start()
    return processes, results


def _summary(times: list[float]) -> dict[str, float]:
    array = np.asarray(times)
    return {
        "calls": len(times),
        "p50_s": round(float(np.percentile(array, 50)), 3),
        "p95_s": round(float(np.percentile(array, 95)), 3),
        "max_s": round(float(array.max()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=70)
    parser.add_argument("--seconds", type=float, default=45)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    photo, huge = _photos(work)
    figures: dict[str, object] = {"huge_jpeg_mb": round(huge.stat().st_size / 2**20, 2)}
    with serve_app(work / "board", work / "app.log", SPACE_PROXY_HOPS="1", SPACE_MAX_PHOTO_MB="20") as url:
        _latencies(url, photo, time.monotonic() + 3)  # warm-up
        figures["quiet"] = _summary(_latencies(url, photo, time.monotonic() + 10))
        for label, spread in (("one_client", False), ("many_clients", True)):
            load_before = os.getloadavg()[0]
            until = time.monotonic() + args.seconds
            processes, results = _flood(url, huge, args.sessions, spread, until)
            time.sleep(5)  # the flood is under way (every session has its client)
            times = _latencies(url, photo, until)
            load_after = os.getloadavg()[0]
            outcomes: Counter = Counter()
            for _ in processes:
                outcomes.update(results.get(timeout=120))
            for process in processes:
                process.join(10)
            figures[label] = {
                **_summary(times),
                "huge": dict(outcomes),
                "load_average_before": round(load_before, 2),
                "load_average_after": round(load_after, 2),
            }
            time.sleep(5)  # the last huge ones drain
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
