"""One request's evaluation in a child process with a memory cap (``RLIMIT_AS``) and a wall-clock limit.

Its one job is containment: whatever a submission does (crash, allocate without bound, loop), the caller gets
an :class:`Outcome` with a readable reason and keeps running. The child is started as
``python -c <set the limit, then run this module>`` so the cap applies before torch is even imported. It
validates the stored files again (:func:`~.validation.validate_submission`: a file changed in the store since
the request was accepted is rejected), builds the model once (it carries the identity that validation
computed), and scores it on every benchmark with :func:`~.evaluation.evaluate` into the results directory it
is given (the worker's staging folder), reading the benchmark data of the board it is given (each loaded
once); it reports its own peak memory. The memory cap is the evaluation budget, which covers what validation
accepts (:mod:`.budget`).

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
from typing import Any

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
    "runpy.run_module('leaderboard.service.isolation', run_name='__main__', alter_sys=True)\n"
)
TICK_SECONDS = 1.0
REJECTED = 3  # the child's exit status when the stored submission fails validation
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
    reason: str | None  # why it failed, one line (prefixed by the benchmark it was scoring)
    summaries: list[dict[str, Any]] | None  # one per benchmark when ok: benchmark, MAE, result file, sha256s
    rejected: bool = False  # the stored submission itself is invalid: final, no retry
    peak_rss_mb: float | None = None  # the child's own peak resident memory


def evaluate_isolated(
    submission: Path,
    request: dict[str, Any],
    benchmarks: list[str],
    data_root: Path,
    results_root: Path,
    memory_bytes: int,
    timeout_s: float,
    tick: Callable[[str], bool] | None = None,
) -> Outcome:
    """Validate and score one submission folder on ``benchmarks`` in one child (the model is built once),
    with the benchmark data of the board at ``data_root``, storing the results under ``results_root``.

    ``tick(progress)`` is called about every second with what the child is scoring; False aborts it (a lost
    lease). The calling thread waits for the child: it must, since PR_SET_PDEATHSIG fires when the thread
    that started the child exits, not the process (the Space runs its worker in a thread).
    """
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="leaderboard-eval-") as tmp:
        out, err, progress = Path(tmp) / "out.json", Path(tmp) / "stderr.txt", Path(tmp) / "progress.txt"
        job = {
            "submission": str(submission),
            "request": request,  # id, model_name, identity
            "benchmarks": benchmarks,
            "data_root": str(data_root.resolve()),  # the child runs in the repository root
            "results_root": str(results_root.resolve()),
            "out": str(out),
            "progress": str(progress),
        }
        command = [sys.executable, "-c", _BOOTSTRAP, str(os.getpid()), str(memory_bytes), json.dumps(job)]
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

        def current() -> str:
            text = progress.read_text() if progress.is_file() else ""
            return text or f"{benchmarks[0]} (1/{len(benchmarks)})"

        try:
            while True:
                try:
                    child.wait(TICK_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.monotonic() - start > timeout_s:
                    timed_out = True
                elif tick is not None and not tick(current()):
                    aborted = True
                if timed_out or aborted:
                    break
        finally:  # timed out, aborted, or the worker itself interrupted: the child goes too
            if child.poll() is None:
                child.kill()
                child.wait()
            _RUNNING.discard(child)
        where = current().split(" (", 1)[0]
        if timed_out:
            return Outcome(False, f"{where}: evaluation took longer than the {timeout_s:g} s limit", None)
        if aborted:
            return Outcome(False, "aborted: this worker lost its claim", None)
        if child.returncode == 0 and out.is_file():
            report = json.loads(out.read_text())
            return Outcome(True, None, report["results"], peak_rss_mb=report["peak_rss_mb"])
        stderr_text = err.read_text(errors="replace")
        if child.returncode == REJECTED:
            return Outcome(False, f"rejected: {_last_line(stderr_text)}", None, rejected=True)
        return Outcome(False, f"{where}: {_reason(child.returncode, stderr_text, memory_bytes)}", None)


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _reason(returncode: int, stderr: str, memory_bytes: int) -> str:
    last = _last_line(stderr)
    if any(sign in stderr for sign in OUT_OF_MEMORY_SIGNS):
        return f"out of memory (over the {memory_bytes // 2**20} MB evaluation cap)"
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        return f"evaluation process killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else "")
    return f"evaluation failed: {last[:240]}" if last else f"evaluation exited with status {returncode}"


def peak_rss_mb() -> float:
    """This process's own peak resident memory. ``ru_maxrss`` would not do: Linux carries it across
    ``exec``, so a child forked from a big worker would report the worker's; ``VmHWM`` is this image's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _main(job: dict[str, Any]) -> int:
    from fsanet.models.registry import ModelIdentity
    from fsanet.utils.files import sha256_file

    from ..errors import SubmissionError
    from ..storage.results import ResultsStore
    from .evaluation import evaluate
    from .validation import validate_submission

    request = job["request"]
    try:  # the stored files again, as the submit step did: a bad file in the store fails at once, for good
        valid = validate_submission(job["submission"])
        identity = request.get("identity") or {}
        if valid.identity != ModelIdentity(identity.get("weights"), identity.get("config")):
            raise SubmissionError("the stored files are not the ones this request was validated with")
    except SubmissionError as error:
        print(str(error), file=sys.stderr)
        return REJECTED
    model = valid.model()
    model.name = request["model_name"]
    store = ResultsStore(job["results_root"], repo="")
    results = []
    for index, benchmark in enumerate(job["benchmarks"], 1):
        Path(job["progress"]).write_text(f"{benchmark} ({index}/{len(job['benchmarks'])})")
        evaluation = evaluate(
            model, benchmark, store, data_root=job["data_root"], progress=False, request_id=request["id"]
        )
        results.append(
            {
                "benchmark": evaluation.row.benchmark,
                "mae": evaluation.row.mae,
                "result": evaluation.path.name,
                # What this child wrote: the worker moves exactly these bytes onto the board.
                "sha256": sha256_file(evaluation.path),
                "predictions_sha256": sha256_file(store.paths(evaluation.key)[1]),
            }
        )
    Path(job["out"]).write_text(json.dumps({"results": results, "peak_rss_mb": peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_main(json.loads(sys.argv[1])))
    except Exception as error:  # noqa: BLE001  (the parent reads the last stderr line as the reason)
        print(f"{type(error).__name__}: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(1)
