"""The leaderboard as one self-contained HTML page: inline CSS, a few lines of plain JS for
sortable tables, plots embedded as ``data:`` PNGs. It opens from disk with no network.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from sbdbench.bench.grid import format_n
from sbdbench.bench.versus import group_versus
from sbdbench.protocol import GAUSSIAN

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1320px;
       padding: 0 16px; color: #1d232b; line-height: 1.45; }
h1 { margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #d5dbe3; padding-bottom: 4px; }
p.lead { color: #4a5563; margin-top: 0; }
table { border-collapse: collapse; margin: 10px 0 18px; font-size: 14px; }
th, td { border: 1px solid #d5dbe3; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #eef2f7; }
td.text, th.text { text-align: left; }
td.params { text-align: left; white-space: normal; max-width: 320px; font-family: ui-monospace, monospace; font-size: 12px; color: #4a5563; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:hover { background: #dde5ef; }
table.sortable th.asc::after { content: " \\25B2"; font-size: 10px; }
table.sortable th.desc::after { content: " \\25BC"; font-size: 10px; }
tbody tr:nth-child(even) { background: #f8fafc; }
tr.failed td { background: #fdecec; color: #8a1c1c; }
tr.partial td { color: #7a6420; font-style: italic; }
td.dirty { color: #8a1c1c; font-weight: 600; }
td.error { text-align: left; white-space: normal; max-width: 480px; font-size: 12px; }
section.reported { background: #fff8e6; border: 2px dashed #d9a400; border-radius: 6px; padding: 4px 16px 12px; margin-top: 36px; }
section.reported h2 { border-bottom-color: #e8cf7a; }
table.reported td, table.reported th { background: #fffdf5; font-style: italic; }
table.reported th { background: #f7ecc8; font-style: normal; }
.badge { display: inline-block; background: #d9a400; color: #fff; border-radius: 4px; padding: 0 6px; font-size: 12px;
         font-style: normal; font-weight: 600; }
img.plot { max-width: 100%; border: 1px solid #e3e8ee; margin: 8px 0 16px; }
.note { color: #4a5563; font-size: 13px; }
"""

_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.title = th.title ? th.title + " (click to sort)" : "click to sort";
    th.addEventListener("click", function () {
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        var v = cell.getAttribute("data-v");
        if (v === null) { v = cell.textContent.trim(); }
        var num = parseFloat(v);
        return (v !== "" && !isNaN(num) && isFinite(v)) ? num : v.toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var xn = typeof x === "number", yn = typeof y === "number";
        if (xn !== yn) { return xn ? -1 : 1; }  // numbers before text ("failed", "–") either way
        if (x < y) { return asc ? -1 : 1; }
        if (x > y) { return asc ? 1 : -1; }
        return 0;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_e = html.escape


def _num(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return '<td data-v="">–</td>'
    return f'<td data-v="{float(value):.10g}">{float(value):.{digits}f}</td>'


def _md_bold_to_html(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", _e(text))


def _simple_table(header: List[str], rows: List[List[str]], cls: str = "") -> str:
    """A table from the Markdown helpers' (header, rows): first column text, **bold** kept."""
    head = "".join(f'<th class="{"text" if i == 0 else ""}">{_e(h)}</th>' for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"text" if i == 0 else ""}">{_md_bold_to_html(str(c))}</td>' for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _full_table(board: pd.DataFrame) -> str:
    from sbdbench.bench.leaderboard import params_summary

    from sbdbench.bench.cell import PEAK_MEM_DEFINITION, PEAK_MEM_HEADER

    cols = ["method", "dataset", "N", "σ %", "CD ×10⁴", "P2M ×10⁴", "P2M pt3d ×10⁴", "HD", "shapes", "s / shape",
            PEAK_MEM_HEADER, "rank", "device", "code", "params"]
    text_cols = ("method", "dataset", "device", "code", "params")
    titles = {PEAK_MEM_HEADER: PEAK_MEM_DEFINITION, "shapes": "shapes scored / shapes of the column's full set"}
    head = "".join(f'<th class="{"text" if c in text_cols else ""}" title="{_e(titles.get(c, ""))}">{_e(c)}</th>' for c in cols)
    rows = []
    for r in board.itertuples():
        failed = r.status != "finished"
        partial = not failed and not bool(r.complete)
        cells = [f'<td class="text">{_e(str(r.method))}</td>', f'<td class="text">{_e(str(r.dataset))}{"" if r.noise == GAUSSIAN else " (" + _e(str(r.noise)) + ")"}</td>',
                 f'<td data-v="{int(r.n_points)}">{format_n(r.n_points)}</td>', f'<td data-v="{r.sigma * 100:g}">{r.sigma * 100:g}</td>']
        if failed:
            cells.append(f'<td data-v="" title="{_e(str(r.error))}">failed</td>' + '<td data-v="">–</td>' * 6)
        else:
            cells += [_num(r.cd_1e4, 3), _num(r.p2m_1e4, 3), _num(r.p2m_pt3d_1e4, 3), _num(r.hd, 4),
                      f'<td data-v="{int(r.n_shapes)}">{int(r.n_shapes)}/{int(r.n_expected)}</td>', _num(r.sec_per_shape, 2),
                      _num(r.peak_mem_mb, 0)]
        cells += [_rank_cell(r.rank), f'<td class="text">{_e(str(r.device))}</td>', _code_cell(r.version, r.git_commit),
                  f'<td class="params" title="{_e(str(r.params))}">{_e(params_summary(r.params) or "(none)")}</td>']
        rows.append(f'<tr class="{"failed" if failed else "partial" if partial else ""}">{"".join(cells)}</tr>')
    return f'<table class="sortable" id="measured"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _rank_cell(rank) -> str:
    if pd.isna(rank):
        return '<td data-v="" title="not ranked: a cell of its table is missing, failed or on fewer shapes">–</td>'
    return f'<td data-v="{int(rank)}">{int(rank)}</td>'


def _code_cell(version, commit) -> str:
    from sbdbench.bench.provenance import is_dirty

    dirty = is_dirty(commit)
    title = ' title="ran from a source tree with uncommitted changes"' if dirty else ""
    return f'<td class="text{" dirty" if dirty else ""}"{title}>{_e(str(version))} @ {_e(str(commit))}</td>'


def _link(text: str, url: str) -> str:
    return f'<a href="{_e(url)}">{_e(text)}</a>' if url else _e(text)


def _methods_table(methods) -> str:
    """One row per method: its paper (linked where a URL is known, else the citation as text) and its code."""
    from sbdbench.bench.provenance import all_method_links

    rows = "".join(
        f'<tr><td class="text">{_e(m.method)}</td><td class="text">{_link(m.paper or "–", m.paper_url)}</td>'
        f'<td class="text">{_link("code", m.code_url) if m.code_url else "–"}</td></tr>'
        for m in all_method_links(methods))
    return ('<table id="methods"><thead><tr><th class="text">method</th><th class="text">paper</th>'
            f'<th class="text">code</th></tr></thead><tbody>{rows}</tbody></table>')


def _reported_table(reported: pd.DataFrame) -> str:
    cols = ["method", "dataset", "N", "σ %", "CD ×10⁴", "P2M ×10⁴", "source"]
    head = "".join(f'<th class="{"text" if c in ("method", "dataset", "source") else ""}">{_e(c)}</th>' for c in cols)
    rows = []
    for r in reported.itertuples():
        note = "" if pd.isna(r.note) else str(r.note)
        rows.append(
            "<tr>"
            f'<td class="text">{_e(str(r.method))} <span class="badge">reported on {_e(str(r.dataset))}</span></td>'
            f'<td class="text">{_e(str(r.dataset))}</td><td data-v="{int(r.n_points)}">{format_n(r.n_points)}</td>'
            f'<td data-v="{r.sigma * 100:g}">{r.sigma * 100:g}</td>{_num(r.cd_1e4, 2)}{_num(r.p2m_1e4, 2)}'
            f'<td class="params" title="{_e(note)}">{_e(str(r.source))}</td></tr>'
        )
    return f'<table class="sortable reported" id="reported"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_html(board: pd.DataFrame, per_shape: pd.DataFrame, reported: pd.DataFrame, images: Dict[str, bytes],
                versus: Optional[pd.DataFrame] = None) -> str:
    """The whole page as a string (``versus``: per-shape wins, :func:`sbdbench.bench.versus.versus_table`)."""
    parts = _page_head()
    if board.empty:
        parts.append("<p>No results yet: run <code>sbdbench bench</code> first.</p>")
    for dataset, noise in _groups(board):
        parts += _dataset_section(board, per_shape, dataset, noise, versus)
    if not board.empty:
        parts.append("<h2>Methods</h2>")
        parts.append(_methods_table(board["method"]))
        parts.append("<h2>All measured cells</h2>")
        parts.append('<p class="note">One row per method × dataset × resolution × noise level (the latest run). '
                     "Hover a params cell for the full settings. Failed cells are red.</p>")
        parts.append(_full_table(board))
    parts += _failed_section(board) + _plots_section(images) + _reported_section(reported)
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts)


def _groups(board: pd.DataFrame):
    from sbdbench.bench.leaderboard import groups

    return groups(board)


def _page_head() -> List[str]:
    from sbdbench.bench.cell import PEAK_MEM_DEFINITION
    from sbdbench.bench.coverage import RANK_RULE

    return ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>sbdbench leaderboard</title>", f"<style>{_CSS}</style></head><body>",
            "<h1>sbdbench leaderboard</h1>",
            '<p class="lead">Point-cloud denoising, every method re-run in one harness. CD and P2M are ×10⁴ '
            "(lower is better), means over the test shapes of each cell; P2M is the exact point-to-mesh distance, "
            "P2M pt3d the PyTorch3D-default variant (triangles under 5·10⁻³ area ignored); HD is the mean Hausdorff "
            "distance in unit-sphere units; s / shape is the denoising time per shape (scoring excluded) and peak RSS MiB "
            f"the {_e(PEAK_MEM_DEFINITION)} (a cell: the largest over its shapes). Bold: best in its column among the "
            "complete cells (finished on the column's full shape set); a cell on fewer shapes shows (n/m shapes) "
            f"and is never bold. {_e(RANK_RULE)} Click a column header to sort.</p>"]


def _dataset_section(board: pd.DataFrame, per_shape: pd.DataFrame, dataset: str, noise: str,
                     versus: Optional[pd.DataFrame] = None) -> List[str]:
    """One dataset × noise kind: the papers' table, its coverage and code, per-shape wins, per-category tables."""
    from sbdbench.bench.coverage import coverage_lines
    from sbdbench.bench.leaderboard import CATEGORY_NOTE, category_inputs, category_table, paper_layout
    from sbdbench.bench.provenance import code_versions

    sub = board[(board["dataset"] == dataset) & (board["noise"] == noise)]
    header, rows = paper_layout(sub)
    parts = [f"<h2>{_e(dataset)} ({_e(noise)} noise): CD / P2M ×10⁴, best in bold</h2>", _simple_table(header, rows, "paper")]
    ok = sub[sub["status"] == "finished"]
    notes = coverage_lines(sub) + ([f"Code: {code_versions(ok)}."] if not ok.empty else [])
    parts.append("".join(f'<p class="note coverage">{_e(line)}</p>' for line in notes))
    wins = group_versus(versus, dataset, noise, rows)
    if wins is not None:
        title, header_w, rows_w = wins
        parts += [f"<h3>{_e(title)}</h3>", _simple_table(header_w, rows_w)]
    shapes_here = per_shape[(per_shape["dataset"] == dataset) & (per_shape["noise"] == noise)]
    for n in sorted(shapes_here["n_points"].unique()):
        rows_n, full = category_inputs(sub, shapes_here, n)
        if rows_n.empty:
            continue
        h, r = category_table(rows_n, full=full)
        parts.append(f"<h3>Per category, {format_n(n)}: CD ×10⁴, mean over every σ, complete cells only "
                     "(shapes per category in brackets)</h3>")
        parts.append(_simple_table(h, r))
        if any(row[0].endswith(" †") for row in r):
            parts.append(f'<p class="note">{_e(CATEGORY_NOTE)}</p>')
    return parts


def _failed_section(board: pd.DataFrame) -> List[str]:
    failed = board[board["status"] == "failed"] if not board.empty else board
    if failed.empty:
        return []
    rows = "".join(
        f'<tr class="failed"><td class="text">{_e(str(r.method))}</td><td class="text">{_e(str(r.dataset))}</td>'
        f"<td>{format_n(r.n_points)}</td><td>{r.sigma * 100:g}</td><td class=\"error\">{_e(str(r.error))}</td></tr>"
        for r in failed.itertuples())
    return ["<h2>Failed cells</h2>",
            '<p class="note">These cells failed twice (a failing cell is retried once); a later '
            "<code>sbdbench bench</code> retries them.</p>",
            '<table id="failed"><thead><tr><th class="text">method</th><th class="text">dataset</th><th>N</th>'
            f'<th>σ %</th><th class="text">error</th></tr></thead><tbody>{rows}</tbody></table>']


def _plots_section(images: Dict[str, bytes]) -> List[str]:
    if not images:
        return []
    parts = ["<h2>Plots</h2>"]
    for name, png in images.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<h3>{_e(name.replace("_", " "))}</h3><img class="plot" alt="{_e(name)}" src="data:image/png;base64,{data}">')
    return parts


def _reported_section(reported: pd.DataFrame) -> List[str]:
    from sbdbench.bench.leaderboard import paper_layout

    if reported.empty:
        return []
    parts = ['<section class="reported"><h2>Reported on PUNet: published numbers, not measured here</h2>',
             '<p class="note">Copied from papers for orientation only. They were computed on a different dataset '
             "(PUNet, not synth), with other code and other P2M implementations, so they are <b>not comparable "
             "row-for-row</b> with the measured tables above. Every row's source is in "
             "<code>baselines/reported.csv</code>; hover a source for its caveat.</p>"]
    for dataset in sorted(reported["dataset"].unique()):
        header, rows = paper_layout(reported[reported["dataset"] == dataset], with_rank=False)
        header[0] = f"Method (reported on {dataset})"
        parts.append(_simple_table(header, rows, "reported"))
    sources = reported.groupby("source", sort=False)["method"].unique()
    parts.append('<p class="note">Sources:</p><ul class="note">' + "".join(
        f"<li>{_e(', '.join(methods))}: {_e(source)}</li>" for source, methods in sources.items()) + "</ul>")
    parts.append(f"<details><summary>All {len(reported)} reported rows, one per cell, with source and caveat (sortable)</summary>")
    parts.append(_reported_table(reported))
    parts.append("</details></section>")
    return parts
