"""The papers' reported numbers on the board: beside the measured rows, never ranked among them, the
difference to the measured row of the same model, and the distinction carried into the CLI and downloads."""

from __future__ import annotations

import io
import json
import logging

import pandas as pd
import pytest

from fsanet.models.catalogue import families
from fsanet.models.family import Reported
from leaderboard.cli import main as leaderboard_main
from leaderboard.display.columns import DIFFERENCE, board_frame, board_frame_with_reported
from leaderboard.display.downloads import download_frame, format_table
from leaderboard.display.views import ABOUT, REPORTED_STYLE, board_view, quoted_numbers, styled
from leaderboard.protocol import reported
from leaderboard.protocol.reported import WITHOUT_FAMILY, reported_rows
from leaderboard.storage.results import ResultsStore
from leaderboard.storage.rows import ReportedRow
from tests.conftest import write_result

MEASURED_6DREPNET = 4.5  # what "the board measured" for sixdrepnet.300w_lp on AFLW2000 (the paper: 3.97)
SCORES = {"mae_yaw": 4.0, "mae_pitch": 5.0, "mae_roll": 4.5, "n": 200, "n_dropped": 0}


@pytest.fixture
def store(tmp_path):
    store = ResultsStore(tmp_path, repo="")
    stated = {"trained_on": "300W-LP", "model_protocol": "protocol 1"}
    official = {**SCORES, "mae": MEASURED_6DREPNET}
    write_result(store, "sixdrepnet.300w_lp", official, namespace="official", method="6DRepNet", **stated)
    # A community model better than every paper's AFLW2000 number: still ranked first among the measured only.
    write_result(store, "my_variant", {**SCORES, "mae": 3.0}, method="FSA-Net", **stated)
    return store


def _paper(model: str, benchmark: str) -> ReportedRow:
    return next(r for r in reported_rows() if r.model_name == model and r.benchmark == benchmark)


def test_reported_rows_follow_the_measured_ones_unranked_with_their_difference(store):
    table = board_frame_with_reported(store.snapshot())
    view = board_view(table, "aflw2000")
    papers = [r for r in reported_rows() if r.benchmark == "aflw2000"]
    assert list(view["source"]) == ["measured here"] * 2 + ["reported"] * len(papers)
    assert list(view["model"][:2]) == ["my_variant", "sixdrepnet.300w_lp"]
    assert view["rank"][:2].tolist() == [1, 2] and view["rank"][2:].isna().all()  # papers never ranked
    assert view["mean"][2:].is_monotonic_increasing
    assert view["mean"].iloc[2] < view["mean"].iloc[1]  # a better paper number: still after
    assert (view["n"][2:] == "").all()
    differences = dict(zip(view["model"][2:], view["measured - reported"][2:], strict=True))
    expected = MEASURED_6DREPNET - _paper("sixdrepnet.300w_lp", "aflw2000").mae
    assert differences["sixdrepnet.300w_lp"] == pytest.approx(round(expected, 2))  # 4.50 - 3.97
    assert all(pd.isna(d) for model, d in differences.items() if model != "sixdrepnet.300w_lp")
    assert view["measured - reported"][:2].isna().all()  # measured rows carry none
    # Each benchmark keeps its own: the protocol-2 numbers only on BIWI 70/30, after its (no) measured rows.
    biwi_70_30 = board_view(table, "biwi_70_30")
    assert set(biwi_70_30["source"]) == {"reported"} and "TriNet" in set(biwi_70_30["model"])
    everything = board_view(table)
    for _, rows in everything.groupby("benchmark", sort=False):
        kinds = rows["source"].tolist()
        assert kinds == sorted(kinds, key=lambda kind: kind == "reported")  # measured first, per benchmark


def test_the_difference_pairs_only_the_official_row_of_the_same_model_and_benchmark(store, tmp_path):
    frame = board_frame_with_reported(store.snapshot())
    paired = frame[frame[DIFFERENCE].notna()]
    pair = ["sixdrepnet.300w_lp", "aflw2000", "reported"]
    assert paired[["model", "benchmark", "kind"]].values.tolist() == [pair]
    assert paired[DIFFERENCE].iloc[0] == pytest.approx(4.5 - 3.97, abs=1e-12)  # full precision in the table
    # Of two official rows of the model (another dataset revision), the one scored on the most samples.
    small = {"dataset_revision": "sha256:small", "n": 16, "mae": 9.0}
    row = next(r for r in store.snapshot().rows if r.namespace == "official").model_copy(update=small)
    store.write(row, pd.DataFrame({"sample_id": ["s0"]}))
    again = board_frame_with_reported(store.snapshot())
    assert again[again[DIFFERENCE].notna()][DIFFERENCE].iloc[0] == pytest.approx(4.5 - 3.97, abs=1e-12)
    # Without the model on the board there is nothing to compare with.
    empty = board_frame_with_reported(ResultsStore(tmp_path / "empty", repo="").snapshot())
    assert empty[DIFFERENCE].isna().all() and set(empty["kind"]) == {"reported"}


def test_the_measured_table_and_plots_hold_no_reported_rows(store):
    snapshot = store.snapshot()
    assert set(board_frame(snapshot)["kind"]) == {"measured"}  # what the figures are drawn from
    assert all(row.kind == "measured" for row in snapshot.rows)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_downloads_carry_the_kind_and_the_difference(store, fmt):
    text = format_table(download_frame(board_frame_with_reported(store.snapshot())), fmt)  # the Space's
    read = pd.read_csv if fmt == "csv" else lambda f: pd.read_json(f, orient="records")
    frame = read(io.StringIO(text))
    assert frame["kind"].value_counts().to_dict() == {"reported": len(reported_rows()), "measured": 2}
    measured, papers = frame[frame["kind"] == "measured"], frame[frame["kind"] == "reported"]
    assert measured["n"].tolist() == [200, 200] and papers["n"].isna().all()
    assert measured["rank"].tolist() == [1, 2] and papers["rank"].isna().all()
    paired = papers[papers[DIFFERENCE].notna()]
    assert paired["model"].tolist() == ["sixdrepnet.300w_lp"]
    assert paired[DIFFERENCE].iloc[0] == pytest.approx(4.5 - 3.97, abs=1e-9)
    assert papers["paper"].str.contains("Hempel").any() and measured["paper"].isna().all()
    if fmt == "csv":
        assert "200.0" not in text  # counts stay integers beside the reported rows' empty cells


def test_cli_table_shows_reported_rows_unranked(store, capsys):
    argv = ["table", "--benchmark", "aflw2000", "--results", str(store.root)]
    assert leaderboard_main([*argv, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in rows[:2]] == [1, 2] and all(r["rank"] is None for r in rows[2:])
    assert {r["kind"] for r in rows[2:]} == {"reported"} and len(rows) > 2  # the data, as downloaded
    paired = [r for r in rows if r["measured_minus_reported"] is not None]
    assert [r["model"] for r in paired] == ["sixdrepnet.300w_lp"]
    assert leaderboard_main(argv) == 0
    markdown = capsys.readouterr().out
    assert "| reported |" in markdown and "<NA>" not in markdown and "nan" not in markdown
    line = next(line for line in markdown.splitlines() if "sixdrepnet.300w_lp" in line and "reported" in line)
    assert line.startswith("|  | sixdrepnet.300w_lp |") and line.rstrip().endswith("| reported | 0.53 |")
    # Reported numbers alone are no results: a benchmark without measured rows is still said to have none.
    assert leaderboard_main(["table", "--benchmark", "biwi", "--results", str(store.root)]) == 2
    assert "no ranked results for biwi" in capsys.readouterr().err


def test_the_space_styles_reported_rows_apart(store):
    view = board_view(board_frame_with_reported(store.snapshot()), "aflw2000")
    styles = styled(view)._compute().ctx  # {(row, column): [(property, value)]}
    first_reported = int(view.index[view["source"] == "reported"][0])
    expected = [tuple(part.strip() for part in rule.split(":")) for rule in REPORTED_STYLE.split(";")]
    assert styles[(first_reported, 0)] == expected and ("font-style", "italic") in expected
    assert (0, 0) not in styles or not styles[(0, 0)]  # measured rows as before


def test_at_least_four_methods_and_each_declared_in_one_place():
    methods = {row.method for row in reported_rows()}
    expected = {"FSA-Net (fusion)", "HopeNet", "6DRepNet", "WHENet", "TriNet", "img2pose", "SynergyNet"}
    assert expected <= methods
    family_methods = {family.method for family in families().values() if family.reported}
    assert not family_methods & set(WITHOUT_FAMILY)  # a method with a family declares its numbers there
    for numbers in WITHOUT_FAMILY.values():
        for number in numbers:
            assert number.model is None and number.trained_on  # nothing of theirs is in the registry
            assert abs(sum(number.mae[:3]) / 3 - number.mae[3]) < 0.011, number
    assert "## Reported numbers" in ABOUT and "the face crop" in ABOUT
    quoted = quoted_numbers().splitlines()[2:]
    assert len(quoted) == len(reported_rows()) and any(line.startswith("* **img2pose**") for line in quoted)


def test_a_declaration_the_board_cannot_show_is_left_out_with_a_warning(monkeypatch, caplog):
    ones, paper = (1.0, 1.0, 1.0, 1.0), ("Someone, 2030", "Table 9")
    bad = (
        Reported("mpii", "protocol 1", ones, *paper),  # no such benchmark
        Reported("biwi_70_30", "protocol 1", ones, *paper),  # the benchmark is protocol 2
        Reported("aflw2000", "protocol 1", (-1.0, 1.0, 1.0, 1.0), *paper),  # not an error in degrees
        Reported("aflw2000", "protocol 1", ones, *paper, "no_such.tag"),  # not in the registry
    )
    monkeypatch.setitem(reported.WITHOUT_FAMILY, "Careless", bad)
    with caplog.at_level(logging.WARNING):
        rows = reported_rows()
    assert "Careless" not in {row.method for row in rows} and len(rows) == len(reported_rows()) > 0
    warnings = [r.getMessage() for r in caplog.records if "Careless" in r.getMessage()]
    assert len(warnings) == 4 and "not a benchmark" in warnings[0] and "protocol 2" in warnings[1]
