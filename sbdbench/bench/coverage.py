"""Which leaderboard cells may be compared, and the rank that follows from them.

A *column* of the leaderboard is (dataset, noise, N, σ). Its reference shape set is the set of test
shapes most of its finished rows were scored on (a tie goes to the larger set). A row is *complete*
when it finished on exactly that set. Only complete rows are bolded as best, and only a method with a
complete row in every column of its (dataset, noise) group gets a rank:

    rank = order of the mean, over the group's columns, of the method's CD rank in each column
           (ranks taken among the ranked methods only; ties share the better rank).

Rows from other tables (the published numbers) have no shape sets; all their finished rows count as complete.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from sbdbench.bench.grid import format_n

COLUMN = ["dataset", "noise", "n_points", "sigma"]
RANK_RULE = ("Rank: by the mean of the method's CD rank over the cells (columns) of this table; only a method "
             "with a complete cell (finished, on the column's full shape set) in every column is ranked, "
             "the others show '–' and their gaps are listed below the table.")


def reference_set(sets: List[frozenset]) -> frozenset:
    """The shape set most rows share; a tie goes to the larger set (then the alphabetically first)."""
    counts = Counter(sets)
    return max(counts, key=lambda s: (counts[s], len(s), tuple(sorted(s, reverse=True))))


def mark_coverage(table: pd.DataFrame, shapes: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per run, with ``run_id``) plus ``n_expected`` (shapes of the column's reference
    set) and ``complete`` (finished on exactly that set)."""
    sets = shapes.groupby("run_id")["shape"].agg(frozenset)
    table = table.copy()
    table["_set"] = table["run_id"].map(sets)
    table["n_expected"] = 0
    table["complete"] = False
    for _, idx in table.groupby(COLUMN, sort=False).groups.items():
        rows = table.loc[idx]
        done = rows[(rows["status"] == "finished") & rows["_set"].notna()]
        if done.empty:
            continue
        ref = reference_set(list(done["_set"]))
        table.loc[idx, "n_expected"] = len(ref)
        table.loc[done.index, "complete"] = [s == ref for s in done["_set"]]
    return table.drop(columns="_set")


def complete_mask(table: pd.DataFrame) -> pd.Series:
    """Rows that may be compared: complete ones (or every finished row of a table without coverage)."""
    finished = table["status"] == "finished" if "status" in table.columns else pd.Series(True, index=table.index)
    if "complete" in table.columns:
        return finished & table["complete"].astype(bool)
    return finished


def _column_label(n, sigma) -> str:
    return f"{format_n(int(n))} {float(sigma) * 100:g}%"


def group_ranks(sub: pd.DataFrame, metric: str = "cd_1e4") -> pd.DataFrame:
    """Per method of one (dataset, noise) group: ``n_complete``, ``n_columns``, ``mean_rank`` (over its
    complete cells, against every complete row) and ``rank`` (only methods complete in every column)."""
    ok = sub[complete_mask(sub) & sub[metric].notna()]
    n_columns = len({(n, s) for n, s in zip(sub["n_points"], sub["sigma"])})
    methods = pd.Index(sub["method"].unique(), name="method")
    n_complete = ok.groupby("method").size().reindex(methods, fill_value=0)
    out = pd.DataFrame({"n_complete": n_complete, "n_columns": n_columns})
    out["mean_rank"] = _mean_rank(ok, metric).reindex(methods)
    ranked = ok[ok["method"].isin(out.index[out["n_complete"] == n_columns])]
    out["rank"] = _mean_rank(ranked, metric).rank(method="min").reindex(methods)
    return out


def _mean_rank(rows: pd.DataFrame, metric: str) -> pd.Series:
    if rows.empty:
        return pd.Series(dtype=float)
    ranks = rows.groupby(["n_points", "sigma"])[metric].rank(method="min")
    return ranks.groupby(rows["method"]).mean()


def method_order(ranks: pd.DataFrame) -> List[str]:
    """Ranked methods first (by rank), then the others by their mean rank over complete cells, then the rest."""
    key = ranks.assign(_unranked=ranks["rank"].isna(), _name=[str(m) for m in ranks.index])
    key = key.sort_values(["_unranked", "rank", "mean_rank", "_name"], na_position="last")
    return list(key["_name"])


def coverage_lines(sub: pd.DataFrame) -> List[str]:
    """What the table's cells cover: shapes per column, and each method's missing, failed or partial cells."""
    columns = sorted({(int(n), float(s)) for n, s in zip(sub["n_points"], sub["sigma"])})
    expected = {c: int(sub[(sub["n_points"] == c[0]) & np.isclose(sub["sigma"], c[1])]["n_expected"].max()) for c in columns}
    if len(set(expected.values())) == 1:
        lines = [f"Shapes per cell: {next(iter(expected.values()))} in every column."]
    else:
        lines = ["Shapes per cell: " + ", ".join(f"{_column_label(*c)}: {n}" for c, n in expected.items()) + "."]
    gaps = _gaps(sub, columns, expected)
    if gaps:
        lines.append("Incomplete (not ranked, never bold): " + "; ".join(f"{m}: {', '.join(g)}" for m, g in gaps.items()) + ".")
    return lines


def _gaps(sub: pd.DataFrame, columns, expected) -> Dict[str, List[str]]:
    gaps: Dict[str, List[str]] = {}
    for method in sorted(sub["method"].unique()):
        rows = sub[sub["method"] == method]
        notes = []
        for n, s in columns:
            notes += _cell_gap(rows[(rows["n_points"] == n) & np.isclose(rows["sigma"], s)], _column_label(n, s), expected[(n, s)])
        if notes:
            gaps[str(method)] = notes
    return gaps


def _cell_gap(rows: pd.DataFrame, label: str, expected: int) -> List[str]:
    if rows.empty:
        return [f"{label} missing"]
    rec = rows.iloc[0]
    if rec["status"] != "finished":
        return [f"{label} failed"]
    if not bool(rec["complete"]):
        return [f"{label} on {int(rec['n_shapes'])} of {expected} shapes" if int(rec["n_shapes"]) != expected
                else f"{label} on another shape set"]
    return []


def incomplete_suffix(rec, n_expected: Optional[int]) -> str:
    """' (3/18 shapes)' after a finished but incomplete cell's value; '' for a complete one."""
    if "complete" not in rec.index or bool(rec["complete"]) or rec.get("status", "finished") != "finished":
        return ""
    return f" ({int(rec['n_shapes'])}/{int(n_expected or 0)} shapes)"
