"""What the board shows: protocols kept apart, ranked by mean MAE, small test sets flagged, and what it means.

:func:`board_view` turns :meth:`ResultsStore.table` into the displayed table. By default a benchmark's view
holds only models trained for its protocol (a protocol-2 model, trained on BIWI's 70 %, never ranks on
AFLW2000); ``show_all`` lifts that. :data:`ABOUT` explains protocols, metrics and columns.
"""

from __future__ import annotations

import pandas as pd

from .config import BENCHMARKS
from .model_info import UNKNOWN

ALL = "all"
SMALL_TEST_SET = 100  # fewer samples than this: the MAE is flagged as unreliable
FLAG = "⚠"
# Displayed name -> column of ResultsStore.table(); rank and flagged n are computed here.
MAIN_COLUMNS = {
    "model": "model",
    "method": "method",
    "trained on": "trained_on",
    "yaw": "mae_yaw",
    "pitch": "mae_pitch",
    "roll": "mae_roll",
    "mean": "mae",
    "params": "params",
    "GFLOPs": "gflops",
    "input": "input_size",
}
TECHNICAL_COLUMNS = {
    "weights": "weights_sha256",
    "model protocol": "model_protocol",
    "geodesic": "geodesic_mean",
    "dropped": "n_dropped",
    "dataset revision": "dataset_revision",
    "code": "code_version",
}
ANGLE_COLUMNS = ("yaw", "pitch", "roll", "mean", "geodesic")


def protocol_rows(table: pd.DataFrame) -> pd.Series:
    """True where the model was trained for the protocol of the benchmark the row is on, or does not say
    (a submission without ``trained_on``/``protocol`` in its config: shown, marked "not stated")."""
    expected = table["benchmark"].map(lambda name: BENCHMARKS[name].protocol if name in BENCHMARKS else None)
    stated = table["model_protocol"].ne(UNKNOWN)
    return (table["model_protocol"].eq(expected) & expected.notna()) | ~stated


def board_view(
    table: pd.DataFrame,
    benchmark: str = ALL,
    show_all: bool = False,
    search: str | None = "",
    technical: list[str] | tuple[str, ...] = (),
) -> pd.DataFrame:
    """The displayed board: ``rank`` by mean MAE within each benchmark, MAE in degrees to 2 decimals.

    ``n`` carries :data:`FLAG` under :data:`SMALL_TEST_SET` samples. ``technical`` names extra columns
    from :data:`TECHNICAL_COLUMNS` (the weights sha256 shortened to 12 characters).
    """
    unknown = sorted(set(technical) - set(TECHNICAL_COLUMNS))
    if unknown:
        raise ValueError(f"unknown columns {unknown}; technical columns: {', '.join(TECHNICAL_COLUMNS)}")
    rows = table
    if benchmark != ALL:
        rows = rows[rows["benchmark"] == benchmark]
    if not show_all:
        rows = rows[protocol_rows(rows)]
    search = (search or "").strip()
    if search:
        rows = rows[rows["model"].str.contains(search, case=False, regex=False)]
    rows = rows.sort_values(["benchmark", "mae", "model"], ignore_index=True)
    columns = {"rank": None, **({} if benchmark != ALL else {"benchmark": "benchmark"}), **MAIN_COLUMNS}
    columns |= {"n": "n"} | {name: TECHNICAL_COLUMNS[name] for name in TECHNICAL_COLUMNS if name in technical}
    view = pd.DataFrame({name: rows[source] for name, source in columns.items() if source}, index=rows.index)
    view.insert(0, "rank", rows.groupby("benchmark")["mae"].rank(method="min").astype(int))
    for name in ANGLE_COLUMNS:
        if name in view:
            view[name] = view[name].astype(float).round(2)
    if "GFLOPs" in view:
        view["GFLOPs"] = pd.to_numeric(view["GFLOPs"], errors="coerce").round(3)
    view["n"] = [f"{n} {FLAG}" if n < SMALL_TEST_SET else str(n) for n in rows["n"].astype(int)]
    if "weights" in view:
        view["weights"] = view["weights"].str[:12]
    return view.reset_index(drop=True)


def _benchmark_lines() -> str:
    return "\n".join(
        f"* **{b.title}** (`{b.name}`, {b.protocol}): {b.description}" for b in BENCHMARKS.values()
    )


ABOUT = f"""
## Protocols

Head-pose papers report two protocols, and their numbers must never share a ranking:

* **Protocol 1**: trained without BIWI (300W-LP, possibly other sets such as CMU Panoptic), tested on
  AFLW2000 and on all of BIWI.
* **Protocol 2**: trained on 70 % of BIWI (16 sequences), tested on the other 30 % (8 sequences).

Every model states what it was trained on; every benchmark belongs to one protocol. A benchmark's view ranks
only the models of its protocol; **Show every model** lifts that (their rows then compare different things).
A submission states it with `"trained_on"` and `"protocol"` (`"protocol 1"` or `"protocol 2"`) in its
`config.json`; one that does not is shown everywhere as *not stated*.

{_benchmark_lines()}

Each model cuts the face the way it was trained (its *recipe*: box margin, crop size, interpolation), from
the same stored photo and the same protocol face box: FSA-Net gets the authors' 64×64 crop, WHENet its
padded 224×224 crop.

## Metrics

* **MAE** (degrees): mean absolute error of yaw, pitch and roll, and their mean; samples with any
  |angle| > 99° are dropped on the protocol-1 benchmarks (the official filter). Lower is better; ranks follow
  the mean.
* **geodesic**: mean angle of the rotation between the predicted and the true head pose, free of the
  Euler-angle wrap-around.
* Results on fewer than {SMALL_TEST_SET} samples carry {FLAG} next to **n**: such an MAE is noisy.

## Columns

* **rank**: by mean MAE within the benchmark. **model**: registry name or submission. **method**: the family
  (FSA-Net, SSR-Net-MD, WHENet, ...). **trained on**: training data, which fixes the protocol.
* **yaw / pitch / roll / mean**: MAE in degrees. **params**: parameter count. **GFLOPs**: forward
  floating-point operations for one face, counted by torch's flop counter. **input**: crop side in pixels.
* Technical columns: **weights** (sha256 of the safetensors, shortened), **model protocol**, **geodesic**,
  **dropped** (samples outside ±99°), **dataset revision**, **code** (scoring code version).

## Angles

`[yaw, pitch, roll]` in degrees with the signs of the AFLW2000 labels: yaw positive when the face turns
towards the image's left, pitch positive when it looks up, roll positive when the head tilts clockwise.
"""
