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

The flooding clients run at ``--niceness`` 19 by default: they stand for clients on other machines, whose
own CPU work (building and sending 70 uploads in a loop, about a core of this 2-core machine) is not the
Space's; ``--niceness 0`` lets them compete for the cores with the Space and the measured client.

For each flood: how many huge photos were served and how many refused (and why), the CPU seconds the Space
and the flooding clients spent, and the load average before and after (the machine is shared: the figures
move with it).
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


def _flood_process(
    url: str, huge: str, indices: list[int], spread: bool, seconds: float, niceness: int, ready, go, results
):
    """Some of the flooding sessions, in a process of their own (threads of one process would share its
    interpreter lock with the measured client). They start together, once every session has its client."""
    from gradio_client import handle_file

    os.nice(niceness)
    outcomes: Counter = Counter()
    sessions = [
        client_at(url, f"10.{i // 250}.{i % 250}.7" if spread else "198.51.100.99", ssl_verify=False)
        for i in indices
    ]
    ready.put(len(sessions))
    go.wait()
    until, cpu = time.monotonic() + seconds, time.process_time()

    def session(client) -> None:
        while time.monotonic() < until:
            try:
                client.predict(handle_file(huge), api_name="/predict")
                outcomes["served"] += 1
            except Exception as error:  # noqa: BLE001
                outcomes[_reason(error)] += 1

    threads = [threading.Thread(target=session, args=(client,), daemon=True) for client in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    results.put({**outcomes, "client_cpu_s": time.process_time() - cpu})


def _flood(
    url: str, huge: Path, sessions: int, spread: bool, seconds: float, niceness: int
) -> tuple[list, object, object]:
    """Start the flooding processes; returns them, the event that sets them going and their results queue."""
    context = multiprocessing.get_context("spawn")
    ready, go, results = context.Queue(), context.Event(), context.Queue()
    groups = [list(range(sessions))[i::FLOOD_PROCESSES] for i in range(FLOOD_PROCESSES)]
    processes = [
        context.Process(
            target=_flood_process, args=(url, str(huge), g, spread, seconds, niceness, ready, go, results)
        )
        for g in groups
        if g
    ]
    for process in processes:
        process.start()
    clients = sum(ready.get(timeout=300) for _ in processes)
    assert clients == sessions, clients
    return processes, go, results


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


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
    parser.add_argument("--niceness", type=int, default=19, help="of the flooding clients (0: as the Space)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    photo, huge = _photos(work)
    figures: dict[str, object] = {
        "huge_jpeg_mb": round(huge.stat().st_size / 2**20, 2),
        "flood_niceness": args.niceness,
    }
    with serve_app(work / "board", work / "app.log", SPACE_PROXY_HOPS="1", SPACE_MAX_PHOTO_MB="20") as url:
        _latencies(url, photo, time.monotonic() + 3)  # warm-up
        figures["quiet"] = _summary(_latencies(url, photo, time.monotonic() + 10))
        for label, spread in (("one_client", False), ("many_clients", True)):
            processes, go, results = _flood(url, huge, args.sessions, spread, args.seconds, args.niceness)
            load_before, server_cpu = os.getloadavg()[0], _cpu_seconds(url.pid)
            go.set()
            until = time.monotonic() + args.seconds
            time.sleep(2)  # the flood is under way
            times = _latencies(url, photo, until)
            load_after, server_cpu = os.getloadavg()[0], _cpu_seconds(url.pid) - server_cpu
            outcomes: Counter = Counter()
            for _ in processes:
                outcomes.update(results.get(timeout=300))
            for process in processes:
                process.join(10)
            figures[label] = {
                **_summary(times),
                "huge": {k: v for k, v in outcomes.items() if k != "client_cpu_s"},
                "server_cpu_s": round(server_cpu, 1),
                "flood_clients_cpu_s": round(outcomes["client_cpu_s"], 1),
                "load_average_before": round(load_before, 2),
                "load_average_after": round(load_after, 2),
            }
            time.sleep(5)  # the last huge ones drain
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
