"""Submissions, the worker (including being killed mid-run), seed rows and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import fsanet
from leaderboard.cli import main
from leaderboard.data import write_dataset
from leaderboard.importers import prepare_aflw2000
from leaderboard.seed import seed_rows
from leaderboard.store import ResultsStore
from leaderboard.submissions import RequestsStore, SubmissionError, run_worker, submit, submit_files
from tests.conftest import DATA, OFFICIAL, ROOT, require_shared

AFLW = DATA / "aflw2000-sample16"


@pytest.fixture
def board(tmp_path, monkeypatch):
    """An empty board whose only present benchmark is the prepared AFLW2000 sample."""
    require_shared(AFLW)
    monkeypatch.setenv("LEADERBOARD_DIR", str(tmp_path / "board"))
    monkeypatch.delenv("RESULTS_REPO", raising=False)
    for name in ("BIWI", "BIWI_70_30"):
        monkeypatch.delenv(f"LEADERBOARD_DATA_{name}", raising=False)
    data = prepare_aflw2000(AFLW, tmp_path / "aflw2000")
    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(data))
    return tmp_path / "board"


@pytest.fixture
def good_submission(tmp_path):
    torch.manual_seed(0)
    return fsanet.save_pretrained(fsanet.create_model("fsanet_caps_1x1"), tmp_path / "good")


def _variant(good, tmp_path, name):
    target = tmp_path / name
    target.mkdir()
    for file in good.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def test_bad_submissions_are_rejected_with_their_reason(board, good_submission, tmp_path, monkeypatch):
    pickled = _variant(good_submission, tmp_path, "pickled")
    torch.save({"w": torch.zeros(1)}, pickled / "pytorch_model.bin")

    shapes = _variant(good_submission, tmp_path, "shapes")
    tensors = load_file(shapes / "model.safetensors")
    key = next(k for k, v in tensors.items() if v.ndim == 4)
    tensors[key] = torch.zeros(1, *tensors[key].shape[1:])
    save_file(tensors, shapes / "model.safetensors")

    unknown = _variant(good_submission, tmp_path, "unknown")
    config = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**config, "architecture": "resnet_magic"}))

    truncated = _variant(good_submission, tmp_path, "truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])

    missing = _variant(good_submission, tmp_path, "missing")
    (missing / "model.safetensors").unlink()

    cases = {
        pickled: "pickle",
        shapes: f"{key}: shape",
        unknown: "unknown architecture",
        truncated: "truncated",
        missing: "missing model.safetensors",
    }
    for folder, reason in cases.items():
        with pytest.raises(SubmissionError, match=reason):
            submit(folder, name=folder.name)
    monkeypatch.setenv("LEADERBOARD_MAX_SUBMISSION_MB", "0.01")
    with pytest.raises(SubmissionError, match="cap"):
        submit(good_submission, name="big")
    assert RequestsStore().list() == []


def test_submission_is_queued_evaluated_and_listed(board, good_submission):
    request = submit_files(
        [good_submission / "config.json", good_submission / "model.safetensors"], "alice/caps"
    )
    assert request["status"] == "pending" and request["architecture"] == "fsanet"
    assert submit(good_submission, name="alice/caps")["id"] == request["id"]  # same weights: same request
    (done,) = run_worker()
    assert done["status"] == "finished" and [r["benchmark"] for r in done["results"]] == ["aflw2000"]
    table = ResultsStore().table()
    assert list(table["model"]) == ["alice/caps"]
    assert table["weights_sha256"][0] == request["weights_sha256"]


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


def _synthetic_benchmark(path, n):
    return write_dataset(synthetic_rows(n), path, {"benchmark": "aflw2000"})


@pytest.mark.slow
def test_killing_the_worker_mid_run_loses_nothing(board, good_submission, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(_synthetic_benchmark(tmp_path / "big", 128)))
    request = submit(good_submission, name="bob/caps")
    requests = RequestsStore()
    worker = subprocess.Popen(
        [sys.executable, "-m", "leaderboard", "worker", "--no-progress"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while requests.get(request["id"])["status"] != "running":
            assert worker.poll() is None and time.monotonic() < deadline, "worker never started the request"
            time.sleep(0.05)
        time.sleep(0.3)  # loading the model or inside the evaluation now
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    store = ResultsStore()
    killed = requests.get(request["id"])
    assert killed["status"] == "running", (
        "the worker finished before it could be killed: make the data bigger"
    )
    assert store.records() == ([], []) and not list(store.root.glob("predictions/*.parquet"))

    (done,) = run_worker()
    assert done["id"] == request["id"] and done["status"] == "finished"
    assert len(store.records()[0]) == 1


@pytest.mark.slow
def test_seed_rows_list_every_shipped_model_and_skip_the_broken_one(board):
    require_shared(OFFICIAL)
    report = seed_rows(progress=False, robustness=False)
    assert report["benchmarks"] == ["aflw2000"]
    skipped = {s["model"]: s["reason"] for s in report["skipped"]}
    assert "NaN" in skipped.get("fsanet_netvlad_var.300w_lp", "")
    table = ResultsStore().table()
    expected = set(fsanet.pretrained_names()) - set(skipped)
    assert set(table["model"]) == expected and "fsanet_fusion.300w_lp" in expected
    assert (table["benchmark"] == "aflw2000").all() and table["mae"].notna().all()


def test_cli_prepare_evaluate_table(board, tmp_path, capsys):
    require_shared(OFFICIAL)
    out = tmp_path / "cli-aflw"
    assert main(["prepare", "aflw2000", "--source", str(AFLW), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 16
    assert main(["prepare", "aflw2000", "--source", str(AFLW), "--out", str(out)]) == 2  # not overwritten
    assert "already exists" in capsys.readouterr().err
    args = ["evaluate", "--model", "fsanet_caps_var.300w_lp", "--benchmark", str(out), "--no-progress"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 16 and summary["n_dropped"] == 0 and not summary["cached"]
    stored = ResultsStore().records()[0][0]
    assert summary["mae"] == stored["results"]["aflw2000"]["mae"]
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["cached"]
    assert main(["table", "--format", "csv"]) == 0
    assert "fsanet_caps_var.300w_lp,aflw2000" in capsys.readouterr().out
    assert main(["evaluate", "--model", "no_such_model", "--benchmark", str(out)]) == 2
