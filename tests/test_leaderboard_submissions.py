"""Submissions against a local store: validation that bounds cost, the worker (claims, leases, isolation,
attempts, ``kill -9``), foreign files in the store, reserved names, seed rows and the CLI."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import fsanet
from fsanet.models.weights import WEIGHTS_NAME
from fsanet.utils.files import sha256_file
from leaderboard.cli import main
from leaderboard.display import plots
from leaderboard.display.columns import board_frame
from leaderboard.errors import SubmissionError
from leaderboard.protocol.data import write_dataset
from leaderboard.protocol.importers import prepare_aflw2000
from leaderboard.service.evaluation import evaluate
from leaderboard.service.seed import seed_rows
from leaderboard.service.submission import submit_directory, submit_files, submit_repo
from leaderboard.service.validation import validate_submission
from leaderboard.service.worker import Worker, run_worker
from leaderboard.storage.requests import RequestStore
from leaderboard.storage.results import ResultsStore
from tests.conftest import DATA, OFFICIAL, ROOT, require_shared

AFLW = DATA / "aflw2000-sample16"


def synthetic_rows(n: int) -> Iterator[dict]:
    """Benchmark rows of random 64x64 crops and angles (also the leaderboard bench's input)."""
    rng = np.random.default_rng(0)
    for i in range(n):
        yield {
            "sample_id": f"s{i:06d}",
            "image": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
            "box": None,
            "yaw": float(rng.uniform(-90, 90)),
            "pitch": float(rng.uniform(-60, 60)),
            "roll": float(rng.uniform(-60, 60)),
            "source_revision": "synthetic",
        }


def synthetic_benchmark(path: Path, n: int) -> Path:
    return write_dataset(synthetic_rows(n), path, {"benchmark": "aflw2000"})


@pytest.fixture
def board(tmp_path, monkeypatch):
    """An empty local board whose only present benchmark is a small synthetic AFLW2000 stand-in."""
    monkeypatch.setenv("LEADERBOARD_DIR", str(tmp_path / "board"))
    for name in ("RESULTS_REPO", "REQUESTS_REPO", "LEADERBOARD_DATA_BIWI", "LEADERBOARD_DATA_BIWI_70_30"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(synthetic_benchmark(tmp_path / "aflw2000", 32)))
    return tmp_path / "board"


@pytest.fixture
def good_submission(tmp_path):
    torch.manual_seed(0)
    return fsanet.save_pretrained(fsanet.create_model("fsanet_caps_1x1"), tmp_path / "good")


def _variant(good: Path, tmp_path: Path, name: str, **config_changes) -> Path:
    target = tmp_path / name
    target.mkdir()
    for file in good.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    if config_changes:
        config = json.loads((target / "config.json").read_text())
        (target / "config.json").write_text(json.dumps({**config, **config_changes}))
    return target


def board_table():
    """The board's results table as it is now."""
    return board_frame(ResultsStore().snapshot())


def _rejected(folder: Path, match: str) -> str:
    with pytest.raises(SubmissionError, match=match) as caught:
        submit_directory(folder, name=folder.name)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ------------------------------------------------------------------------------------------ validation
def test_bad_submissions_are_rejected_with_their_reason(board, good_submission, tmp_path, monkeypatch):
    pickled = _variant(good_submission, tmp_path, "pickled")
    torch.save({"w": torch.zeros(1)}, pickled / "pytorch_model.bin")

    shapes = _variant(good_submission, tmp_path, "shapes")
    tensors = load_file(shapes / "model.safetensors")
    key = next(k for k, v in tensors.items() if v.ndim == 4)
    tensors[key] = torch.zeros(1, *tensors[key].shape[1:])
    save_file(tensors, shapes / "model.safetensors")

    unknown = _variant(good_submission, tmp_path, "unknown", architecture="resnet_magic")

    truncated = _variant(good_submission, tmp_path, "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])

    missing = _variant(good_submission, tmp_path, "missing")
    (missing / "model.safetensors").unlink()

    float8 = _variant(good_submission, tmp_path, "float8")
    tensors = load_file(float8 / "model.safetensors")
    tensors[key] = tensors[key].to(torch.float8_e4m3fn)
    save_file(tensors, float8 / "model.safetensors")

    nested = _variant(good_submission, tmp_path, "nested")
    (nested / "config.json").write_text("[" * 100_000 + "]" * 100_000)

    cases = {
        pickled: "pickle",
        shapes: f"{key}: shape",
        unknown: "unknown architecture 'resnet_magic'",
        truncated: "truncated",
        missing: "missing model.safetensors",
        float8: "dtype F8_E4M3 is not accepted",
        nested: "config.json",
    }
    for folder, reason in cases.items():
        _rejected(folder, reason)
    monkeypatch.setenv("LEADERBOARD_MAX_SUBMISSION_MB", "0.01")
    _rejected(good_submission, "cap")
    monkeypatch.setenv("LEADERBOARD_MAX_SUBMISSION_MB", "200")
    monkeypatch.setenv("LEADERBOARD_MAX_PARAMS", "1000")
    _rejected(good_submission, "parameters, over the 1000 cap")
    assert RequestStore().list() == ([], [])


# The configs that used to pass validation and crash the worker (the probe), each on real weights.
POISON_CONFIGS = {
    "routings-0": {"routings": 0},
    "routings-1e7": {"routings": 1e7},
    "routings-10M": {"routings": 10_000_000},
    "odd-image-size": {"image_size": 63},
    "100000-stages": {"stage_num": [3] * 100_000},
    "empty-ensemble": None,  # the whole config: {"architecture": "ensemble", "members": []}
    "lambda-nan": {"lambda_d": float("nan")},
    "stage-num-1e9": {"stage_num": [1e9] * 3},
}


def stored_files(folder: Path) -> dict[str, bytes]:
    """A submission folder's files as the request store keeps them."""
    return {name: (folder / name).read_bytes() for name in ("config.json", WEIGHTS_NAME)}


def _poison(good: Path, tmp_path: Path, name: str) -> Path:
    change = POISON_CONFIGS[name]
    folder = _variant(good, tmp_path, name, **(change or {}))
    if change is None:
        (folder / "config.json").write_text(json.dumps({"architecture": "ensemble", "members": []}))
    return folder


def test_poison_configs_are_rejected_at_submission(board, good_submission, tmp_path):
    for name in POISON_CONFIGS:
        _rejected(_poison(good_submission, tmp_path, name), "config.json")
    assert RequestStore().list() == ([], [])


def test_poison_requests_in_the_store_fail_with_their_reason_and_the_good_one_is_scored(
    board, good_submission, tmp_path
):
    """Requests written into the store behind validation's back (older code, a hand edit) cannot block it."""
    queue = RequestStore()
    good = submit_directory(good_submission, name="good/caps")
    for index, name in enumerate(POISON_CONFIGS):
        folder = _poison(good_submission, tmp_path, name)
        request = good.model_copy(update={"id": name, "model_name": name, "created": f"2000-01-0{index + 1}"})
        queue.add(request, stored_files(folder), lambda _: None)  # queued before the good one (older)
    processed = run_worker()
    final = {r.id: r for r in RequestStore().list()[0]}
    assert final[good.id].status == "finished"
    for name in POISON_CONFIGS:
        assert final[name].status == "failed" and final[name].reason.startswith("rejected: config.json")
    assert len(processed) == len(POISON_CONFIGS) + 1  # each looked at once: a rejection is final
    assert list(board_table()["model"]) == ["good/caps"]


def test_huge_stage_num_with_real_weights_is_rejected_without_allocating(good_submission, tmp_path):
    """``stage_num: [1e9]*3`` (and its integer twin, and a header announcing a huge tensor) with real weights:
    measured in a fresh process, so the peak RSS growth is this check's alone (the time it takes is reported
    by ``bench/bench_service.py``, not asserted here: timings flake on this machine)."""
    folders = [
        _variant(good_submission, tmp_path, "float-1e9", stage_num=[1e9] * 3),
        _variant(good_submission, tmp_path, "int-1e9", stage_num=[10**9] * 3),
    ]
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}})
    huge = _variant(good_submission, tmp_path, "huge-header")
    (huge / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\0" * 64)
    script = (
        "import json, resource, sys, time\n"
        "from leaderboard.errors import SubmissionError\n"
        "from leaderboard.service.validation import validate_submission\n"
        "out = []\n"
        "for folder in sys.argv[1:]:\n"
        "    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    start = time.perf_counter()\n"
        "    try:\n"
        "        validate_submission(folder)\n"
        "        message = None\n"
        "    except SubmissionError as error:\n"
        "        message = str(error)\n"
        "    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024\n"
        "    out.append([message, time.perf_counter() - start, growth])\n"
        "print(json.dumps(out))\n"
    )
    # Warm up once with the accepted submission (imports, a first build on the meta device), then measure.
    args = [str(good_submission), *map(str, folders), str(huge)]
    result = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)[1:]
    assert json.loads(result.stdout)[0][0] is None  # the warm-up submission itself is accepted
    for message, _, growth_mb in measured:
        assert message is not None
        assert growth_mb < 50, (message, growth_mb)  # 10^9 bins or a 4 TB tensor: nothing was allocated
    assert "stage_num" in measured[0][0] and "stage_num" in measured[1][0]
    assert "w" in measured[2][0] or "truncated" in measured[2][0]


@pytest.mark.parametrize(
    "repo_id", ["/etc", "../../etc", ".", "/proc/self", "/root", "a/../../b", "x" * 5000]
)
def test_repo_ids_are_hub_ids_never_paths(board, repo_id, monkeypatch):
    def no_filesystem(*args, **kwargs):
        raise AssertionError(f"the file system was touched for repo id {repo_id!r}")

    for name in ("stat", "lstat", "scandir", "listdir", "open"):
        monkeypatch.setattr(os, name, no_filesystem)
    with pytest.raises(SubmissionError, match="is not a Hub repo id") as caught:
        submit_repo(repo_id)
    monkeypatch.undo()
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_official_names_are_reserved(board, good_submission):
    for name in ("fsanet_caps_1x1.300w_lp", "FSANET_CAPS_1X1.300W_LP", "ssrnet_md", "fsanet_fusion.biwi"):
        with pytest.raises(SubmissionError, match="official model name"):
            submit_directory(good_submission, name=name)
    for name in (" ", "x" * 200, "../evil", "a\nb"):
        with pytest.raises(SubmissionError, match="a name is"):
            submit_directory(good_submission, name=name)


def test_same_weights_tell_which_request_and_a_changed_config_is_new(board, good_submission, tmp_path):
    first = submit_files(
        [good_submission / "config.json", good_submission / "model.safetensors"], "alice/caps"
    )
    assert first.status == "pending" and first.architecture == "fsanet"
    with pytest.raises(SubmissionError, match=f"already submitted as request {first.id}"):
        submit_directory(good_submission, name="bob/caps")
    changed = _variant(good_submission, tmp_path, "changed", lambda_d=0.5)
    second = submit_directory(changed, name="alice/caps-lambda")
    assert second.id != first.id and second.identity.weights == first.identity.weights
    assert [r.id for r in RequestStore().list()[0]] == [first.id, second.id]


def test_weights_already_on_the_board_are_named(board, tmp_path):
    require_shared(OFFICIAL)
    evaluate("ssrnet_md.300w_lp", "aflw2000", robustness=False, progress=False)
    copy = fsanet.save_pretrained(fsanet.load_model("ssrnet_md.300w_lp"), tmp_path / "copy")
    with pytest.raises(SubmissionError, match="already on the board as the official row 'ssrnet_md.300w_lp'"):
        submit_directory(copy, name="my_ssrnet")


# ------------------------------------------------------------------------------------------ the worker
def test_submission_is_queued_evaluated_and_listed(board, good_submission):
    request = submit_files(
        [good_submission / "config.json", good_submission / "model.safetensors"], "alice/caps"
    )
    (done,) = run_worker()
    assert done.status == "finished" and [r.benchmark for r in done.results] == ["aflw2000"]
    assert [a.outcome for a in done.attempts] == ["finished"]
    assert 0 < done.results[0].peak_rss_mb < 2048
    store = ResultsStore()
    table = board_table()
    assert list(table["model"]) == ["alice/caps"]
    assert table["weights_identity"][0] == request.identity.weights
    assert table["params"][0] == request.params  # one definition of the model's size
    # The board holds exactly the bytes the evaluation child wrote (it reported their sha256), moved there
    # from its staging folder, which is gone.
    json_file, parquet_file = store.files("community", done.results[0].result.removesuffix(".json"))
    assert sha256_file(json_file) == done.results[0].sha256
    assert sha256_file(parquet_file) == done.results[0].predictions_sha256
    assert list((board / ".staging").iterdir()) == []
    assert run_worker() == []  # nothing left: a finished request is never evaluated again


class Clock:
    """A clock the test moves by hand: a lease expires when the test says so, never after a sleep."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_claims_and_leases_between_two_workers(board, good_submission):
    request = submit_directory(good_submission, name="alice/caps")
    clock = Clock()
    first, second = Worker(lease_s=6, clock=clock), Worker(lease_s=6, clock=clock)
    claimed = first.claim_next()
    assert claimed.id == request.id and claimed.lease.worker == first.worker_id
    assert second.claim_next() is None  # held
    clock.advance(5)
    assert first.renew(request.id, "aflw2000 (1/1)")  # until 11 s
    clock.advance(5.9)
    assert second.claim_next() is None  # still held: renewed
    clock.advance(0.2)  # the first worker stopped renewing, as if killed
    taken = second.claim_next()
    assert taken.lease.worker == second.worker_id
    assert [a.outcome for a in taken.attempts] == ["lost", None]
    assert not first.renew(request.id)  # its claim is gone: it must drop its work


def _no_rows(board: Path) -> bool:
    """Nothing on the board: no result, no predictions, no staging folder left behind."""
    staged = list((board / ".staging").iterdir())
    predictions = list(board.glob("predictions/**/*.parquet"))
    snapshot = ResultsStore().snapshot()
    return snapshot.rows == snapshot.problems == () and not predictions and staged == []


def test_a_request_failing_on_its_second_benchmark_leaves_no_row(board, good_submission):
    """Benchmarks are scored in turn, each in its child: aflw2000 succeeds, then biwi's child fails (no data
    here). The aflw2000 result stays in staging and goes with it: a request reaches the board whole or not."""
    submit_directory(good_submission, name="dave/caps")
    worker = Worker()
    done = worker.process(worker.claim_next(), ["aflw2000", "biwi"])
    assert done.status == "pending" and done.reason.startswith("biwi: "), done.reason
    assert done.results == [] and _no_rows(board)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (command) state ppid ...": the command may hold spaces and parentheses
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # the process ended while listed
            continue
        if parent == pid:
            found.append(int(stat.parent.name))
    return found


def _start_worker_once() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "leaderboard", "worker", "--once"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.DEVNULL,
    )


def _is_evaluation(pid: int) -> bool:
    try:  # the bootstrap runs this module (a worker's imports may start short-lived helpers too)
        return b"leaderboard.service.isolation" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _has_loaded_torch(pid: int) -> bool:
    try:
        return b"libtorch" in Path(f"/proc/{pid}/maps").read_bytes()
    except OSError:
        return False


def _evaluation_child(worker: subprocess.Popen, deadline: float) -> int:
    while not (children := [pid for pid in _children(worker.pid) if _is_evaluation(pid)]):
        assert worker.poll() is None and time.monotonic() < deadline, (
            "the worker never started its evaluation"
        )
        time.sleep(0.05)
    return children[0]


def _stop_outside_the_store_lock(pid: int, board: Path) -> None:
    """SIGSTOP ``pid`` at a moment it does not hold the store's update lock (others would wait forever)."""
    with (board / ".update.lock").open("a") as lock:
        while True:
            os.kill(pid, signal.SIGSTOP)
            while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
                time.sleep(0.01)  # stopping is asynchronous
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # stopped while renewing its lease: let it finish, then again
                os.kill(pid, signal.SIGCONT)
                time.sleep(0.01)
                continue
            fcntl.flock(lock, fcntl.LOCK_UN)
            return


def test_a_worker_that_lost_its_claim_leaves_no_row(board, good_submission, monkeypatch):
    """A worker stalls (SIGSTOP) while its evaluation child finishes and writes its result; its lease
    expires and another worker takes the request over; the first resumes: its result must not reach the
    board (the one who took over publishes its own)."""
    monkeypatch.setenv("LEADERBOARD_LEASE_S", "4")
    submit_directory(good_submission, name="carol/caps")
    stalled = _start_worker_once()
    try:
        deadline = time.monotonic() + 180
        child = _evaluation_child(stalled, deadline)
        _stop_outside_the_store_lock(stalled.pid, board)
        while not _gone(child):
            assert time.monotonic() < deadline, "the evaluation child never finished"
            time.sleep(0.1)
        # A worker whose clock is past the stalled worker's lease (4 s) takes the request over at once.
        taker = Worker(clock=Clock(datetime.now(UTC) + timedelta(seconds=60)))
        taken = taker.claim_next()
        assert taken is not None, "the stalled worker's lease did not expire"
        os.kill(stalled.pid, signal.SIGCONT)
        stalled.wait(60)
    finally:
        if stalled.poll() is None:
            stalled.kill()
            stalled.wait(10)
    assert _no_rows(board)
    done = taker.process(taken, ["aflw2000"])
    assert done.status == "finished" and [a.outcome for a in done.attempts] == ["lost", "finished"]
    assert len(ResultsStore().snapshot().rows) == 1


def test_a_stale_staging_folder_is_never_read_and_the_next_worker_removes_it(board, good_submission):
    """A worker killed before publishing leaves a complete result in its staging folder: the board never
    reads it, and the next worker removes it once it is older than its age limit (a live one's stays)."""
    staging = board / ".staging"
    killed, live = staging / "staged-killed", staging / "staged-live"
    model = fsanet.load_model(str(good_submission))
    model.name = "ghost"
    evaluate(
        model, "aflw2000", ResultsStore(killed, repo=""), data_root=board, progress=False, robustness=False
    )
    hour_ago = time.time() - 3600
    os.utime(killed, (hour_ago, hour_ago))
    live.mkdir()
    store = ResultsStore()
    assert store.snapshot().rows == store.snapshot().problems == () and board_table().empty
    submit_directory(good_submission, name="erin/caps")  # the same weights: not "already on the board"
    (done,) = Worker(lease_s=60).run()  # stale after 10 leases: 10 minutes
    assert done.status == "finished"
    assert [p.name for p in staging.iterdir()] == ["staged-live"]
    assert list(board_table()["model"]) == ["erin/caps"]


def test_crash_oom_and_timeout_fail_the_attempt_with_a_reason(board, good_submission, monkeypatch):
    """Each evaluation runs in a child: an address-space cap too small to start, then a wall-clock limit too
    short to finish; after LEADERBOARD_MAX_ATTEMPTS failures the request is failed for good."""
    request = submit_directory(good_submission, name="alice/caps")
    monkeypatch.setenv("LEADERBOARD_EVAL_MEMORY_MB", "300")
    (first,) = run_worker(limit=1)
    assert first.status == "pending"  # one failure of two allowed
    assert "aflw2000:" in first.reason and ("memory" in first.reason or "Error" in first.reason)
    monkeypatch.setenv("LEADERBOARD_EVAL_MEMORY_MB", "2048")
    monkeypatch.setenv("LEADERBOARD_EVAL_TIMEOUT_S", "0.5")
    (second,) = run_worker(limit=1)
    assert second.status == "failed" and "longer than the 0.5 s limit" in second.reason
    assert [a.outcome for a in second.attempts] == ["failed", "failed"]
    assert run_worker() == []  # the queue moved on
    monkeypatch.delenv("LEADERBOARD_EVAL_TIMEOUT_S")
    assert main(["retry", request.id]) == 0
    (third,) = run_worker()
    assert third.status == "finished"


def test_the_memory_cap_defaults_to_4_gb_without_cuda_and_to_none_with_it(monkeypatch):
    from leaderboard.settings import eval_memory_bytes

    monkeypatch.delenv("LEADERBOARD_EVAL_MEMORY_MB", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert eval_memory_bytes() == 4096 * 2**20
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert eval_memory_bytes() == 0  # CUDA cannot initialise under an address-space cap
    monkeypatch.setenv("LEADERBOARD_EVAL_MEMORY_MB", "4096")
    assert eval_memory_bytes() == 4096 * 2**20  # an operator's value wins


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] == "Z"  # a zombie
    except (FileNotFoundError, IndexError):
        return True


def test_an_evaluation_does_not_outlive_its_worker(board, good_submission, tmp_path, monkeypatch):
    """The Space's worker is a daemon thread: when the process exits, its evaluation child is killed too
    (here an evaluation of tens of seconds, started just before its worker's process ends)."""
    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(synthetic_benchmark(tmp_path / "big", 3000)))
    script = (
        "import sys, threading, time\n"
        "from pathlib import Path\n"
        "from leaderboard.service.isolation import _RUNNING, evaluate_isolated\n"
        "request = {'id': 'x', 'model_name': 'x', 'identity': None}\n"
        "args = (Path(sys.argv[1]), request, ['aflw2000'], Path(sys.argv[2]), Path(sys.argv[2]), 0, 600)\n"
        "threading.Thread(target=evaluate_isolated, args=args, daemon=True).start()\n"
        "while not _RUNNING:\n"
        "    time.sleep(0.02)\n"
        "print(next(iter(_RUNNING)).pid, flush=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(good_submission), str(board)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    child = int(result.stdout.split()[0])
    deadline = time.monotonic() + 8
    while not _gone(child):
        assert time.monotonic() < deadline, "the evaluation child outlived its worker process"
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_an_evaluation_does_not_outlive_its_worker_killed_with_sigkill(board, tmp_path):
    """``kill -9`` of the worker alone (not its process group, so no atexit runs) as soon as its evaluation
    child has loaded torch (a ResNet-18 head at 224x224 then has seconds of work left): the kernel kills
    the child, which writes no result."""
    torch.manual_seed(0)
    slow = fsanet.save_pretrained(fsanet.create_model("fsanet_timm_resnet18"), tmp_path / "resnet18")
    submit_directory(slow, name="frank/resnet18")
    worker = _start_worker_once()
    child = None
    try:
        deadline = time.monotonic() + 120
        child = _evaluation_child(worker, deadline)
        while not _has_loaded_torch(child):  # past its bootstrap (prctl), into the evaluation
            assert not _gone(child) and time.monotonic() < deadline, "the evaluation child never loaded torch"
            time.sleep(0.05)
        assert not _gone(child), "the evaluation ended before its worker could be killed"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 15
        while not _gone(child):
            assert time.monotonic() < deadline, "the evaluation child outlived its worker killed with SIGKILL"
            time.sleep(0.1)
        staged = list(board.glob(".staging/*/results/*.json"))
        assert staged == [], "the evaluation child finished instead of being killed with its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        if child is not None and not _gone(child):  # this test's orphan, if the fix is broken
            os.kill(child, signal.SIGKILL)


@pytest.mark.slow
def test_killing_the_worker_mid_run_loses_nothing(board, good_submission, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(synthetic_benchmark(tmp_path / "big", 512)))
    monkeypatch.setenv("LEADERBOARD_LEASE_S", "5")
    request = submit_directory(good_submission, name="bob/caps")
    queue = RequestStore()
    worker = subprocess.Popen(
        [sys.executable, "-m", "leaderboard", "worker", "--once"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its evaluation child goes down with it (killpg below)
    )
    try:
        deadline = time.monotonic() + 60
        while queue.get(request.id).status != "running":
            assert worker.poll() is None and time.monotonic() < deadline, "worker never started the request"
            time.sleep(0.05)
        time.sleep(1.0)  # inside the evaluation child now
        os.killpg(worker.pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    store = ResultsStore()
    killed = queue.get(request.id)
    assert killed.status == "running", "the worker finished before it could be killed: make the data bigger"
    assert store.snapshot().rows == () and not list(store.root.glob("predictions/**/*.parquet"))

    # At the kill the lease (renewed every 5/3 s for 5 s) is still valid: nobody may take it yet...
    assert Worker(clock=Clock(killed_at)).run() == []
    # ... and once 5 s have passed without a renewal, the next worker takes it over.
    (done,) = Worker(clock=Clock(killed_at + timedelta(seconds=5.1))).run()
    assert done.id == request.id and done.status == "finished"
    assert [a.outcome for a in done.attempts] == ["lost", "finished"]
    assert len(store.snapshot().rows) == 1


# -------------------------------------------------------------------------------- foreign files, results
FOREIGN_REQUESTS = {
    "list.json": b"[1, 2, 3]",
    "no-id.json": b'{"status": "pending"}',
    "int-created.json": b'{"id": "int-created", "model_name": "x", "status": "pending", "created": 5}',
    "bad-status.json": b'{"id": "bad-status", "model_name": "x", "status": "hacked", "created": "1"}',
    "garbage.json": b"\xff\xfe not json",
    "deep.json": b"[" * 50_000 + b"]" * 50_000,
    "notes.txt": b"hello",
}


def test_foreign_files_are_skipped_and_listed_once(board, good_submission, capsys, caplog):
    request = submit_directory(good_submission, name="alice/caps")
    requests_dir = board / "requests"
    for name, data in FOREIGN_REQUESTS.items():
        (requests_dir / name).write_bytes(data)
    (board / "results").mkdir(parents=True)
    (board / "results" / "list.json").write_text("[]")
    (board / "results" / "deep.json").write_text("[" * 50_000 + "]" * 50_000)

    requests, problems = RequestStore().list()
    assert [r.id for r in requests] == [request.id]
    assert len(problems) == len(FOREIGN_REQUESTS) and all("\n" not in p for p in problems)
    worker = Worker()
    (done,) = worker.run()
    assert done.status == "finished"
    worker.run()
    assert sum("skipped requests/list.json" in r.message for r in caplog.records) == 1  # once per worker

    assert main(["requests", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["id"] == request.id and "skipped requests/no-id.json" in captured.err
    assert main(["table", "--all"]) == 0  # foreign results warned about once per process (see the log)
    assert "alice/caps" in capsys.readouterr().out
    problems = ResultsStore().snapshot().problems
    assert [p.split(":")[0] for p in problems] == ["skipped deep.json", "skipped list.json"]
    assert sum("skipped list.json" in r.message for r in caplog.records) == 1


def test_a_minimal_result_shows_its_row_and_plots_skip_what_it_lacks(board):
    minimal = {
        "config": {
            "model_name": "minimal",
            "namespace": "community",
            "weights_identity": "0" * 64,
            "config_identity": "1" * 64,
            "benchmark": "aflw2000",
            "dataset_revision": "r",
            "code_version": "2",
        },
        "results": {
            "aflw2000": {
                "mae": 5.0,
                "mae_yaw": 4.0,
                "mae_pitch": 5.0,
                "mae_roll": 6.0,
                "n": 1,
                "n_dropped": 0,
            }
        },
    }
    (board / "results" / "community").mkdir(parents=True)
    (board / "results" / "community" / "minimal.json").write_text(json.dumps(minimal))
    snapshot = ResultsStore().snapshot()
    assert snapshot.problems == () and list(board_table()["model"]) == ["minimal"]
    assert len(plots.mae_bars(board_table(), "aflw2000").data) == 4
    for figure in (
        plots.yaw_bin_figure(snapshot.rows, "aflw2000"),
        plots.cumulative_figure(snapshot.rows, "aflw2000", "mae"),
        plots.robustness_figure(snapshot.rows, "aflw2000"),
    ):
        assert figure.data == ()


# ------------------------------------------------------------------------------------------- seed, CLI
@pytest.mark.slow
def test_seed_rows_list_every_shipped_model_and_skip_the_broken_one(board, tmp_path, monkeypatch):
    require_shared(OFFICIAL)
    monkeypatch.setenv(
        "LEADERBOARD_DATA_AFLW2000", str(prepare_aflw2000(require_shared(AFLW), tmp_path / "a"))
    )
    report = seed_rows(progress=False, robustness=False)
    assert report["benchmarks"] == ["aflw2000"]
    skipped = {s["model"]: s["reason"] for s in report["skipped"]}
    assert "NaN" in skipped.get("fsanet_netvlad_var.300w_lp", "")
    table = board_table()
    expected = set(fsanet.pretrained_names()) - set(skipped)
    assert set(table["model"]) == expected and "fsanet_fusion.300w_lp" in expected
    assert (table["benchmark"] == "aflw2000").all() and table["mae"].notna().all()


def test_cli_prepare_evaluate_table(board, tmp_path, capsys):
    require_shared(OFFICIAL)
    out = tmp_path / "cli-aflw"
    assert main(["prepare", "aflw2000", "--source", str(require_shared(AFLW)), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 16
    assert main(["prepare", "aflw2000", "--source", str(AFLW), "--out", str(out)]) == 2  # not overwritten
    assert "already exists" in capsys.readouterr().err
    args = ["evaluate", "--model", "fsanet_caps_var.300w_lp", "--benchmark", str(out), "--no-progress"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 16 and summary["n_dropped"] == 0 and not summary["cached"]
    (stored,) = ResultsStore().snapshot().rows
    assert summary["mae"] == stored.mae
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["cached"]
    assert main(["table", "--format", "csv"]) == 0
    table = capsys.readouterr().out  # ranked as the Space shows it
    assert table.startswith("rank,model,") and "\n1,fsanet_caps_var.300w_lp,FSA-Net,300W-LP," in table
    assert main(["evaluate", "--model", "no_such_model", "--benchmark", str(out)]) == 2


def test_cli_submit_and_worker_once(board, good_submission, capsys):
    assert main(["submit", str(good_submission), "--name", "carol/caps", "--json"]) == 0
    request = json.loads(capsys.readouterr().out)
    assert main(["submit", str(good_submission), "--name", "dave/caps"]) == 2
    assert f"already submitted as request {request['id']}" in capsys.readouterr().err
    assert main(["submit", "/etc"]) == 2  # not a folder holding a submission, not a Hub id either
    assert "error:" in capsys.readouterr().err
    assert main(["submit", "x" * 5000]) == 2  # too long for a path and for a repo id: one line, no traceback
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["worker", "--once"]) == 0
    (done,) = json.loads(capsys.readouterr().out)
    assert done["status"] == "finished"


def test_validate_submission_accepts_every_shipped_architecture(tmp_path):
    for name in fsanet.list_models():
        folder = fsanet.save_pretrained(fsanet.create_model(name), tmp_path / name)
        info = validate_submission(folder)
        assert info.params == sum(p.numel() for p in fsanet.create_model(name).parameters())


# ------------------------------------------------------------------- what the caps accept can be scored
def _timm_head(tmp_path: Path, backbone: str, size: int) -> Path:
    """An FSA head on a timm backbone at ``size`` px, random weights (timm downloads nothing)."""
    from fsanet.models.families.timm_head import timm_config
    from fsanet.models.registry import build_model

    torch.manual_seed(0)
    model = build_model(timm_config(backbone, image_size=size))
    return fsanet.save_pretrained(model, tmp_path / f"{backbone}-{size}")


def test_the_default_budget_covers_the_largest_model_the_default_caps_accept(monkeypatch):
    from leaderboard.service.budget import evaluation_bytes
    from leaderboard.settings import eval_memory_bytes, max_params

    for name in ("LEADERBOARD_EVAL_MEMORY_MB", "LEADERBOARD_MAX_PARAMS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    largest_input = 448  # a timm head's largest image_size (its own crop: CHUNK_PIXELS covers smaller ones)
    assert evaluation_bytes(max_params(), largest_input) <= eval_memory_bytes()


@pytest.mark.slow
def test_a_resnet50_head_within_the_caps_is_scored_at_its_first_attempt(board, tmp_path, monkeypatch):
    """An FSA head on timm ``resnet50`` (24 M parameters, within both caps) at 224 and at 448 px, through the
    worker's isolated child under the default memory budget: each finished on its first attempt (they used
    to fail "out of memory" and "Failed to serialize proto"). About 2-3 minutes on 8 crops."""
    monkeypatch.delenv("LEADERBOARD_EVAL_MEMORY_MB", raising=False)
    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(synthetic_benchmark(tmp_path / "small", 8)))
    for size in (224, 448):
        submit_directory(_timm_head(tmp_path, "resnet50", size), name=f"resnet50-{size}")
    done = run_worker()
    outcomes = {r.model_name: (r.status, [a.outcome for a in r.attempts], r.reason) for r in done}
    assert outcomes == {name: ("finished", ["finished"], None) for name in ("resnet50-224", "resnet50-448")}
    assert sorted(board_table()["input_size"]) == [224, 448]


def test_a_config_the_model_cannot_run_is_refused_at_submit(board, good_submission, tmp_path, monkeypatch):
    """An input size the model does not take, weights that are infinite as float32 (finite as float64), and
    a model whose scoring needs more memory than the evaluation's budget: refused at submit, saying why."""
    _rejected(
        _variant(good_submission, tmp_path, "size-100", preprocess={"size": 100}),
        "preprocess size 100 is not an input size this model takes .64x64 only.",
    )
    overflow = _variant(good_submission, tmp_path, "overflow")
    tensors = {
        k: v.double() if v.is_floating_point() else v for k, v in load_file(overflow / WEIGHTS_NAME).items()
    }
    key = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[key].view(-1)[0] = 1e300
    save_file(tensors, overflow / WEIGHTS_NAME)
    _rejected(overflow, f"1 tensors hold NaN/inf values as float32 .e.g. {key}.")
    monkeypatch.setenv("LEADERBOARD_EVAL_MEMORY_MB", "1800")
    message = _rejected(_timm_head(tmp_path, "resnet18", 224), "scoring this model needs about")
    assert "over the 1800 MB evaluation budget" in message
    assert RequestStore().list() == ([], [])


def test_submit_and_requests_say_the_state_and_place_in_words_and_json_on_request(
    board, tmp_path, capsys, monkeypatch
):
    """People read a sentence (state, place in the queue, scores), at the command line and in the Space's
    "Your submission"; ``--json`` gives machines the public record, nothing more."""
    from space import board as space_board

    first, second = (fsanet.save_pretrained(fsanet.create_model("ssrnet_md"), tmp_path / n) for n in "ab")
    assert main(["submit", str(first), "--name", "erin/a"]) == 0
    said = capsys.readouterr().out.strip()
    (request,) = RequestStore().list()[0]
    assert said == f"Request {request.id} (erin/a) is pending: next in the queue."
    assert main(["submit", str(second), "--name", "erin/b", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    later = RequestStore().get(record["id"])
    assert record == later.public() and "submitter" not in record and "lease" not in record
    assert main(["requests"]) == 0
    second = f"Request {later.id} (erin/b) is pending: number 2 in the queue (1 before it)."
    assert capsys.readouterr().out.splitlines() == [said, second]
    monkeypatch.setattr(space_board._Reloads, "listed_at", -float("inf"))
    assert space_board.your_request({"id": later.id}) == second
    monkeypatch.setenv("LEADERBOARD_WORKER", "0")  # and what it waits for on a Space without a worker
    assert space_board.your_request({"id": later.id}) == f"{second} It is waiting for a worker " + (
        "(python -m leaderboard worker --watch)."
    )
    assert main(["worker", "--once", "--limit", "1"]) == 0
    capsys.readouterr()
    assert main(["requests", "--id", request.id]) == 0
    assert re.fullmatch(
        rf"Request {request.id} \(erin/a\) is finished: aflw2000 MAE \d+\.\d\d\.\n", capsys.readouterr().out
    )
    assert main(["requests", "--id", later.id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "pending"


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("", "give a submission folder or a Hub repo id"),
        ("  ", "give a submission folder or a Hub repo id"),
        ("{file}", "{file} is a file, not a submission folder"),
        ("{missing}", "{missing}: no such folder"),
        ("/dev/zero", "/dev/zero is a character device, not a regular file or folder"),
    ],
)
def test_submit_says_what_is_wrong_with_a_source_that_is_no_folder(board, tmp_path, capsys, source, said):
    """``submit ""`` once validated the current folder, and a file or a device was "not a Hub repo id"."""
    paths = {"file": tmp_path / "model.safetensors", "missing": tmp_path / "no" / "such"}
    paths["file"].write_bytes(b"x")
    assert main(["submit", source.format(**paths)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {said.format(**paths)}") and err.count("\n") == 1, err
    assert RequestStore().list()[0] == []
