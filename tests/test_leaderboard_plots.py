"""The board's plotly figures show the stored numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaderboard.display.columns import board_frame
from leaderboard.display.plots import (
    cumulative_figure,
    mae_bars,
    robustness_figure,
    save_figure,
    scatter_figure,
    yaw_bin_figure,
)
from leaderboard.protocol.metrics import summarize
from leaderboard.storage.results import ResultsStore
from tests.conftest import write_result


@pytest.fixture
def store(tmp_path):
    store = ResultsStore(tmp_path, repo="")
    rng = np.random.default_rng(0)
    labels = rng.uniform(-80, 80, (40, 3))
    ids = [f"s{i}" for i in range(40)]
    for model, noise in (("good", 2.0), ("bad", 9.0)):
        pred = labels + rng.normal(0, noise, labels.shape)
        scores = summarize(ids, pred, labels)
        scores["robustness"] = [
            {"angle": a, "flip": f, "mae": noise + abs(a) / 10, "geodesic_mean": 2 * noise}
            for f in (False, True)
            for a in (-15.0, 0.0, 15.0)
        ]
        frame = pd.DataFrame({"sample_id": ids})
        for i, axis in enumerate(("yaw", "pitch", "roll")):
            frame[f"true_{axis}"], frame[f"pred_{axis}"] = labels[:, i], pred[:, i]
        write_result(store, model, scores, predictions=frame)
    return store


def test_figures_carry_the_stored_numbers(store, tmp_path):
    snapshot = store.snapshot()
    table, rows = board_frame(snapshot), snapshot.rows
    bars = mae_bars(table, "aflw2000")
    yaw_bar = next(t for t in bars.data if t.name == "yaw")
    assert list(yaw_bar.x) == list(table["model"]) and list(yaw_bar.y) == list(table["mae_yaw"])
    assert table["model"].tolist() == ["good", "bad"]  # best first

    by_model = {row.model_name: row for row in rows}
    bins = {t.name: t for t in yaw_bin_figure(rows, "aflw2000").data}
    assert list(bins["bad"].y) == [b.mae for b in by_model["bad"].mae_by_yaw_bin]
    curves = {t.name: t for t in cumulative_figure(rows, "aflw2000", "geodesic").data}
    assert list(curves["good"].y) == [c[1] for c in by_model["good"].cumulative_geodesic_curve]
    sweep = {t.name: t for t in robustness_figure(rows, "aflw2000").data}
    assert set(sweep) == {"good", "bad", "good (flipped)", "bad (flipped)"} and list(sweep["good"].x) == [
        -15,
        0,
        15,
    ]
    key = by_model["good"].key
    scatter = scatter_figure(store.predictions(key))
    assert len(scatter.data) == 6 and list(scatter.data[0].x) == store.predictions(key)["true_yaw"].tolist()

    html = save_figure(bars, tmp_path / "figs" / "bars.html")
    assert "plotly" in html.read_text()[:100000]
    with pytest.raises(ValueError, match="format"):
        save_figure(bars, tmp_path / "bars.svgz")
