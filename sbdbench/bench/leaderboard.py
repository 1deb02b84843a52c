"""The leaderboard: tables built from the results store, written as CSV, Markdown and HTML.

One row per method × dataset × resolution × noise (the latest run of that combination; a run
superseded by ``bench --rerun`` is ignored). Metrics are means over the cell's shapes; CD and P2M
are multiplied by 10⁴ and labelled ``_1e4`` as in the papers; ``hd`` is the mean Hausdorff
distance in unit-sphere units. Published numbers (``baselines/reported.csv``) are kept in their
own table and are never mixed with measured rows.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from sbdbench.bench.grid import baselines_dir, format_n
from sbdbench.bench.store import ResultsStore
from sbdbench.errors import DataError
from sbdbench.paths import atomic_write_bytes, atomic_write_text

SCALE = 1e4
CELL_ID = ["dataset", "noise", "n_points", "sigma", "method"]
LEADERBOARD_COLUMNS = [
    "method", "dataset", "n_points", "sigma", "noise", "status",
    "cd_1e4", "p2m_1e4", "p2m_pt3d_1e4", "hd", "n_shapes", "sec_per_shape", "peak_mem_mb",
    "device", "params", "params_hash", "manifest_hash", "artifacts", "version", "git_commit", "finished_at", "error",
]
PER_SHAPE_COLUMNS = [
    "method", "dataset", "n_points", "sigma", "noise", "shape", "category", "n_out",
    "cd_1e4", "p2m_1e4", "p2m_pt3d_1e4", "hd", "seconds", "peak_mem_mb", "device", "params_hash",
]
REPORTED_COLUMNS = ["method", "dataset", "n_points", "sigma", "cd_1e4", "p2m_1e4", "source", "note"]


def default_out_dir() -> Path:
    """``<repo>/leaderboard`` when run from inside the sbdbench source tree, else ``./leaderboard``."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        pyproject = folder / "pyproject.toml"
        try:
            if pyproject.is_file() and 'name = "sbdbench"' in pyproject.read_text(errors="replace"):
                return folder / "leaderboard"
        except OSError:
            continue
    return cwd / "leaderboard"


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
    for raw in ("cd", "p2m", "p2m_pt3d"):
        table[f"{raw}_1e4"] = table[raw] * SCALE
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
    for raw in ("cd", "p2m", "p2m_pt3d"):
        table[f"{raw}_1e4"] = table[raw] * SCALE
    table["n_shapes"] = table["n_shapes"].fillna(0).astype(int)
    table["params"] = table["params_json"]
    table = table.sort_values(["dataset", "noise", "n_points", "sigma", "cd_1e4", "method"], na_position="last")
    return table[LEADERBOARD_COLUMNS].reset_index(drop=True)


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


def paper_layout(table: pd.DataFrame, metrics=("cd_1e4", "p2m_1e4"), digits: int = 2) -> Tuple[List[str], List[List[str]]]:
    """Methods × (N, σ) with 'CD / P2M' in each cell and the best value of each column in bold.

    ``table`` holds one row per method × N × σ (measured leaderboard rows of one dataset, or
    reported rows); failed cells show 'failed', absent ones '–'.
    """
    combos = sorted({(int(n), float(s)) for n, s in zip(table["n_points"], table["sigma"])})
    header = ["Method"] + [f"{format_n(n)} {s * 100:g}%" for n, s in combos]
    has_status = "status" in table.columns
    ok = table[table["status"] == "finished"] if has_status else table
    best = {}
    for n, s in combos:
        sel = ok[(ok["n_points"] == n) & np.isclose(ok["sigma"], s)]
        for m in metrics:
            vals = sel[m].dropna().round(digits)
            best[(n, s, m)] = vals.min() if len(vals) else None
    rows = []
    order = _method_order(table, metrics[0])
    for method in order:
        row = [str(method)]
        for n, s in combos:
            sel = table[(table["method"] == method) & (table["n_points"] == n) & np.isclose(table["sigma"], s)]
            if sel.empty:
                row.append("–")
                continue
            rec = sel.iloc[0]
            if has_status and rec["status"] != "finished":
                row.append("failed")
                continue
            parts = []
            for m in metrics:
                text = _fmt(rec[m], digits)
                if best[(n, s, m)] is not None and np.isfinite(rec[m]) and round(float(rec[m]), digits) == best[(n, s, m)]:
                    text = f"**{text}**"
                parts.append(text)
            row.append(" / ".join(parts))
        rows.append(row)
    return header, rows


def _method_order(table: pd.DataFrame, metric: str) -> List[str]:
    """Methods ordered by their mean rank on ``metric`` (best first), failed-only methods last."""
    ranks = table.assign(_r=table.groupby(["n_points", "sigma"])[metric].rank())
    order = ranks.groupby("method")["_r"].mean().sort_values(na_position="last")
    return list(order.index)


def category_table(per_shape: pd.DataFrame, metric: str = "cd_1e4") -> Tuple[List[str], List[List[str]]]:
    """Methods × categories: mean ``metric`` over the shapes of each category and every σ."""
    cats = sorted(per_shape["category"].unique())
    pivot = per_shape.pivot_table(index="method", columns="category", values=metric, aggfunc="mean")
    pivot["_all"] = per_shape.groupby("method")[metric].mean()
    pivot = pivot.sort_values("_all")
    header = ["Method"] + [f"{c} ({per_shape[per_shape['category'] == c]['shape'].nunique()})" for c in cats] + ["all"]
    rows = []
    for method, rec in pivot.iterrows():
        cells = []
        for c in cats + ["_all"]:
            value = rec.get(c, np.nan)
            text = _fmt(value)
            if np.isfinite(value) and round(value, 2) == round(pivot[c].min(), 2):
                text = f"**{text}**"
            cells.append(text)
        rows.append([str(method)] + cells)
    return header, rows


def groups(table: pd.DataFrame) -> List[Tuple[str, str]]:
    """(dataset, noise model) pairs in the table, sorted."""
    return sorted({(d, n) for d, n in zip(table["dataset"], table["noise"])})


def render_markdown(board: pd.DataFrame, per_shape: pd.DataFrame, reported: pd.DataFrame,
                    plot_files: Optional[Dict[str, str]] = None) -> str:
    """The leaderboard README: paper-layout tables, per-category breakdown, reported numbers, failures."""
    out = ["# sbdbench leaderboard", ""]
    out.append("Generated by `sbdbench leaderboard` from the results database. CD and P2M are ×10⁴ (lower is better), "
               "means over the test shapes of each cell; P2M is the exact point-to-mesh distance (`p2m`; the "
               "PyTorch3D-default variant `p2m_pt3d` is in `leaderboard.csv`). **Bold**: best in its column. "
               "Full numbers: [`leaderboard.csv`](leaderboard.csv) (one row per cell), [`per_shape.csv`](per_shape.csv); "
               "sortable table and plots: [`index.html`](index.html).")
    out.append("")
    if board.empty:
        out += ["No results yet: run `sbdbench bench` first.", ""]
    for dataset, noise in groups(board):
        sub = board[(board["dataset"] == dataset) & (board["noise"] == noise)]
        out += [f"## {dataset} ({noise} noise): CD / P2M ×10⁴", ""]
        header, rows = paper_layout(sub)
        out += [_md_table(header, rows), ""]
        ok = sub[sub["status"] == "finished"]
        if not ok.empty:
            out.append(f"{ok['n_shapes'].max()} test shapes per cell; device {', '.join(sorted(ok['device'].unique()))}; "
                       f"sbdbench {', '.join(sorted(ok['version'].unique()))} (commit {', '.join(sorted(ok['git_commit'].unique()))}).")
            out.append("")
            speed = ok.groupby(["method", "n_points"])["sec_per_shape"].mean().unstack("n_points")
            header = ["Method"] + [f"s/shape {format_n(n)}" for n in speed.columns]
            mem = ok.groupby("method")["peak_mem_mb"].max()
            header.append("peak MB")
            rows = [[m] + [_fmt(v, 2) for v in speed.loc[m]] + [_fmt(mem.get(m, np.nan), 0)] for m in speed.index]
            out += ["Seconds per shape (denoising only, scoring excluded) and peak memory (resident, whole process) during one denoising call:", "",
                    _md_table(header, rows), ""]
        shapes_here = per_shape[(per_shape["dataset"] == dataset) & (per_shape["noise"] == noise)]
        for n in sorted(shapes_here["n_points"].unique()):
            sub_shapes = shapes_here[shapes_here["n_points"] == n]
            levels = ", ".join(f"{s * 100:g}%" for s in sorted(sub_shapes["sigma"].unique()))
            out += [f"### Per category, {format_n(n)}: CD ×10⁴, mean over σ = {levels}", ""]
            header, rows = category_table(sub_shapes)
            out += [_md_table(header, rows), ""]
    if plot_files:
        out += ["## Plots", ""]
        for title, rel in plot_files.items():
            out += [f"![{title}]({rel})", ""]
    failed = board[board["status"] == "failed"]
    if not failed.empty:
        out += ["## Failed cells", "", "These cells failed twice; their error is below (and in `leaderboard.csv`).", ""]
        rows = [[r.method, r.dataset, format_n(r.n_points), f"{r.sigma * 100:g}%", str(r.error).splitlines()[0][:200]]
                for r in failed.itertuples()]
        out += [_md_table(["Method", "Dataset", "N", "σ", "Error"], rows, ["---"] * 5), ""]
    if not reported.empty:
        out += ["## Reported on PUNet (published numbers, not measured here)", ""]
        out.append("Copied from papers for orientation only: a different dataset (PUNet, not synth), other code and "
                   "other P2M implementations, so **not comparable row-for-row with the measured tables above**. "
                   "Source of every row: [`baselines/reported.csv`](../baselines/reported.csv).")
        out.append("")
        for dataset in sorted(reported["dataset"].unique()):
            header, rows = paper_layout(reported[reported["dataset"] == dataset])
            header[0] = f"Method (reported on {dataset})"
            out += [_md_table(header, rows), ""]
        sources = reported.groupby("source")["method"].unique()
        out += ["Sources:", ""]
        out += [f"- {', '.join(methods)}: {source}." for source, methods in sources.items()]
        notes = sorted({n for n in reported["note"].dropna().unique()})
        out += [f"- Note: {n}." for n in notes]
        out.append("")
    return "\n".join(out)


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
                      *, reported: Optional[str | os.PathLike] = None, plots: bool = True) -> LeaderboardFiles:
    """Write leaderboard.csv, per_shape.csv, README.md, index.html (and plots/*.png) under ``out_dir``
    (default: :func:`default_out_dir`), from the results database ``db``."""
    from sbdbench.bench import html as html_page

    out = Path(out_dir) if out_dir is not None else default_out_dir()
    runs, shapes = load_results(db)
    board = leaderboard_table(runs, shapes)
    per_shape = per_shape_table(runs, shapes)
    published = load_reported(reported)
    written = []

    def write_csv(name: str, frame: pd.DataFrame) -> None:
        path = out / name
        atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
        written.append(path)

    write_csv("leaderboard.csv", board)
    write_csv("per_shape.csv", per_shape)

    images: Dict[str, bytes] = {}
    plot_files: Dict[str, str] = {}
    if plots and not board.empty:
        from sbdbench.bench.plots import make_plots

        images = make_plots(board, per_shape)
        for name, png in images.items():
            path = out / "plots" / f"{name}.png"
            atomic_write_bytes(path, png)
            written.append(path)
            plot_files[name.replace("_", " ")] = f"plots/{name}.png"
    atomic_write_text(out / "README.md", render_markdown(board, per_shape, published, plot_files))
    written.append(out / "README.md")
    atomic_write_text(out / "index.html", html_page.render_html(board, per_shape, published, images))
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
