"""Each piece of work done once: per request (submission and evaluation, its child process included), per
page load and per timer tick of the Space, per change of the store, per dataset revision. Counted
(:mod:`tests.work_counters`: deterministic), never timed; ``bench/bench_board_work.py`` reports the same
counts."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from leaderboard.display.columns import board_frame
from leaderboard.protocol.loading import load_benchmark, present_benchmarks
from leaderboard.service.submission import submit_directory
from leaderboard.service.worker import run_worker
from leaderboard.storage.results import ResultsStore
from leaderboard.storage.rows import read_row
from tests.conftest import ROOT, write_result
from tests.test_leaderboard_submissions import board, good_submission  # noqa: F401  (fixtures)
from tests.work_counters import children_counts, count_in_children, counting

# The targets: per request (its submission and its evaluation, in every process).
REQUEST_BUDGET = {"model builds": 3, "weight hashes": 2, "config validations": 2}
SCORES = {"mae": 3.0, "mae_yaw": 2.0, "mae_pitch": 3.0, "mae_roll": 4.0, "n": 200, "n_dropped": 0}


def test_one_request_builds_hashes_and_validates_within_budget_and_loads_its_data_once_per_process(
    board,  # noqa: F811
    good_submission,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """A submission and its evaluation by the worker (this process) and its isolated child (counted by a
    ``sitecustomize`` on its path): at most 3 model builds, 2 weight hashes and 2 config validations in all,
    and the benchmark loaded once in each process (about 40 s)."""
    folder = count_in_children(tmp_path / "child-counts", ROOT)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    )
    with counting() as here:
        submit_directory(good_submission, name="alice/caps")
        (done,) = run_worker()
    assert done.status == "finished", done.reason
    (child,) = children_counts(folder)
    total = here + child
    assert {what: total[what] for what in REQUEST_BUDGET} == {
        "model builds": 3,  # the submission's skeleton; in the child: the skeleton again, the model
        "weight hashes": 2,  # the submission's identity; the child's check of the stored files
        "config validations": 2,  # the submission's; the child's
    }
    assert (here["dataset loads"], child["dataset loads"]) == (1, 1)  # one revision, once per process


def test_a_dataset_is_loaded_and_hashed_once_per_revision(board, tmp_path):  # noqa: F811
    """Every look for data (the worker's, each evaluation's, the Space's) shares one load of a revision;
    a changed dataset is loaded again."""
    from leaderboard.protocol.data import write_dataset
    from tests.test_leaderboard_submissions import synthetic_rows

    with counting("dataset loads") as counts:
        first = load_benchmark("aflw2000")
        for _ in range(3):
            assert present_benchmarks() == ["aflw2000"] and load_benchmark("aflw2000") is first
    assert counts["dataset loads"] == 1
    write_dataset(synthetic_rows(8), Path(os.environ["LEADERBOARD_DATA_AFLW2000"]), {}, overwrite=True)
    with counting("dataset loads") as counts:
        changed = load_benchmark("aflw2000")
    assert counts["dataset loads"] == 1 and changed.revision != first.revision and len(changed.dataset) == 8


def test_the_board_is_parsed_once_per_change_and_its_table_made_once(tmp_path, monkeypatch):
    """Every view, plot and download of one state of the store shares one snapshot, each file parsed once;
    a new file makes a new snapshot, parsing only that file."""
    from leaderboard.storage import results

    parsed = []
    monkeypatch.setattr(results, "read_row", lambda data, name: parsed.append(name) or read_row(data, name))
    store = ResultsStore(tmp_path, repo="")
    write_result(store, "first", SCORES)
    with counting("tables made") as counts:
        snapshot = store.snapshot()
        for _ in range(3):
            assert store.snapshot() is snapshot and board_frame(store.snapshot()) is board_frame(snapshot)
    assert counts["tables made"] == 1 and len(parsed) == 1
    write_result(store, "second", SCORES)
    newer = store.snapshot()
    assert newer is not snapshot and newer.version != snapshot.version and len(newer.rows) == 2
    assert len(parsed) == 2 and any(row is snapshot.rows[0] for row in newer.rows)  # only the new one parsed


@pytest.fixture
def space_demo(board_dir, monkeypatch):
    """The Space's page, built as the app builds it, on a board with two rows (no worker, no seeding)."""
    monkeypatch.setenv("LEADERBOARD_DIR", str(board_dir))
    monkeypatch.setenv("LEADERBOARD_WORKER", "0")
    monkeypatch.setenv("LEADERBOARD_SEED", "0")
    from space import runtime, ui

    # The Photo tab's weights banner (a page-load event too) loads model weights: not the board's work.
    monkeypatch.setattr(runtime, "weights_status", lambda name: None)
    return ui.build_demo()


def _run_events(demo, event: str, block_id: int | None = None) -> Counter:
    """Run every function the page runs on ``event`` (of ``block_id``, or of any block) with the inputs'
    initial values; returns the work it did."""
    with counting("board reads") as counts:
        for function in demo.fns.values():
            if function.fn is None:  # a front-end-only event
                continue
            if any(name == event and block_id in (None, block) for block, name in function.targets):
                function.fn(*[component.value for component in function.inputs])
    return counts


def test_a_page_load_and_a_timer_tick_read_the_board_once(space_demo):
    """Everything the Leaderboard tab shows (status line, table, five figures) comes from one read of the
    board on a page load, and one on each tick of its timer; the queue's timer reads no board."""
    from gradio.components import Timer

    assert _run_events(space_demo, "load")["board reads"] == 1
    timers = [block for block in space_demo.blocks.values() if isinstance(block, Timer)]
    reads = sorted(_run_events(space_demo, "tick", timer._id)["board reads"] for timer in timers)
    assert reads == [0, 1]  # the queue's timer, the board's timer
