"""Per-shape wins and losses of every method against one reference method (``sbdbench leaderboard --versus``).

A mean over 18 shapes hides whether a method is better everywhere or much better on a few shapes. For each cell
(dataset × noise × N × σ) this counts the shapes on which a method's CD (and P2M) is lower than the reference's,
over the shapes both methods scored, and names the shapes it loses by CD. Ties count as neither a win nor a loss.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import pandas as pd

from sbdbench.bench.coverage import COLUMN as CELL_KEY  # dataset, noise, N, σ: one column of a board
from sbdbench.bench.grid import format_n
from sbdbench.errors import InputError

VERSUS_COLUMNS = ["method", "against", "dataset", "noise", "n_points", "sigma", "shapes", "better_cd", "better_p2m",
                  "cd_1e4", "cd_1e4_against", "p2m_1e4", "p2m_1e4_against", "lost_by_cd"]


def check_reference(per_shape: pd.DataFrame, against: str) -> None:
    """A one-line error when ``against`` has no per-shape rows (naming the methods that have some)."""
    if against not in set(per_shape["method"]):
        known = ", ".join(sorted(set(per_shape["method"]))) or "none"
        raise InputError(f"--versus {against}: no finished results for that method in the database (methods: {known})")


def versus_table(per_shape: pd.DataFrame, against: str) -> pd.DataFrame:
    """One row per (method ≠ ``against``, cell) where both methods scored at least one common shape.

    Args:
        per_shape: the leaderboard's per-shape rows (``method``, the cell key, ``shape``, ``cd_1e4``, ``p2m_1e4``).
        against: the reference method spec, e.g. ``"score:weights=official"``.
    Returns:
        :data:`VERSUS_COLUMNS`: win counts by CD and P2M, both means over the common shapes, and the shapes lost by
        CD as ``"shape (ours > theirs)"`` text, worst loss first.
    """
    check_reference(per_shape, against)
    key = CELL_KEY + ["shape"]
    ref = per_shape.loc[per_shape["method"] == against, key + ["cd_1e4", "p2m_1e4"]]
    others = per_shape[per_shape["method"] != against]
    both = others.merge(ref, on=key, suffixes=("", "_against"), how="inner")
    rows = [_cell_row(method, against, cell, group) for (method, *cell), group in both.groupby(["method"] + CELL_KEY)]
    table = pd.DataFrame(rows, columns=VERSUS_COLUMNS)
    return table.sort_values(CELL_KEY + ["better_cd", "method"], ascending=[True] * 4 + [False, True]).reset_index(drop=True)


def _cell_row(method: str, against: str, cell: Tuple, group: pd.DataFrame) -> dict:
    lost = group[group["cd_1e4"] > group["cd_1e4_against"]]
    lost = lost.assign(gap=lost["cd_1e4"] - lost["cd_1e4_against"]).sort_values("gap", ascending=False)
    return dict(zip(CELL_KEY, cell), method=method, against=against, shapes=len(group),
                better_cd=int((group["cd_1e4"] < group["cd_1e4_against"]).sum()),
                better_p2m=int((group["p2m_1e4"] < group["p2m_1e4_against"]).sum()),
                cd_1e4=group["cd_1e4"].mean(), cd_1e4_against=group["cd_1e4_against"].mean(),
                p2m_1e4=group["p2m_1e4"].mean(), p2m_1e4_against=group["p2m_1e4_against"].mean(),
                lost_by_cd="; ".join(f"{r.shape} ({r.cd_1e4:.2f} > {r.cd_1e4_against:.2f})" for r in lost.itertuples()))


def versus_layout(table: pd.DataFrame, method_order: List[str]) -> Tuple[List[str], List[List[str]]]:
    """Markdown-ready (header, rows) for one (dataset, noise) group: cells read 'CD wins / P2M wins of n'."""
    combos = sorted({(int(n), float(s)) for n, s in zip(table["n_points"], table["sigma"])})
    header = ["Method"] + [f"{format_n(n)} {s * 100:g}%" for n, s in combos]
    rows = []
    for method in [m for m in method_order if m in set(table["method"])]:
        sel = table[table["method"] == method]
        cells = []
        for n, s in combos:
            hit = sel[(sel["n_points"] == n) & (sel["sigma"] == s)]
            cells.append("–" if hit.empty else f"{hit.better_cd.iloc[0]} / {hit.better_p2m.iloc[0]} of {hit.shapes.iloc[0]}")
        rows.append([method] + cells)
    return header, rows


def versus_title(against: str) -> str:
    return (f"Per-shape wins against {against}: shapes better by CD / by P2M, of the shapes both scored "
            "(the shapes lost by CD are in versus.csv)")


def group_versus(versus: Optional[pd.DataFrame], dataset: str, noise: str, paper_rows: List[List[str]]):
    """(title, header, rows) of one (dataset, noise) group, methods in the order of the group's paper table
    (``paper_rows``, first column the method), or None when that group has no comparison."""
    if versus is None or versus.empty:
        return None
    sub = versus[(versus["dataset"] == dataset) & (versus["noise"] == noise)]
    if sub.empty:
        return None
    order = [r[0] for r in paper_rows]
    order += sorted(set(sub["method"]) - set(order))
    return (versus_title(sub["against"].iloc[0]), *versus_layout(sub, order))
