"""A newcomer's first start: the board fills itself, says what it waits for, and says what to provide."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import DATA, OFFICIAL, require_shared
from tests.test_space_api import serve_app

AFLW_SAMPLE = DATA / "aflw2000-sample16"


def test_an_original_aflw2000_folder_is_imported_once(tmp_path, monkeypatch):
    from leaderboard.protocol.loading import present_benchmarks

    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(require_shared(AFLW_SAMPLE)))
    for name in ("LEADERBOARD_DATA_BIWI", "LEADERBOARD_DATA_BIWI_70_30"):
        monkeypatch.delenv(name, raising=False)
    board = tmp_path / "board"
    assert present_benchmarks(board) == ["aflw2000"]
    imported = board / "datasets" / "aflw2000" / "leaderboard_dataset.json"
    meta = json.loads(imported.read_text())
    assert meta["n"] == 16 and meta["imported_from"]["path"] == str(AFLW_SAMPLE.resolve())
    stamp = imported.stat().st_mtime_ns
    assert present_benchmarks(board) == ["aflw2000"] and imported.stat().st_mtime_ns == stamp  # not again


def test_without_data_the_board_says_what_to_set_and_where_it_looked(tmp_path, monkeypatch):
    from space import board

    monkeypatch.setenv("LEADERBOARD_DIR", str(tmp_path / "empty"))
    for name in ("LEADERBOARD_DATA_AFLW2000", "LEADERBOARD_DATA_BIWI", "LEADERBOARD_DATA_BIWI_70_30"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(board._Reloads, "looked_at", -float("inf"))
    text = board.board_status()
    assert "No benchmark data" in text and "`LEADERBOARD_DATA_AFLW2000`" in text
    assert f"aflw2000: {tmp_path / 'empty' / 'datasets' / 'aflw2000'}" in text  # where it looked


def test_a_benchmark_picked_without_data_gets_the_empty_boards_instructions(tmp_path, monkeypatch):
    """Picking ``biwi`` on a board with AFLW2000 results only said "No results for biwi"."""
    from space import board
    from tests.test_board_views import MODELS, _write

    root = tmp_path / "board"
    monkeypatch.setenv("LEADERBOARD_DIR", str(root))
    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(tmp_path / "somewhere"))
    for name in ("LEADERBOARD_DATA_BIWI", "LEADERBOARD_DATA_BIWI_70_30", "RESULTS_REPO"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(board._Reloads, "looked_at", -float("inf"))
    _write(board.board_store(), *MODELS[0])
    for name in ("biwi", "biwi_70_30"):
        text = board.board_status("", name)
        where = root / "datasets" / name
        assert f"**No benchmark data for {name}**" in text and f"`LEADERBOARD_DATA_{name.upper()}`" in text
        assert f"Looked in: {name}: {where}." in text and "BIWI `hpdb` folder" in text
        assert "AFLW2000" not in text  # only what this benchmark needs
        figures = board.board_plots(name)
        assert all("no benchmark data" in fig.layout.annotations[0].text for fig in figures)
    assert "1 result(s)" in board.board_status("", "aflw2000")
    # the empty board's instructions are the same sentences, for every benchmark
    monkeypatch.setenv("LEADERBOARD_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("LEADERBOARD_DATA_AFLW2000")
    empty = board.board_status()
    for name in ("aflw2000", "biwi", "biwi_70_30"):
        assert f"`LEADERBOARD_DATA_{name.upper()}`" in empty and f"{name}: {tmp_path / 'empty'}" in empty


def test_a_pending_request_says_what_it_waits_for(tmp_path, monkeypatch):
    from space import board

    monkeypatch.setenv("LEADERBOARD_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("LEADERBOARD_DATA_AFLW2000", raising=False)
    monkeypatch.setattr(board._Reloads, "looked_at", -float("inf"))
    pending = {"id": "x", "status": "pending"}
    monkeypatch.setenv("LEADERBOARD_WORKER", "1")
    assert board._status(pending) == "pending: waiting for benchmark data (see the Leaderboard tab)"
    monkeypatch.setenv("LEADERBOARD_WORKER", "0")
    assert board._status(pending).startswith("pending: waiting for a worker")
    accepted = board._accepted_message({"id": "x", "model_name": "m", "protocol": None})
    assert "ranked only with **Show every model**" in accepted


def test_the_seeding_status_line(monkeypatch):
    from leaderboard.service import seed
    from space import board

    monkeypatch.setattr(seed, "_status", seed.SeedStatus("seeding", 7, 21, "fsanet_caps_var.biwi"))
    assert "Scoring the registry's models: 7/21 (now `fsanet_caps_var.biwi`)" in board._seeding_line()
    skipped = [{"model": "m.x", "benchmark": "aflw2000", "reason": "set FSANET_OFFICIAL_MIRROR"}]
    monkeypatch.setattr(seed, "_status", seed.SeedStatus("done", 21, 21, "", 0, skipped))
    assert "None of the registry's models could be scored" in board._seeding_line()


def test_seed_lists_every_skip_and_fails_when_nothing_was_scored(tmp_path, monkeypatch, capsys):
    from leaderboard.cli import main
    from tests.test_leaderboard_submissions import synthetic_benchmark

    monkeypatch.setenv("LEADERBOARD_DATA_AFLW2000", str(synthetic_benchmark(tmp_path / "aflw2000", 8)))
    monkeypatch.setenv("FSANET_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("FSANET_OFFICIAL_MIRROR", str(tmp_path / "no-mirror"))
    argv = ["seed", "--models", "fsanet_caps_1x1.biwi", "ssrnet_md.biwi", "--results", str(tmp_path / "b")]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    skipped = [line for line in err if line.startswith("skipped ")]
    assert [line.split(":")[0] for line in skipped] == [
        "skipped fsanet_caps_1x1.biwi on aflw2000",
        "skipped ssrnet_md.biwi on aflw2000",
    ]
    assert all("FSANET_OFFICIAL_MIRROR" in line for line in skipped)
    assert err[-1] == "error: nothing could be seeded: all 2 evaluations were skipped"


@pytest.mark.slow
def test_a_fresh_space_ranks_the_registry_models_by_itself(tmp_path):
    """The README's app command with the weight mirrors and the AFLW2000 sample, nothing else: the
    Leaderboard tab ranks at least ten AFLW2000 rows (the time it took is printed)."""
    from gradio_client import Client

    require_shared(OFFICIAL)
    env = {"LEADERBOARD_SEED": "1", "LEADERBOARD_DATA_AFLW2000": str(require_shared(AFLW_SAMPLE))}
    start = time.monotonic()
    with serve_app(tmp_path / "board", tmp_path / "app.log", **env) as url:
        client = Client(url, verbose=False)
        deadline = time.monotonic() + 420
        while True:
            board = client.predict("", "aflw2000", api_name="/leaderboard")
            source = board["headers"].index("source")  # the papers' numbers follow, unranked
            measured = [row for row in board["data"] if row[source] == "measured here"]
            if len(measured) >= 10:
                break
            assert time.monotonic() < deadline, f"{len(measured)} rows after 7 minutes"
            time.sleep(2)
    print(f"\n{len(measured)} ranked AFLW2000 rows {time.monotonic() - start:.0f} s after the app started")
    ranks = [row[board["headers"].index("rank")] for row in measured]
    assert ranks == sorted(ranks) and ranks[0] == 1
