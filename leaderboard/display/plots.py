"""Plotly figures of the board: returned as figures for the Space, savable as HTML (or PNG with kaleido).

Readable with 20+ models: one distinct colour per model (48 before any repeats), the legend below the plot,
every category tick labelled, the height growing with the legend. ``models`` (every figure but the scatter)
keeps only those models, in that order: the Space passes the rows its table shows. Figures take the board's
results table (:func:`~.columns.board_frame`) or its rows (:attr:`BoardSnapshot.rows
<leaderboard.storage.results.BoardSnapshot.rows>`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..protocol.metrics import AXES
from ..storage.rows import MeasuredRow

PALETTE = plotly.colors.qualitative.Dark24 + plotly.colors.qualitative.Light24
AXIS_COLOURS = {"yaw": "#d62728", "pitch": "#2ca02c", "roll": "#1f77b4", "mean": "#111111"}
PLOT_HEIGHT = 420
LEGEND_ROW_HEIGHT = 22  # pixels per legend row below the plot


def _scores(
    rows: Sequence[MeasuredRow], benchmark: str, needs: str, models: Collection[str] | None = None
) -> list[tuple[str, Any]]:
    """``(model, its field needs)`` of the rows on ``benchmark`` that hold ``needs`` (optional fields may
    lack), in the order of ``models`` when given (only those)."""
    found = {
        row.model_name: getattr(row, needs)
        for row in rows
        if row.benchmark == benchmark and getattr(row, needs, None) is not None
    }
    order = list(models) if models is not None else list(found)
    return [(model, found[model]) for model in order if model in found]


def _readable(fig: go.Figure, legend_entries: int, title: str) -> go.Figure:
    """Legend above the plot area (below it, it would cover the rotated model names of the x axis), in rows of
    about three entries, with room for it; every category tick labelled."""
    legend_rows = max(1, -(-legend_entries // 3))
    return fig.update_layout(
        title={"text": title, "y": 1.0, "yanchor": "top", "pad": {"t": 8}},
        height=PLOT_HEIGHT + LEGEND_ROW_HEIGHT * legend_rows,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
        margin={"t": 50 + LEGEND_ROW_HEIGHT * legend_rows},
    )


def no_results_figure(title: str, benchmark: str) -> go.Figure:
    """A figure that says so, in place of empty axes."""
    fig = go.Figure()
    fig.add_annotation(text=f"No results for {benchmark}", showarrow=False, font={"size": 16}, x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig.update_layout(title=f"{title} on {benchmark}", height=PLOT_HEIGHT)


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def mae_bars(table: pd.DataFrame, benchmark: str, models: Collection[str] | None = None) -> go.Figure:
    """Per-axis MAE bars, one group per model (``table``: :func:`~.columns.board_frame`), best first."""
    rows = table[table["benchmark"] == benchmark]
    if models is not None:
        order = {model: i for i, model in enumerate(models)}
        rows = rows[rows["model"].isin(order)].sort_values("model", key=lambda names: names.map(order))
    fig = go.Figure(
        [
            go.Bar(name=axis, x=rows["model"], y=rows[f"mae_{axis}"], marker_color=AXIS_COLOURS[axis])
            for axis in AXES
        ]
    )
    fig.add_trace(
        go.Scatter(
            name="mean",
            x=rows["model"],
            y=rows["mae"],
            mode="markers",
            marker={"symbol": "diamond", "size": 10, "color": AXIS_COLOURS["mean"]},
        )
    )
    fig.update_xaxes(tickmode="linear", dtick=1, tickangle=-40, automargin=True)  # every model named
    fig.update_layout(barmode="group", yaxis_title="MAE (deg)")
    return _readable(fig, len(AXES) + 1, f"MAE per axis on {benchmark}")


def yaw_bin_figure(
    rows: Sequence[MeasuredRow], benchmark: str, models: Collection[str] | None = None
) -> go.Figure:
    """Mean MAE against |true yaw| bin, one line per model."""
    fig = go.Figure()
    scores_by_model = _scores(rows, benchmark, "mae_by_yaw_bin", models)
    for index, (model, bins) in enumerate(scores_by_model):
        fig.add_trace(
            go.Scatter(
                name=model, x=[b.bin for b in bins], y=[b.mae for b in bins], line_color=_colour(index)
            )
        )
    fig.update_xaxes(tickmode="linear", dtick=1)
    fig.update_layout(xaxis_title="|yaw| (deg)", yaxis_title="MAE (deg)")
    return _readable(fig, len(scores_by_model), f"MAE by |yaw| on {benchmark}")


def cumulative_figure(
    rows: Sequence[MeasuredRow],
    benchmark: str,
    kind: str = "mae",
    models: Collection[str] | None = None,
) -> go.Figure:
    """Fraction of samples with error <= threshold (``kind`` = ``mae`` or ``geodesic``)."""
    fig = go.Figure()
    scores_by_model = _scores(rows, benchmark, f"cumulative_{kind}_curve", models)
    for index, (model, curve) in enumerate(scores_by_model):
        fig.add_trace(
            go.Scatter(
                name=model, x=[c[0] for c in curve], y=[c[1] for c in curve], line_color=_colour(index)
            )
        )
    fig.update_xaxes(dtick=5)
    fig.update_layout(
        xaxis_title="error threshold (deg)", yaxis_title="fraction of samples", yaxis_range=[0, 1]
    )
    return _readable(fig, len(scores_by_model), f"Cumulative {kind} error on {benchmark}")


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


def robustness_figure(
    rows: Sequence[MeasuredRow],
    benchmark: str,
    metric: str = "mae",
    models: Collection[str] | None = None,
) -> go.Figure:
    """Error against in-plane rotation angle, with and without a horizontal flip, one colour per model."""
    fig = go.Figure()
    scores_by_model = _scores(rows, benchmark, "robustness", models)
    for index, (model, sweep) in enumerate(scores_by_model):
        for flip in (False, True):
            points = [point for point in sweep if point.flip == flip]
            name = f"{model} (flipped)" if flip else model
            fig.add_trace(
                go.Scatter(
                    name=name,
                    x=[point.angle for point in points],
                    y=[getattr(point, metric) for point in points],
                    line={"dash": "dot" if flip else "solid", "color": _colour(index)},
                )
            )
    fig.update_xaxes(tickmode="linear", dtick=15)
    fig.update_layout(xaxis_title="in-plane rotation (deg, CCW)", yaxis_title=f"{metric} (deg)")
    return _readable(fig, 2 * len(scores_by_model), f"Robustness ({metric}) on {benchmark}")


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
