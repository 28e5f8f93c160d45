"""The leaderboard as a service on the Hub backend (``REQUESTS_REPO`` + ``RESULTS_REPO``), against the fake
Hub of ``tests/test_hub_push.py`` that refuses stale ``parent_commit``s as the Hub does.

Several worker processes (``python -m leaderboard worker --watch``, each with its own disk), one of them
``kill -9``-ed mid-evaluation, and the Space (with no worker of its own, and an empty disk) as a client:
every request ends ``finished`` with exactly one finished attempt and one published result, none is lost,
and the Space shows the same board and queue as the store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub.errors import HfHubHTTPError

import fsanet
from leaderboard.service.submission import submit_directory
from leaderboard.storage.backends import HubBackend
from leaderboard.storage.requests import RequestStore
from tests.conftest import ROOT
from tests.test_hub_push import FakeHub, fake_hub  # noqa: F401  (the fixture)
from tests.test_leaderboard_submissions import synthetic_benchmark
from tests.test_space_api import serve_app

REQUESTS, RESULTS = "board/requests", "board/results"
WORKERS = 3
SUBMISSIONS = 6  # two of them through the Space's /submit
FINISH_TIMEOUT_S = 240


@pytest.fixture
def hub_board(fake_hub: FakeHub, monkeypatch, tmp_path) -> FakeHub:  # noqa: F811  (the imported fixture)
    for repo in (REQUESTS, RESULTS):
        fake_hub.add_repo(f"datasets/{repo}", {})
    monkeypatch.setenv("REQUESTS_REPO", REQUESTS)
    monkeypatch.setenv("RESULTS_REPO", RESULTS)
    monkeypatch.setenv("LEADERBOARD_DIR", str(tmp_path / "submitter"))
    monkeypatch.setenv("LEADERBOARD_MAX_PENDING", "10")  # one operator queues several variants at once
    for name in ("LEADERBOARD_DATA_BIWI", "LEADERBOARD_DATA_BIWI_70_30", "LEADERBOARD_WORKER"):
        monkeypatch.delenv(name, raising=False)
    return fake_hub


def test_a_stale_parent_commit_is_refused_and_the_update_retried(hub_board: FakeHub):
    backend = HubBackend(REQUESTS)
    backend.update("requests/x.json", lambda _: b"0", "start")
    stale = backend.head()
    backend.update("requests/y.json", lambda _: b"other", "someone else")
    with pytest.raises(HfHubHTTPError) as refused:
        backend._commit({"requests/x.json": b"lost"}, "stale", parent=stale)
    assert refused.value.response.status_code == 412 and "A commit has happened since" in str(refused.value)

    calls = []

    def increment(old: bytes | None) -> bytes:
        calls.append(old)
        if len(calls) == 1:  # another writer commits between our read and our commit
            backend.update("requests/x.json", lambda _: b"41", "racing writer")
        return str(int(old) + 1).encode()

    assert backend.update("requests/x.json", increment, "increment") == b"42"
    assert calls == [b"0", b"41"] and backend.read("requests/x.json") == b"42"
    assert hub_board.refused_commits == 2


def _worker_env(hub: FakeHub, tmp_path: Path, name: str, data: Path) -> dict[str, str]:
    home = tmp_path / name
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HOME": str(home / "hf"),
        "HF_HUB_CACHE": str(home / "hf" / "hub"),
        "LEADERBOARD_DIR": str(home / "board"),
        "LEADERBOARD_DATA_AFLW2000": str(data),
        "LEADERBOARD_LEASE_S": "4",
        "LEADERBOARD_POLL_S": "0.5",
        "OMP_NUM_THREADS": "1",
    }


def _variants(tmp_path: Path, count: int) -> list[Path]:
    out = []
    for index in range(count):
        torch_seeded = fsanet.create_model("fsanet_caps_1x1")
        out.append(fsanet.save_pretrained(torch_seeded, tmp_path / "variants" / f"v{index}"))
    return out


@pytest.mark.slow
def test_workers_on_the_hub_finish_every_request_exactly_once_despite_kill_9(hub_board: FakeHub, tmp_path):
    from gradio_client import Client, handle_file

    data = synthetic_benchmark(tmp_path / "aflw2000", 64)
    variants = _variants(tmp_path, SUBMISSIONS)
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = []
    for index in range(WORKERS):
        with (logs / f"worker{index}.log").open("wb") as log:
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "leaderboard", "worker", "--watch"],
                    cwd=ROOT,
                    env=_worker_env(hub_board, tmp_path, f"worker{index}", data),
                    stdout=log,
                    stderr=log,
                    start_new_session=True,  # kill -9 of its group takes its evaluation child too
                )
            )
    space_env = {
        "LEADERBOARD_WORKER": "0",  # the workers run elsewhere: the Space only submits and shows
        "LEADERBOARD_POLL_S": "1",
        "HF_HOME": str(tmp_path / "space" / "hf"),
        "HF_HUB_CACHE": str(tmp_path / "space" / "hf" / "hub"),
    }
    queue = RequestStore()
    try:
        with serve_app(tmp_path / "space" / "board", logs / "space.log", **space_env) as url:
            client = Client(url, verbose=False)
            submitted = []
            for index, folder in enumerate(variants):
                if index < 2:
                    files = [handle_file(str(folder / n)) for n in ("config.json", "model.safetensors")]
                    request, message = client.predict(files, f"space/v{index}", "", "", api_name="/submit")
                    assert request["id"] in message and "submitter" not in request  # its public view
                    submitted.append(request["id"])
                else:
                    submitted.append(submit_directory(folder, name=f"cli/v{index}").id)

            # kill -9 the first worker as soon as it is evaluating something.
            victim = workers[0]
            deadline = time.monotonic() + FINISH_TIMEOUT_S
            while not any(
                r.status == "running" and r.lease is not None and f":{victim.pid}:" in r.lease.worker
                for r in queue.list()[0]
            ):
                assert time.monotonic() < deadline, "the first worker never claimed a request"
                time.sleep(0.2)
            time.sleep(0.5)  # inside its evaluation child (which takes seconds here)
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(10)

            while not all(r.status in ("finished", "failed") for r in queue.list()[0]):
                assert time.monotonic() < deadline, [(r.id, r.status) for r in queue.list()[0]]
                time.sleep(1)

            requests, problems = queue.list()
            assert problems == [] and sorted(r.id for r in requests) == sorted(submitted)
            for request in requests:
                outcomes = [a.outcome for a in request.attempts]
                assert request.status == "finished" and outcomes.count("finished") == 1, request
            lost = [r.id for r in requests if "lost" in [a.outcome for a in r.attempts]]
            assert len(lost) == 1, "the killed worker's request was taken over by another worker"

            # One published result per request: only the holder of a live claim publishes.
            published = [
                path
                for commit_path, paths in hub_board.commits
                if "board/results" in commit_path
                for path in paths
                if path.startswith("results/")
            ]
            assert len(published) == SUBMISSIONS == len(set(published))

            # The Space, started with an empty disk and no worker, shows the same board and queue.
            board = client.predict("", "all", True, api_name="/leaderboard")  # they state no protocol
            source, model = board["headers"].index("source"), board["headers"].index("model")
            models = sorted(row[model] for row in board["data"] if row[source] == "measured here")
            assert models == sorted(r.model_name for r in requests)
            listed = client.predict(api_name="/requests")
            assert sorted(row[0] for row in listed["data"]) == sorted(submitted)
            assert {row[2] for row in listed["data"]} == {"finished"}
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(10)
