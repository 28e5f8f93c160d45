"""The board keeps protocols apart, ranks by mean MAE, flags small test sets, and its plots stay readable."""

from __future__ import annotations

import numpy as np
import pytest

from fsanet.models.base import gflops_per_face
from fsanet.models.registry import method_of, provenance
from leaderboard.display.columns import board_frame
from leaderboard.display.plots import PALETTE, cumulative_figure, mae_bars, robustness_figure
from leaderboard.display.views import ABOUT, FLAG, board_view, styled
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
def table(tmp_path):
    store = ResultsStore(tmp_path, repo="")
    for model in MODELS:
        _write(store, *model)
    _write(store, *MODELS[2], benchmark="biwi_70_30")
    return board_frame(store.snapshot())


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
