"""Plotly figures of the board: returned as figures for the Space, savable as HTML (or PNG with kaleido).

Readable with 20+ models: one distinct colour per model (48 before any repeats), the title alone above
the plot, the legend beside it with the height growing with it, every category tick labelled. ``models``
(every figure but the scatter) keeps only those models, in that order: :func:`board_figures` passes the
rows a view shows, for the Space and ``leaderboard plot``. Figures take the board's results table
(:func:`~.columns.board_frame`) or its rows (:attr:`BoardSnapshot.rows
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
from ..storage.results import BoardSnapshot
from ..storage.rows import MeasuredRow
from .columns import board_frame
from .views import ranked_rows

PALETTE = plotly.colors.qualitative.Dark24 + plotly.colors.qualitative.Light24
AXIS_COLOURS = {"yaw": "#d62728", "pitch": "#2ca02c", "roll": "#1f77b4", "mean": "#111111"}
PLOT_HEIGHT = 420
PNG_WIDTH = 1200  # pixels: the width of the Space's figures, so that a PNG's legend wraps as on the page
# The board's figures of a benchmark, in the Space's order: the name of each (a file stem) and its label.
FIGURES = {
    "mae_bars": "MAE per axis",
    "mae_by_yaw": "MAE by |yaw|",
    "cumulative_mae": "Cumulative MAE",
    "cumulative_geodesic": "Cumulative geodesic error",
    "robustness": "Robustness",
}
LEGEND_ROW_HEIGHT = 22  # pixels per line of a legend
TITLE_MARGIN = 60  # pixels above the plot: the title's alone
BOTTOM_MARGIN = 80  # pixels below the plot: the x axis' ticks and title
TICK_CHAR_HEIGHT = 4  # pixels of height per character of a model name slanted under the bars


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


def _readable(fig: go.Figure, title: str, legend_on_top: bool = False) -> go.Figure:
    """The title alone in the top margin; the legend beside the plot, one entry a line, the figure as tall as
    the legend (nothing overlaps the title at any width, and a PNG cuts nothing). ``legend_on_top``: the
    bars' four axes, in one row between the title and the plot (beside it, it would narrow the names)."""
    title_layout = {"text": title, "yref": "container", "y": 1.0, "yanchor": "top", "pad": {"t": 12}}
    if legend_on_top:
        return fig.update_layout(
            title=title_layout,
            height=PLOT_HEIGHT,
            legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0},
            margin={"t": TITLE_MARGIN + LEGEND_ROW_HEIGHT},
        )
    entries = sum(trace.showlegend is not False for trace in fig.data)
    return fig.update_layout(
        title=title_layout,
        height=max(PLOT_HEIGHT, TITLE_MARGIN + BOTTOM_MARGIN + LEGEND_ROW_HEIGHT * entries),
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.02},
        margin={"t": TITLE_MARGIN, "b": BOTTOM_MARGIN},
    )


def no_results_figure(title: str, benchmark: str, note: str = "") -> go.Figure:
    """A figure that says so (and ``note``: why), in place of empty axes."""
    fig = go.Figure()
    text = f"No results for {benchmark}" + (f"<br>({note})" if note else "")
    fig.add_annotation(text=text, showarrow=False, font={"size": 16}, x=0.5, y=0.5)
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
    fig = _readable(fig, f"MAE per axis on {benchmark}", legend_on_top=True)
    longest = max((len(str(name)) for name in rows["model"]), default=0)
    return fig.update_layout(height=PLOT_HEIGHT + TICK_CHAR_HEIGHT * longest)  # room for the slanted names


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
    return _readable(fig, f"MAE by |yaw| on {benchmark}")


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
    what = {"mae": "Cumulative MAE", "geodesic": "Cumulative geodesic error"}[kind]
    return _readable(fig, f"{what} on {benchmark}")


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
    return _readable(fig, f"Robustness ({metric}) on {benchmark}")


def board_figures(
    snapshot: BoardSnapshot, benchmark: str, show_all: bool = False, search: str | None = ""
) -> dict[str, go.Figure]:
    """The figures (:data:`FIGURES`) of the models ``benchmark``'s view shows, in its order: its protocol's
    (every model with ``show_all``) whose name contains ``search``; empty when it shows none. The Space and
    ``leaderboard plot`` both draw these."""
    table = board_frame(snapshot)
    models = ranked_rows(table, benchmark, show_all, search)["model"].tolist()
    if not models:
        return {}
    rows = snapshot.rows
    return {
        "mae_bars": mae_bars(table, benchmark, models),
        "mae_by_yaw": yaw_bin_figure(rows, benchmark, models),
        "cumulative_mae": cumulative_figure(rows, benchmark, "mae", models),
        "cumulative_geodesic": cumulative_figure(rows, benchmark, "geodesic", models),
        "robustness": robustness_figure(rows, benchmark, "mae", models),
    }


def save_figure(fig: go.Figure, path: str | Path) -> Path:
    """Write ``fig`` as ``.html`` (plotly's library beside it, once per folder: ``plotly.min.js``) or
    ``.png`` (:data:`PNG_WIDTH` wide at twice the pixels; needs the ``kaleido`` package)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".html":
        fig.write_html(path, include_plotlyjs="directory")
    elif path.suffix == ".png":
        try:
            fig.write_image(path, width=PNG_WIDTH, height=fig.layout.height, scale=2)
        except (ImportError, ValueError, RuntimeError) as err:
            raise RuntimeError(
                f"PNG export needs the kaleido package ({err}); save as .html instead"
            ) from err
    else:
        raise ValueError(f"unsupported figure format {path.suffix!r} (.html or .png)")
    return path
