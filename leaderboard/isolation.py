"""One evaluation in a child process with a memory cap (``RLIMIT_AS``) and a wall-clock limit.

Its one job is containment: whatever a submission does (crash, allocate without bound, loop), the caller gets
an :class:`Outcome` with a readable reason and keeps running. The child is started as
``python -c <set the limit, then run this module>`` so the cap applies before torch is even imported, and it
writes the result with the ordinary runner into the results directory it is given (the worker's staging
folder), reading the benchmark data of the board it is given.

The child never outlives its worker: ``atexit`` kills it when the worker's process ends, the worker kills it
when interrupted, and on Linux the kernel kills it (``PR_SET_PDEATHSIG``) when the worker is ``kill -9``-ed.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# argv: the parent's pid, the memory cap, then _main's arguments. PR_SET_PDEATHSIG (1) makes the kernel send
# SIGKILL when the parent dies, even by SIGKILL; a parent already gone before prctl is caught by getppid().
_BOOTSTRAP = (
    "import os, resource, runpy, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    import ctypes\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "    if os.getppid() != int(sys.argv[1]): sys.exit('the worker exited before its evaluation started')\n"
    "limit = int(sys.argv[2])\n"
    "if limit > 0: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
    "sys.argv = sys.argv[2:]\n"
    "runpy.run_module('leaderboard.isolation', run_name='__main__', alter_sys=True)\n"
)
TICK_SECONDS = 1.0
_RUNNING: set[subprocess.Popen] = set()


@atexit.register
def _stop_running_children() -> None:
    """A worker thread that dies with its process (the Space stopped) takes its evaluation with it."""
    for child in list(_RUNNING):
        child.kill()


OUT_OF_MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "failed to map segment")


@dataclass
class Outcome:
    ok: bool
    reason: str | None  # why it failed, one line
    summary: dict | None  # the child's result summary when ok (with its peak RSS)


def evaluate_isolated(
    submission: Path,
    model_name: str,
    benchmark: str,
    data_root: Path,
    results_root: Path,
    memory_bytes: int,
    timeout_s: float,
    tick: Callable[[], bool] | None = None,
) -> Outcome:
    """Score one submission folder on one benchmark in a child, with the benchmark data of the board at
    ``data_root``, storing the result under ``results_root``; ``tick()`` -> False aborts it (lost lease).

    The calling thread waits for the child: it must, since PR_SET_PDEATHSIG fires when the thread that
    started the child exits, not the process (the Space runs its worker in a thread).
    """
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="leaderboard-eval-") as tmp:
        out, err = Path(tmp) / "out.json", Path(tmp) / "stderr.txt"
        command = [sys.executable, "-c", _BOOTSTRAP, str(os.getpid()), str(memory_bytes), str(submission)]
        # Absolute: the child runs in the repository root, not in the worker's directory.
        command += [model_name, benchmark, str(data_root.resolve()), str(results_root.resolve()), str(out)]
        env = {
            **os.environ,
            # RLIMIT_AS counts reserved address space: keep allocators from reserving ~1 GB they never use.
            "ARROW_DEFAULT_MEMORY_POOL": "system",
            "MALLOC_ARENA_MAX": "2",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        with err.open("wb") as stderr:
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=root)
        _RUNNING.add(child)
        start, aborted, timed_out = time.monotonic(), False, False
        try:
            while True:
                try:
                    child.wait(TICK_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() - start > timeout_s:
                    timed_out = True
                elif tick is not None and not tick():
                    aborted = True
                if timed_out or aborted:
                    break
        finally:  # timed out, aborted, or the worker itself interrupted: the child goes too
            if child.poll() is None:
                child.kill()
                child.wait()
            _RUNNING.discard(child)
        if timed_out:
            return Outcome(False, f"evaluation took longer than the {timeout_s:g} s limit", None)
        if aborted:
            return Outcome(False, "aborted: this worker lost its claim", None)
        if child.returncode == 0 and out.is_file():
            return Outcome(True, None, json.loads(out.read_text()))
        return Outcome(False, _reason(child.returncode, err.read_text(errors="replace"), memory_bytes), None)


def _reason(returncode: int, stderr: str, memory_bytes: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if any(sign in stderr for sign in OUT_OF_MEMORY_SIGNS):
        return f"out of memory (over the {memory_bytes // 2**20} MB evaluation cap)"
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        return f"evaluation process killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"evaluation failed: {last[:240]}" if last else f"evaluation exited with status {returncode}"


def _main(argv: list[str]) -> int:
    submission, model_name, benchmark, data_root, results_root, out = argv[1:7]
    from fsanet.models.hub import load_directory
    from fsanet.utils.files import sha256_file

    from .runner import evaluate
    from .store import ResultsStore

    model = load_directory(submission)
    model.name = model_name
    store = ResultsStore(results_root, repo="")
    evaluation = evaluate(model, benchmark, store, data_root=data_root, progress=False)
    scores = evaluation.record["results"][evaluation.key.benchmark]
    summary = {
        "benchmark": evaluation.key.benchmark,
        "mae": scores["mae"],
        "result": evaluation.path.name,
        # What this child wrote: the worker moves exactly these bytes onto the board.
        "sha256": sha256_file(evaluation.path),
        "predictions_sha256": sha256_file(store.paths(evaluation.key)[1]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    Path(out).write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_main(sys.argv))
    except Exception as error:  # noqa: BLE001  (the parent reads the last stderr line as the reason)
        print(f"{type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(1)
