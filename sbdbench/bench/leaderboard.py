"""The leaderboard: tables built from the results store, written as CSV, Markdown and HTML.

One row per method × dataset × resolution × noise (the latest run of that combination; a run
superseded by ``bench --rerun`` is ignored). Metrics are means over the cell's shapes; CD and P2M
are multiplied by 10⁴ and labelled ``_1e4`` as in the papers; ``hd`` is the mean Hausdorff
distance in unit-sphere units. Published numbers (``baselines/reported.csv``) are kept in their
own table and are never mixed with measured rows. Which cells are compared and ranked:
:mod:`sbdbench.bench.coverage`; code versions, dirty rows and method links: :mod:`sbdbench.bench.provenance`;
the README page: :mod:`sbdbench.bench.markdown_page`, the HTML page: :mod:`sbdbench.bench.html`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from sbdbench.bench.coverage import complete_mask, group_ranks, incomplete_suffix, mark_coverage, method_order
from sbdbench.bench.grid import baselines_dir, format_n
from sbdbench.bench.provenance import check_publishable
from sbdbench.bench.store import ResultsStore
from sbdbench.bench.versus import versus_table
from sbdbench.errors import DataError, InputError
from sbdbench.paths import atomic_write_bytes, atomic_write_text
from sbdbench.protocol import REPORT_SCALE, SCALED_METRICS, reported_column

SCALE = REPORT_SCALE
CELL_ID = ["dataset", "noise", "n_points", "sigma", "method"]
LEADERBOARD_COLUMNS = [
    "method", "dataset", "n_points", "sigma", "noise", "status",
    "cd_1e4", "p2m_1e4", "p2m_pt3d_1e4", "hd", "n_shapes", "n_expected", "complete", "rank", "sec_per_shape",
    "peak_mem_mb", "device", "params", "params_hash", "manifest_hash", "artifacts", "version", "git_commit", "finished_at", "error",
]
PER_SHAPE_COLUMNS = [
    "method", "dataset", "n_points", "sigma", "noise", "shape", "category", "n_out",
    "cd_1e4", "p2m_1e4", "p2m_pt3d_1e4", "hd", "seconds", "peak_mem_mb", "device", "params_hash",
]
REPORTED_COLUMNS = ["method", "dataset", "n_points", "sigma", "cd_1e4", "p2m_1e4", "source", "note"]


def default_out_dir() -> Path:
    """``./leaderboard`` in the current directory, also inside a clone: the repository's committed
    ``leaderboard/`` is written only when asked for (``--out leaderboard`` at the top of the clone, as ``make bench`` does)."""
    return Path.cwd() / "leaderboard"


def _is_source_root(folder: Path) -> bool:
    try:
        return 'name = "sbdbench"' in (folder / "pyproject.toml").read_text(errors="replace")
    except OSError:
        return False


def refuse_committed_default(out: Path) -> None:
    """The default ``./leaderboard`` at the top of an sbdbench clone is the committed board: name it to write it."""
    if _is_source_root(out.parent):
        raise InputError(f"{out} is the repository's committed leaderboard; pass --out leaderboard to regenerate it "
                         f"(as `make bench` does) or --out DIR for another folder")


# --- tables -------------------------------------------------------------------------------------
def latest_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The latest finished or failed run of every method × dataset × N × σ × noise."""
    runs = runs[runs["status"].isin(["finished", "failed"])]
    if runs.empty:
        return runs
    runs = runs.sort_values(["finished_at", "run_id"])
    return runs.groupby(CELL_ID, as_index=False, sort=False).tail(1)


def per_shape_table(runs: pd.DataFrame, shapes: pd.DataFrame) -> pd.DataFrame:
    """Per-shape rows of the runs shown on the leaderboard (CD/P2M ×10⁴)."""
    chosen = latest_runs(runs)
    chosen = chosen[chosen["status"] == "finished"]
    table = shapes[shapes["run_id"].isin(chosen["run_id"])].copy()
    for raw in SCALED_METRICS:
        table[reported_column(raw)] = table[raw] * SCALE
    table = table.sort_values(["dataset", "noise", "n_points", "sigma", "method", "shape"])
    return table[PER_SHAPE_COLUMNS].reset_index(drop=True)


def leaderboard_table(runs: pd.DataFrame, shapes: pd.DataFrame) -> pd.DataFrame:
    """One row per method × dataset × N × σ × noise: shape means, time per shape, peak memory."""
    chosen = latest_runs(runs)
    if chosen.empty:
        return pd.DataFrame(columns=LEADERBOARD_COLUMNS)
    agg = shapes.groupby("run_id").agg(
        cd=("cd", "mean"), p2m=("p2m", "mean"), p2m_pt3d=("p2m_pt3d", "mean"), hd=("hd", "mean"),
        n_shapes=("shape", "count"), sec_per_shape=("seconds", "mean"), peak_mem_mb=("peak_mem_mb", "max"),
    )
    table = chosen.merge(agg, left_on="run_id", right_index=True, how="left")
    for raw in SCALED_METRICS:
        table[reported_column(raw)] = table[raw] * SCALE
    table["n_shapes"] = table["n_shapes"].fillna(0).astype(int)
    table["params"] = table["params_json"]
    table = _with_ranks(mark_coverage(table, shapes))
    table = table.sort_values(["dataset", "noise", "n_points", "sigma", "cd_1e4", "method"], na_position="last")
    return table[LEADERBOARD_COLUMNS].reset_index(drop=True)


def _with_ranks(table: pd.DataFrame) -> pd.DataFrame:
    """``rank`` of each row's method within its (dataset, noise) group (see :mod:`sbdbench.bench.coverage`)."""
    table = table.copy()
    table["rank"] = np.nan
    for (dataset, noise), idx in table.groupby(["dataset", "noise"], sort=False).groups.items():
        ranks = group_ranks(table.loc[idx])["rank"]
        table.loc[idx, "rank"] = table.loc[idx, "method"].map(ranks).to_numpy()
    table["rank"] = table["rank"].astype("Int64")
    return table


def comparable(board: pd.DataFrame, per_shape: pd.DataFrame) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Only the complete cells of ``board`` and their per-shape rows (what the plots and category tables compare)."""
    ok = board[complete_mask(board)]
    keep = ok[CELL_ID].drop_duplicates()
    return ok, per_shape.merge(keep, on=CELL_ID, how="inner")


def load_results(db: Optional[str | os.PathLike] = None) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """``(runs, shapes)`` frames from the results database (a missing database is an error)."""
    with ResultsStore(db, create=False) as store:
        store.check_types()
        return store.runs_frame(), store.shapes_frame()


def reported_path() -> Path:
    """``baselines/reported.csv`` as :mod:`sbdbench.resources` finds it (checkout, override or package)."""
    from sbdbench.resources import protocol_file

    return protocol_file("baselines", "reported.csv")


def load_reported(path: Optional[str | os.PathLike] = None) -> pd.DataFrame:
    """Published numbers (``baselines/reported.csv``); an empty table when the file is absent."""
    path = Path(path) if path is not None else reported_path()
    if not path.is_file():
        return pd.DataFrame(columns=REPORTED_COLUMNS)
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    missing = [c for c in REPORTED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return table[REPORTED_COLUMNS]


# --- Markdown -----------------------------------------------------------------------------------
def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def _md_table(header: List[str], rows: List[List[str]], align: Optional[List[str]] = None) -> str:
    align = align or (["---"] + ["---:"] * (len(header) - 1))
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def paper_layout(table: pd.DataFrame, metrics=("cd_1e4", "p2m_1e4"), digits: int = 2,
                 with_rank: bool = True) -> Tuple[List[str], List[List[str]]]:
    """Methods × (N, σ) with 'CD / P2M' in each cell; the best complete value of each column in bold.

    ``table`` holds one row per method × N × σ (measured leaderboard rows of one dataset, or
    reported rows); failed cells show 'failed', absent ones '–', a cell on fewer shapes than its
    column its value with '(n/m shapes)', never bold. ``with_rank`` adds the rank column
    (:func:`sbdbench.bench.coverage.group_ranks`).
    """
    combos = sorted({(int(n), float(s)) for n, s in zip(table["n_points"], table["sigma"])})
    header = ["Method"] + (["Rank"] if with_rank else []) + [f"{format_n(n)} {s * 100:g}%" for n, s in combos]
    best = _column_bests(table, combos, metrics, digits)
    ranks = group_ranks(table, metrics[0])
    rows = []
    for method in method_order(ranks):
        row = [str(method)]
        if with_rank:
            rank = ranks.loc[method, "rank"]
            row.append("–" if pd.isna(rank) else str(int(rank)))
        for n, s in combos:
            sel = table[(table["method"] == method) & (table["n_points"] == n) & np.isclose(table["sigma"], s)]
            row.append(_paper_cell(sel, best, (n, s), metrics, digits))
        rows.append(row)
    return header, rows


def _column_bests(table: pd.DataFrame, combos, metrics, digits: int) -> Dict[tuple, Optional[float]]:
    """The best (smallest, rounded) value of each column and metric among the complete rows."""
    ok = table[complete_mask(table)]
    best = {}
    for n, s in combos:
        sel = ok[(ok["n_points"] == n) & np.isclose(ok["sigma"], s)]
        for m in metrics:
            vals = sel[m].dropna().round(digits)
            best[(n, s, m)] = vals.min() if len(vals) else None
    return best


def _paper_cell(sel: pd.DataFrame, best, combo, metrics, digits: int) -> str:
    if sel.empty:
        return "–"
    rec = sel.iloc[0]
    if "status" in sel.columns and rec["status"] != "finished":
        return "failed"
    can_bold = bool(complete_mask(sel).iloc[0])
    parts = []
    for m in metrics:
        text = _fmt(rec[m], digits)
        top = best[(*combo, m)]
        if can_bold and top is not None and np.isfinite(rec[m]) and round(float(rec[m]), digits) == top:
            text = f"**{text}**"
        parts.append(text)
    return " / ".join(parts) + incomplete_suffix(rec, rec.get("n_expected"))


def category_table(per_shape: pd.DataFrame, metric: str = "cd_1e4",
                   full: Optional[set] = None) -> Tuple[List[str], List[List[str]]]:
    """Methods × categories: mean ``metric`` over the shapes of each category and every σ.

    ``full``: the methods with a complete cell at every σ (default: all); any other is marked '†', never
    bold, and has no 'all' value (its mean would cover other cells than the rest).
    """
    full = set(per_shape["method"].unique()) if full is None else set(full)
    cats = sorted(per_shape["category"].unique())
    pivot = per_shape.pivot_table(index="method", columns="category", values=metric, aggfunc="mean")
    pivot["_all"] = per_shape.groupby("method")[metric].mean()
    pivot.loc[~pivot.index.isin(full), "_all"] = np.nan
    pivot = pivot.assign(_part=~pivot.index.isin(full)).sort_values(["_part", "_all"]).drop(columns="_part")
    bests = pivot[pivot.index.isin(full)].min()
    header = ["Method"] + [f"{c} ({per_shape[per_shape['category'] == c]['shape'].nunique()})" for c in cats] + ["all"]
    rows = []
    for method, rec in pivot.iterrows():
        cells = []
        for c in cats + ["_all"]:
            value = rec.get(c, np.nan)
            text = _fmt(value)
            if method in full and np.isfinite(value) and round(value, 2) == round(bests[c], 2):
                text = f"**{text}**"
            cells.append(text)
        rows.append([str(method) + ("" if method in full else " †")] + cells)
    return header, rows


def category_inputs(board: pd.DataFrame, per_shape: pd.DataFrame, n_points: int) -> Tuple[pd.DataFrame, set]:
    """Per-shape rows of the complete cells at ``n_points`` and the methods complete at every σ there."""
    at_n = board[board["n_points"] == n_points]
    n_sigmas = at_n["sigma"].nunique()
    ok, rows = comparable(at_n, per_shape[per_shape["n_points"] == n_points])
    counts = ok.groupby("method").size()
    return rows, set(counts.index[counts == n_sigmas])


CATEGORY_NOTE = "† lacks a complete cell at some σ of this resolution: not in 'all', never bold."


def groups(table: pd.DataFrame) -> List[Tuple[str, str]]:
    """(dataset, noise model) pairs in the table, sorted."""
    return sorted({(d, n) for d, n in zip(table["dataset"], table["noise"])})


# --- writing ------------------------------------------------------------------------------------
@dataclass
class LeaderboardFiles:
    out_dir: Path
    files: List[Path]
    n_cells: int
    n_failed: int

    def line(self) -> str:
        return f"leaderboard of {self.n_cells} cells ({self.n_failed} failed) written to {self.out_dir}: " + ", ".join(p.name for p in self.files)


def write_leaderboard(out_dir: Optional[str | os.PathLike] = None, db: Optional[str | os.PathLike] = None,
                      *, reported: Optional[str | os.PathLike] = None, plots: bool = True,
                      allow_dirty: bool = False, versus: Optional[str] = None) -> LeaderboardFiles:
    """Write leaderboard.csv, per_shape.csv, README.md, index.html (and plots/*.png) under ``out_dir``
    (default: :func:`default_out_dir`, ``./leaderboard``), from the results database ``db``.

    Rows that ran from a source tree with uncommitted changes (``git_commit`` ending in ``-dirty``) are
    refused before anything is written, unless ``allow_dirty`` (then they are published, marked).
    ``versus`` (a method spec in the database) adds per-shape wins against it: ``versus.csv`` and a table per
    dataset (:mod:`sbdbench.bench.versus`); a spec without results is refused before anything is written."""
    from sbdbench.bench import html as html_page
    from sbdbench.bench import markdown_page

    out = Path(out_dir) if out_dir is not None else default_out_dir()
    if out_dir is None:
        refuse_committed_default(out)
    runs, shapes = load_results(db)
    board = leaderboard_table(runs, shapes)
    check_publishable(board, allow_dirty)
    per_shape = per_shape_table(runs, shapes)
    wins = versus_table(per_shape, versus) if versus else None
    published = load_reported(reported)
    written = []

    def write_csv(name: str, frame: pd.DataFrame) -> None:
        path = out / name
        atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
        written.append(path)

    write_csv("leaderboard.csv", board)
    write_csv("per_shape.csv", per_shape)
    if wins is not None:
        write_csv("versus.csv", wins)

    images: Dict[str, bytes] = {}
    plot_files: Dict[str, str] = {}
    if plots and not board.empty:
        from sbdbench.bench.plots import make_plots

        images = make_plots(*comparable(board, per_shape))
        for name, png in images.items():
            path = out / "plots" / f"{name}.png"
            atomic_write_bytes(path, png)
            written.append(path)
            plot_files[name.replace("_", " ")] = f"plots/{name}.png"
    atomic_write_text(out / "README.md", markdown_page.render_markdown(board, per_shape, published, plot_files, wins))
    written.append(out / "README.md")
    atomic_write_text(out / "index.html", html_page.render_html(board, per_shape, published, images, wins))
    written.append(out / "index.html")
    return LeaderboardFiles(out, written, len(board), int((board["status"] == "failed").sum()))


def params_summary(params_json: str, limit: int = 80) -> str:
    """Compact 'k=v, k=v' text of a params JSON for tables."""
    try:
        params = json.loads(params_json)
    except (TypeError, ValueError):
        return str(params_json)[:limit]
    text = ", ".join(f"{k}={v}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"
