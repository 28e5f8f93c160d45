"""The board keeps protocols apart, ranks by mean MAE, flags small test sets, and its plots stay readable."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsanet.models.base import gflops_per_face
from fsanet.models.registry import method_of, provenance
from leaderboard.cli import main
from leaderboard.display.columns import board_frame, board_frame_with_reported
from leaderboard.display.downloads import download_frame, format_table
from leaderboard.display.plots import (
    FIGURES,
    LEGEND_ROW_HEIGHT,
    PALETTE,
    TITLE_MARGIN,
    board_figures,
    cumulative_figure,
    mae_bars,
    robustness_figure,
)
from leaderboard.display.views import ABOUT, FLAG, MAX_SEARCH, board_view, styled
from leaderboard.protocol.metrics import summarize
from leaderboard.storage.results import ResultsStore
from tests.conftest import write_result

# (name, method, trained on, protocol, noise of its predictions in degrees, number of samples)
MODELS = (
    ("fsanet_caps_1x1.300w_lp", "FSA-Net", "300W-LP", "protocol 1", 4.0, 150),
    ("whenet.300w_lp_panoptic", "WHENet", "300W-LP + CMU Panoptic", "protocol 1", 3.0, 150),
    ("fsanet_caps_1x1.biwi", "FSA-Net", "BIWI 70%", "protocol 2", 1.0, 150),  # best, but the wrong protocol
    ("tiny_run", "FSA-Net", "300W-LP", "protocol 1", 5.0, 40),
    ("silent_upload", "FSA-Net", None, None, 6.0, 150),  # says nothing: ranked nowhere, shown on request
)


def _write(store: ResultsStore, name, method, trained_on, protocol, noise, n, benchmark="aflw2000"):
    rng = np.random.default_rng(int(noise * 10))
    labels = rng.uniform(-80, 80, (n, 3))
    pred = labels + rng.normal(0, noise, labels.shape)
    ids = [f"s{i}" for i in range(n)]
    scores = summarize(ids, pred, labels)
    scores["robustness"] = [
        {"angle": 0.0, "flip": f, "mae": noise, "geodesic_mean": noise} for f in (False, True)
    ]
    stated = {"trained_on": trained_on, "model_protocol": protocol} if protocol else {}
    config = {"method": method, "params": 1000, "gflops": 0.0123456, "input_size": 64, **stated}
    namespace = "official" if "." in name else "community"  # registry names are official rows only
    write_result(store, name, scores, benchmark, namespace, **config)


@pytest.fixture
def board_root(tmp_path):
    store = ResultsStore(tmp_path, repo="")
    for model in MODELS:
        _write(store, *model)
    _write(store, *MODELS[2], benchmark="biwi_70_30")
    return tmp_path


@pytest.fixture
def table(board_root):
    return board_frame(ResultsStore(board_root, repo="").snapshot())


def test_default_view_ranks_only_the_benchmarks_protocol(table):
    view = board_view(table, "aflw2000")
    assert "fsanet_caps_1x1.biwi" not in set(view["model"])
    expected = ["whenet.300w_lp_panoptic", "fsanet_caps_1x1.300w_lp", "tiny_run"]  # silent_upload: unranked
    assert list(view["model"]) == expected
    assert list(view["rank"]) == [1, 2, 3] and view["mean"].astype(float).is_monotonic_increasing
    assert list(board_view(table, "biwi_70_30")["model"]) == ["fsanet_caps_1x1.biwi"]
    everything = board_view(table, "aflw2000", show_all=True)
    assert everything["model"].iloc[0] == "fsanet_caps_1x1.biwi" and len(everything) == 5
    assert everything["trained on"].iloc[-1] == "not stated"  # shown with every model, labelled
    assert len(board_view(table)) == 4  # all benchmarks: each row judged by its own benchmark's protocol


def test_columns_flags_and_rounding(table):
    view = board_view(table, "aflw2000")
    assert list(view.columns) == ["rank", "model", "method", "trained on", "yaw", "pitch", "roll", "mean"] + [
        "params",
        "GFLOPs",
        "input",
        "n",
        "source",
        "measured - reported",
    ]
    flags = dict(zip(view["model"], view["n"], strict=True))
    assert flags["tiny_run"] == f"40 {FLAG}" and flags["whenet.300w_lp_panoptic"] == "150"
    assert all(round(v, 2) == v for v in view["mean"]) and view["GFLOPs"].iloc[0] == 0.01
    shown = styled(view).to_html()  # what the Space shows: two decimals everywhere
    assert ">0.01<" in shown and f">{view['mean'].iloc[0]:.2f}<" in shown
    wide = board_view(table, "aflw2000", technical=["weights", "dropped"])
    assert list(wide.columns[-2:]) == ["weights", "dropped"] and wide["weights"].str.len().eq(12).all()
    assert "benchmark" in board_view(table).columns
    with pytest.raises(ValueError, match="technical"):
        board_view(table, "aflw2000", technical=["secret"])


def test_search_filters_the_view(table):
    assert list(board_view(table, "aflw2000", search="WHEN")["model"]) == ["whenet.300w_lp_panoptic"]


def test_provenance_and_method_come_from_the_registry():
    assert provenance({}, "fsanet_caps_1x1.biwi") == ("BIWI 70%", "protocol 2")
    assert provenance({}, "my_upload") == (None, None)
    assert method_of({"architecture": "ensemble"}) == "FSA-Net (fusion)"


def test_gflops_come_from_torchs_flop_counter():
    import torch

    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)  # 2 * 3*3*3 * 8 * 32*32 multiply-adds
    assert gflops_per_face(conv, 32) == pytest.approx(2 * 27 * 8 * 32 * 32 / 1e9)


def test_plots_stay_readable_with_many_models(tmp_path):
    store = ResultsStore(tmp_path, repo="")
    names = [f"model_{i:02d}" for i in range(24)]
    for i, name in enumerate(names):
        _write(store, name, "FSA-Net", "300W-LP", "protocol 1", 1.0 + i / 10, 20)
    snapshot = store.snapshot()
    table, records = board_frame(snapshot), snapshot.rows
    bars = mae_bars(table, "aflw2000", names[:20])
    assert list(bars.data[0].x) == names[:20] and bars.layout.xaxis.dtick == 1  # every model named
    assert bars.layout.legend.orientation == "h" and bars.layout.legend.y > 1  # above: clear of the names
    curves = cumulative_figure(records, "aflw2000", "geodesic", names)
    colours = [trace.line.color for trace in curves.data]
    assert len(set(colours)) == 24 and colours[0] == PALETTE[0]
    assert curves.layout.height > 420 + 22 * 7  # grows with the legend
    sweep = robustness_figure(records, "aflw2000", models=names[:2])
    assert [t.name for t in sweep.data] == [
        "model_00",
        "model_00 (flipped)",
        "model_01",
        "model_01 (flipped)",
    ]


def test_about_explains_protocols_metrics_and_columns():
    for words in ("Protocol 1", "Protocol 2", "geodesic", "GFLOPs", "trained on", FLAG):
        assert words in ABOUT


def test_downloads_are_data_and_only_the_screen_rounds(table, board_root, capsys):
    """The Space's ``/results`` and ``leaderboard table --format csv|json``: the rank, every digit, counts as
    integers (once: no rank, JSON rounded to 10 decimals, the CLI's to 2 with ``n`` as "40 ⚠")."""
    view = board_view(table, "aflw2000")
    frame = download_frame(table, "aflw2000", show_all=False)
    assert list(frame["model"]) == list(view["model"]) and list(frame["rank"]) == list(view["rank"])
    stored = table.set_index("model")
    for fmt in ("csv", "json"):
        text = format_table(frame, fmt)
        records = pd.read_csv(io.StringIO(text)).to_dict("records") if fmt == "csv" else json.loads(text)
        assert [r["rank"] for r in records] == [1, 2, 3]
        for record in records:
            for field in ("mae", "mae_yaw", "geodesic_mean", "gflops"):
                assert record[field] == stored.loc[record["model"], field], (fmt, field)  # exactly
            assert type(record["n"]) is int and type(record["params"]) is int
        assert [r["n"] for r in records] == [150, 150, 40] and FLAG not in text
    everything = download_frame(table)  # the Space's download: every stored result
    assert len(everything) == len(table) and everything["rank"].notna().all()
    # The CLI prints the papers' numbers after the measured rows, as the Space downloads them.
    shown = board_frame_with_reported(ResultsStore(board_root, repo="").snapshot())
    printed = download_frame(shown, "aflw2000", show_all=False)
    measured = printed[printed["kind"] == "measured"]
    assert format_table(measured, "csv") == format_table(frame, "csv")  # the same data as the view's rows
    for fmt in ("csv", "json"):
        assert main(["table", "--format", fmt, "--benchmark", "aflw2000", "--results", str(board_root)]) == 0
        assert capsys.readouterr().out == format_table(printed, fmt)  # one function for the Space and the CLI
    assert main(["table", "--benchmark", "aflw2000", "--results", str(board_root)]) == 0
    assert f"| 40 {FLAG} |" in capsys.readouterr().out  # on screen: rounded and flagged


def test_searches_are_literal_text_of_bounded_length(table, board_root, capsys):
    assert list(board_view(table, "aflw2000", search="1x1.300")["model"]) == ["fsanet_caps_1x1.300w_lp"]
    for pattern in ("(", "[", ".*", "a{99999}"):  # patterns would fail, or match everything
        assert board_view(table, search=pattern, show_all=True).empty
    assert board_view(table, search="x" * MAX_SEARCH).empty
    with pytest.raises(ValueError, match=f"a search is at most {MAX_SEARCH} characters"):
        board_view(table, search="(" * 2_000_000)
    assert main(["table", "--search", "(" * 2_000_000, "--results", str(board_root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: a search is at most {MAX_SEARCH} characters") and err.count("\n") == 1


def test_plot_keeps_protocols_apart_and_ships_plotly_once_per_folder(board_root, tmp_path, capsys):
    """``leaderboard plot`` drew protocol-2 models in the AFLW2000 figures and inlined 4.8 MB of plotly in
    each HTML file."""
    argv = ["plot", "--benchmark", "aflw2000", "--results", str(board_root)]
    assert main([*argv, "--out", str(tmp_path / "figs")]) == 0
    written = [Path(path) for path in json.loads(capsys.readouterr().out)]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(
        [*(p.name for p in written), "plotly.min.js"]
    )
    assert all(path.stat().st_size < 100_000 for path in written)  # each refers to plotly.min.js
    drawn = "".join(path.read_text() for path in written)
    assert "fsanet_caps_1x1.biwi" not in drawn and "silent_upload" not in drawn  # ranked elsewhere / nowhere
    assert "whenet.300w_lp_panoptic" in drawn and "Cumulative MAE on aflw2000" in drawn
    assert main([*argv, "--out", str(tmp_path / "all"), "--all"]) == 0  # as table --all: every model
    drawn = "".join(Path(path).read_text() for path in json.loads(capsys.readouterr().out))
    assert "fsanet_caps_1x1.biwi" in drawn and "silent_upload" in drawn


def test_no_legend_overlaps_a_title(board_root):
    """A legend in rows above the plot grew into the title when a narrow figure (a PNG) wrapped it: the
    title is alone in the top margin, a long legend beside the plot, the figure as tall as the legend."""
    figures = board_figures(ResultsStore(board_root, repo="").snapshot(), "aflw2000", show_all=True)
    assert list(figures) == list(FIGURES)
    for name, fig in figures.items():
        layout, entries = fig.layout, sum(t.showlegend is not False for t in fig.data)
        assert layout.title.yref == "container" and layout.title.yanchor == "top", name
        if layout.legend.orientation == "h":  # the bars' yaw, pitch, roll, mean: one row under the title
            assert entries <= 4 and layout.legend.y > 1 and layout.legend.yanchor == "bottom", name
            assert layout.margin.t >= TITLE_MARGIN + LEGEND_ROW_HEIGHT, name
        else:
            assert layout.legend.x > 1 and layout.legend.y <= 1 and layout.legend.yanchor == "top", name
            assert layout.height >= layout.margin.t + layout.margin.b + LEGEND_ROW_HEIGHT * entries, name
    assert "Cumulative mae error" not in figures["cumulative_mae"].layout.title.text
