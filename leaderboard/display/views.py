"""What the board shows: protocols kept apart, ranked by mean MAE, small test sets flagged, and what it means.

:func:`board_view` turns the results table (:func:`leaderboard.display.columns.board_frame`) into the
displayed table. A benchmark's view ranks only the models trained for its protocol: a protocol-2 model,
trained on BIWI's 70 %, never ranks on AFLW2000, and a model that does not state its protocol ranks
nowhere; ``show_all`` lifts that (unstated rows then say "not stated"). :data:`ABOUT` explains protocols,
metrics and columns.
"""

from __future__ import annotations

import pandas as pd
from pandas.io.formats.style import Styler

from ..protocol.benchmarks import BENCHMARKS
from .columns import COLUMNS, HASH_CHARS, TECHNICAL

ALL = "all"
PROTOCOLS = ("protocol 1", "protocol 2")
SMALL_TEST_SET = 100  # fewer samples than this: the MAE is flagged as unreliable
FLAG = "⚠"
DECIMALS = 2  # every angle and GFLOPs value is shown with two decimals
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
    benchmark: the view and the downloads (:func:`~.downloads.download_frame`) both come from here."""
    search = search_text(search)
    rows = table
    if benchmark != ALL:
        rows = rows[rows["benchmark"] == benchmark]
    if not show_all:
        rows = rows[protocol_rows(rows)]
    if search:
        rows = rows[rows["model"].str.contains(search, case=False, regex=False)]
    rows = rows.sort_values(["benchmark", "mae", "model"], ignore_index=True)
    ranks = rows.groupby("benchmark")["mae"].rank(method="min").astype(int)
    return rows.assign(rank=ranks)[["rank", *rows.columns]]


def board_view(
    table: pd.DataFrame,
    benchmark: str = ALL,
    show_all: bool = False,
    search: str | None = "",
    technical: list[str] | tuple[str, ...] = (),
) -> pd.DataFrame:
    """The displayed board (:func:`ranked_rows`): ``rank`` by mean MAE within each benchmark, angles and
    GFLOPs rounded to two decimals (:func:`styled` shows them so).

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
    for column in shown:
        if column.kind in ("angle", "number"):
            view[column.label] = pd.to_numeric(view[column.label], errors="coerce").round(DECIMALS)
        elif column.kind == "hash":
            view[column.label] = view[column.label].str[:HASH_CHARS]
    view["n"] = [f"{n} {FLAG}" if n < SMALL_TEST_SET else str(n) for n in rows["n"].astype(int)]
    return view.reset_index(drop=True)


def styled(view: pd.DataFrame) -> Styler:
    """``view`` for display: every angle and GFLOPs value with two decimals (the numbers stay numbers, so a
    column sorts by value), nothing shown where a value is missing."""
    decimals = [c.label for c in COLUMNS if c.kind in ("angle", "number") and c.label in view.columns]
    return view.style.format(f"{{:.{DECIMALS}f}}", subset=decimals, na_rep="").hide(axis="index")


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

## Columns

* **rank**: by mean MAE within the benchmark.
{_column_lines(technical=False)}

Technical columns (shown on request):

{_column_lines(technical=True)}

## Angles

`[yaw, pitch, roll]` in degrees with the signs of the AFLW2000 labels: yaw positive when the face turns
towards the image's left, pitch positive when it looks up, roll positive when the head tilts clockwise.
"""
