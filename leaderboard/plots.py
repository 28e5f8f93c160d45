"""Plotly figures of the board: returned as figures for the Space, savable as HTML (or PNG with kaleido)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .metrics import AXES


def _scores(
    records: Sequence[dict[str, Any]], benchmark: str, needs: str
) -> list[tuple[str, dict[str, Any]]]:
    """``(model, scores)`` of the records on ``benchmark`` that hold ``needs`` (optional keys may lack)."""
    return [
        (r["config"]["model_name"], r["results"][benchmark])
        for r in records
        if r["config"]["benchmark"] == benchmark and isinstance(r["results"][benchmark].get(needs), list)
    ]


def mae_bars(table: pd.DataFrame, benchmark: str) -> go.Figure:
    """Per-axis MAE bars, one group per model (``table`` as from ``ResultsStore.table()``)."""
    rows = table[table["benchmark"] == benchmark]
    fig = go.Figure([go.Bar(name=axis, x=rows["model"], y=rows[f"mae_{axis}"]) for axis in AXES])
    fig.add_trace(
        go.Scatter(name="mean", x=rows["model"], y=rows["mae"], mode="markers", marker_symbol="diamond")
    )
    return fig.update_layout(barmode="group", title=f"MAE per axis on {benchmark}", yaxis_title="MAE (deg)")


def yaw_bin_figure(records: Sequence[dict[str, Any]], benchmark: str) -> go.Figure:
    """Mean MAE against |true yaw| bin, one line per model."""
    fig = go.Figure()
    for model, scores in _scores(records, benchmark, "mae_by_yaw_bin"):
        bins = scores["mae_by_yaw_bin"]
        fig.add_trace(go.Scatter(name=model, x=[b["bin"] for b in bins], y=[b["mae"] for b in bins]))
    return fig.update_layout(
        title=f"MAE by |yaw| on {benchmark}", xaxis_title="|yaw| (deg)", yaxis_title="MAE"
    )


def cumulative_figure(records: Sequence[dict[str, Any]], benchmark: str, kind: str = "mae") -> go.Figure:
    """Fraction of samples with error <= threshold (``kind`` = ``mae`` or ``geodesic``)."""
    fig = go.Figure()
    for model, scores in _scores(records, benchmark, f"cumulative_{kind}_curve"):
        curve = scores[f"cumulative_{kind}_curve"]
        fig.add_trace(go.Scatter(name=model, x=[c[0] for c in curve], y=[c[1] for c in curve]))
    return fig.update_layout(
        title=f"Cumulative {kind} error on {benchmark}",
        xaxis_title="error threshold (deg)",
        yaxis_title="fraction of samples",
        yaxis_range=[0, 1],
    )


def scatter_figure(predictions: pd.DataFrame, title: str = "") -> go.Figure:
    """Predicted against true angle per axis (``predictions`` as from ``ResultsStore.predictions``)."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=AXES)
    for col, axis in enumerate(AXES, start=1):
        true, pred = predictions[f"true_{axis}"], predictions[f"pred_{axis}"]
        fig.add_trace(
            go.Scattergl(x=true, y=pred, mode="markers", name=axis, text=predictions["sample_id"]),
            row=1,
            col=col,
        )
        low, high = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
        fig.add_trace(
            go.Scatter(x=[low, high], y=[low, high], mode="lines", line_dash="dash", showlegend=False),
            row=1,
            col=col,
        )
    return fig.update_layout(title=title or "predicted vs true (deg)")


def robustness_figure(records: Sequence[dict[str, Any]], benchmark: str, metric: str = "mae") -> go.Figure:
    """Error against in-plane rotation angle, with and without a horizontal flip, one line per model."""
    fig = go.Figure()
    for model, scores in _scores(records, benchmark, "robustness"):
        sweep = scores["robustness"]
        for flip in (False, True):
            points = [s for s in sweep if s["flip"] == flip]
            name = f"{model} (flipped)" if flip else model
            fig.add_trace(
                go.Scatter(
                    name=name,
                    x=[p["angle"] for p in points],
                    y=[p[metric] for p in points],
                    line_dash="dot" if flip else "solid",
                )
            )
    return fig.update_layout(
        title=f"Robustness on {benchmark}", xaxis_title="in-plane rotation (deg, CCW)", yaxis_title=metric
    )


def save_figure(fig: go.Figure, path: str | Path) -> Path:
    """Write ``fig`` as ``.html`` (self-contained) or ``.png`` (needs the ``kaleido`` package)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".html":
        fig.write_html(path, include_plotlyjs=True)
    elif path.suffix == ".png":
        try:
            fig.write_image(path)
        except (ImportError, ValueError, RuntimeError) as err:
            raise RuntimeError(
                f"PNG export needs the kaleido package ({err}); save as .html instead"
            ) from err
    else:
        raise ValueError(f"unsupported figure format {path.suffix!r} (.html or .png)")
    return path
