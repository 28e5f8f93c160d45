"""What the board shows: protocols kept apart, ranked by mean MAE, small test sets flagged, the papers' own
numbers beside (never among) the measured ones, and what it means.

:func:`board_view` turns the results table (:func:`leaderboard.display.columns.board_frame`, or
:func:`~leaderboard.display.columns.board_frame_with_reported` with the papers' numbers) into the displayed
table. A benchmark's view ranks only the models trained for its protocol: a protocol-2 model, trained on
BIWI's 70 %, never ranks on AFLW2000, and a model that does not state its protocol ranks nowhere;
``show_all`` lifts that (unstated rows then say "not stated"). Reported rows have no rank and follow the
measured rows of their benchmark. :data:`ABOUT` explains protocols, metrics, reported numbers and columns.
"""

from __future__ import annotations

import pandas as pd
from pandas.io.formats.style import Styler

from ..protocol.benchmarks import BENCHMARKS
from ..protocol.reported import declared
from .columns import COLUMNS, HASH_CHARS, MEASURED, REPORTED, SOURCES, TECHNICAL

ALL = "all"
PROTOCOLS = ("protocol 1", "protocol 2")
SMALL_TEST_SET = 100  # fewer samples than this: the MAE is flagged as unreliable
FLAG = "⚠"
DECIMALS = 2  # every angle and GFLOPs value is shown with two decimals
# A paper's number, set apart from the measured rows; a translucent tint reads on light and dark themes.
REPORTED_STYLE = "font-style: italic; background-color: rgba(128, 90, 213, 0.14)"
MAX_SEARCH = 200  # characters: more than any name (80) holds


def protocol_rows(table: pd.DataFrame) -> pd.Series:
    """True where the model was trained for the protocol of the benchmark the row is on."""
    return table["model_protocol"].eq(table["protocol"]) & table["protocol"].notna()


def search_text(search: str | None) -> str:
    """A search as the board takes it: literal text (never a pattern), at most :data:`MAX_SEARCH`
    characters, else ValueError (one line)."""
    search = (search or "").strip()
    if len(search) > MAX_SEARCH:
        raise ValueError(
            f"a search is at most {MAX_SEARCH} characters of a model's name ({len(search)} given)"
        )
    return search


def ranked_rows(
    table: pd.DataFrame, benchmark: str = ALL, show_all: bool = False, search: str | None = ""
) -> pd.DataFrame:
    """The rows of the results table a view shows (``benchmark``'s, of its protocol unless ``show_all``,
    names containing ``search``), best mean MAE first, with their ``rank`` by mean MAE within each
    benchmark (measured rows only: the papers' reported rows follow each benchmark's, unranked): the view
    and the downloads (:func:`~.downloads.download_frame`) both come from here."""
    search = search_text(search)
    rows = table
    if benchmark != ALL:
        rows = rows[rows["benchmark"] == benchmark]
    if not show_all:
        rows = rows[protocol_rows(rows)]
    if search:
        rows = rows[rows["model"].str.contains(search, case=False, regex=False)]
    rows = _measured_first(rows)
    measured = rows["kind"].eq(MEASURED)
    ranks = rows[measured].groupby("benchmark")["mae"].rank(method="min").reindex(rows.index)
    return rows.assign(rank=ranks.astype("Int64"))[["rank", *rows.columns]]


def board_view(
    table: pd.DataFrame,
    benchmark: str = ALL,
    show_all: bool = False,
    search: str | None = "",
    technical: list[str] | tuple[str, ...] = (),
) -> pd.DataFrame:
    """The displayed board (:func:`ranked_rows`): ``rank`` by mean MAE within each benchmark (measured rows
    only: a reported row has none and follows them), angles and GFLOPs rounded to two decimals
    (:func:`styled` shows them so).

    ``n`` carries :data:`FLAG` under :data:`SMALL_TEST_SET` samples. ``technical`` names extra columns
    (:data:`~leaderboard.display.columns.TECHNICAL`; hashes shortened to 12 characters).
    """
    unknown = sorted(set(technical) - set(TECHNICAL))
    if unknown:
        raise ValueError(f"unknown columns {unknown}; technical columns: {', '.join(TECHNICAL)}")
    rows = ranked_rows(table, benchmark, show_all, search)
    shown = [
        column
        for column in COLUMNS
        if (not column.technical and (column.label != "benchmark" or benchmark == ALL))
        or column.label in technical
    ]
    view = pd.DataFrame({column.label: rows[column.field] for column in shown}, index=rows.index)
    view.insert(0, "rank", rows["rank"])
    view["source"] = rows["kind"].map(SOURCES)
    for column in shown:
        if column.kind in ("angle", "number"):
            view[column.label] = pd.to_numeric(view[column.label], errors="coerce").round(DECIMALS)
        elif column.kind == "hash":
            view[column.label] = view[column.label].str[:HASH_CHARS]
    measured = rows["kind"].eq(MEASURED)
    view["n"] = [
        "" if not is_measured else f"{n} {FLAG}" if n < SMALL_TEST_SET else str(n)
        for n, is_measured in zip(rows["n"], measured, strict=True)
    ]
    return view.reset_index(drop=True)


def _measured_first(rows: pd.DataFrame) -> pd.DataFrame:
    """Each benchmark's measured rows by mean MAE, then its reported rows by mean MAE."""
    order = rows.assign(_reported=rows["kind"].ne(MEASURED))
    order = order.sort_values(["benchmark", "_reported", "mae", "model"], ignore_index=True)
    return order.drop(columns="_reported")


def styled(view: pd.DataFrame) -> Styler:
    """``view`` for display: every angle and GFLOPs value with two decimals (the numbers stay numbers, so a
    column sorts by value), nothing shown where a value is missing, reported rows in italics on a tint."""
    decimals = [c.label for c in COLUMNS if c.kind in ("angle", "number") and c.label in view.columns]
    styler = view.style.format(na_rep="").format(f"{{:.{DECIMALS}f}}", subset=decimals, na_rep="")
    if "source" in view.columns:
        styler = styler.apply(_reported_style, axis=1)
    return styler.hide(axis="index")


def _reported_style(row: pd.Series) -> list[str]:
    return [REPORTED_STYLE if row["source"] == SOURCES[REPORTED] else "" for _ in row]


def _benchmark_lines() -> str:
    return "\n".join(
        f"* **{b.title}** (`{b.name}`, {b.protocol}): {b.description}" for b in BENCHMARKS.values()
    )


def _column_lines(technical: bool) -> str:
    return "\n".join(f"* **{c.label}**: {c.about}." for c in COLUMNS if c.technical == technical)


ABOUT = f"""
## Protocols

Head-pose papers report two protocols, and their numbers must never share a ranking:

* **Protocol 1**: trained without BIWI (300W-LP, possibly other sets such as CMU Panoptic), tested on
  AFLW2000 and on all of BIWI.
* **Protocol 2**: trained on 70 % of BIWI (16 sequences), tested on the other 30 % (8 sequences).

Every model states what it was trained on; every benchmark belongs to one protocol. A benchmark's view ranks
only the models of its protocol; **Show every model** lifts that (their rows then compare different things).
A submission states it with `"trained_on"` and `"protocol"` (`"protocol 1"` or `"protocol 2"`) in its
`config.json` (the Submit tab asks for them); one that does not is ranked in no protocol's view and shown
only with **Show every model**, as *not stated*.

Official rows are the registry's own models, scored by the board itself; every other row is a community
submission. A row belongs to the model that made it (its weights and config), not to a name: the same
weights and config cannot be submitted twice, nor under another name.

{_benchmark_lines()}

Each model cuts the face the way it was trained (its *recipe*: box margin, crop size, interpolation), from
the same stored photo and the same protocol face box: FSA-Net gets the authors' 64×64 crop, other families
their own.

## Metrics

* **MAE** (degrees): mean absolute error of yaw, pitch and roll, and their mean; samples with any
  |angle| > 99° are dropped on the protocol-1 benchmarks (the official filter). Lower is better; ranks follow
  the mean.
* **geodesic**: mean angle of the rotation between the predicted and the true head pose, free of the
  Euler-angle wrap-around.
* Results on fewer than {SMALL_TEST_SET} samples carry {FLAG} next to **n**: such an MAE is noisy.

## Reported numbers

Each benchmark also lists the numbers the papers report on it (**source** *reported*), quoted from the
paper's table: nothing here measured them, so they are never ranked; they follow the benchmark's measured
rows (*measured here*), in italics. Where the paper's own weights are on this board (the same registry
model), **measured - reported** is the board's mean MAE minus the paper's. The two can differ, by a degree
or more, without either being wrong:

* **the face crop**: each paper cuts the face from its own box (its detector, the landmarks, a tracker) with
  its own margin; the board cuts every model's crop from one protocol box, by the model's recipe;
* **the test set**: papers drop different samples (the ±99° filter, faces their detector missed), and on
  BIWI 70/30 each uses its own random split where the board uses fixed sequences;
* **the labels**: some papers re-derive the angles (their own landmark fit, another Euler order for BIWI);
* **the weights**: the number may come from another training run than the released weights, or from a
  model never released (shown under the paper's own name, without a difference);
* **the code**: resize filters, colour order, numeric precision.

The **paper** column (technical) says where each number is quoted from (every one is listed at the end of
this tab); downloads carry every row with its `kind` (`measured` or `reported`) and the difference.

## Columns

* **rank**: by mean MAE within the benchmark.
{_column_lines(technical=False)}

Technical columns (shown on request):

{_column_lines(technical=True)}

## Angles

`[yaw, pitch, roll]` in degrees with the signs of the AFLW2000 labels: yaw positive when the face turns
towards the image's left, pitch positive when it looks up, roll positive when the head tilts clockwise.
"""


def quoted_numbers() -> str:
    """Every paper number the board quotes, with where it is quoted from (Markdown, for the About tab)."""
    lines = [
        f"* **{method}** on {reported.benchmark}: {reported.mae[3]} (yaw {reported.mae[0]}, pitch "
        f"{reported.mae[1]}, roll {reported.mae[2]})"
        f"{f' for `{reported.model}`' if reported.model else f', {reported.label}' if reported.label else ''}"
        f": {reported.source}, {reported.table}"
        for method, reported in declared()
    ]
    return "## The papers' numbers quoted\n\n" + "\n".join(lines) + "\n"
