"""Leaderboard plots (matplotlib, headless): metric vs noise, per-category bars, time vs quality.

Each plot is returned as PNG bytes, so the HTML page embeds it as a ``data:`` URI and the Markdown
README links the same image written under ``leaderboard/plots/``. One colour per method across
every plot.
"""

from __future__ import annotations

import io
from typing import Dict, List

import numpy as np
import pandas as pd

from sbdbench.bench.grid import format_n
from sbdbench.protocol import GAUSSIAN


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # no metadata: the same numbers give the same bytes, so regenerated files diff cleanly
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def method_colors(methods: List[str]) -> Dict[str, tuple]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab20" if len(methods) > 10 else "tab10")
    return {m: cmap(i % cmap.N) for i, m in enumerate(sorted(methods))}


def metric_vs_noise(board: pd.DataFrame, dataset: str, noise: str, colors) -> bytes:
    """CD and P2M (×10⁴) against σ, one line per method; one row of two panels per resolution."""
    plt = _pyplot()
    sub = board[(board["dataset"] == dataset) & (board["noise"] == noise) & (board["status"] == "finished")]
    resolutions = sorted(sub["n_points"].unique())
    fig, axes = plt.subplots(len(resolutions), 2, figsize=(11, 3.9 * len(resolutions)), squeeze=False)
    for i, n in enumerate(resolutions):
        at_n = sub[sub["n_points"] == n]
        for j, (metric, label) in enumerate((("cd_1e4", "CD ×10⁴"), ("p2m_1e4", "P2M ×10⁴"))):
            ax = axes[i][j]
            for method, rows in at_n.groupby("method"):
                rows = rows.sort_values("sigma")
                ax.plot(rows["sigma"] * 100, rows[metric], marker="o", color=colors[method], label=method,
                        linestyle="--" if method == "noisy" else "-")
            ax.set_title(f"{dataset}, {format_n(n)} points: {label.split()[0]}")
            ax.set_xlabel("noise σ (% of bounding-sphere radius)")
            ax.set_ylabel(f"{label} (lower is better)")
            ax.set_xticks(sorted(at_n["sigma"].unique() * 100))
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="lower center", ncol=min(8, max(1, len(labels))), bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _png(fig)


def category_bars(per_shape: pd.DataFrame, dataset: str, noise: str, colors) -> bytes:
    """Grouped bars: mean CD ×10⁴ per shape category (over every σ), one bar per method."""
    plt = _pyplot()
    sub = per_shape[(per_shape["dataset"] == dataset) & (per_shape["noise"] == noise)]
    resolutions = sorted(sub["n_points"].unique())
    fig, axes = plt.subplots(1, len(resolutions), figsize=(6.5 * len(resolutions), 4.2), squeeze=False)
    for j, n in enumerate(resolutions):
        ax = axes[0][j]
        pivot = sub[sub["n_points"] == n].pivot_table(index="category", columns="method", values="cd_1e4", aggfunc="mean")
        methods = list(pivot.columns)
        width = 0.8 / max(1, len(methods))
        x = np.arange(len(pivot.index))
        for k, method in enumerate(methods):
            ax.bar(x + (k - (len(methods) - 1) / 2) * width, pivot[method].values, width, label=method, color=colors[method])
        ax.set_xticks(x)
        ax.set_xticklabels(pivot.index)
        ax.set_ylabel("CD ×10⁴, mean over σ (lower is better)")
        ax.set_title(f"{dataset}, {format_n(n)} points: CD per shape category")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="lower center", ncol=min(8, max(1, len(labels))), bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _png(fig)


def time_vs_quality(board: pd.DataFrame, dataset: str, noise: str, colors) -> bytes:
    """Seconds per shape (log scale) against CD ×10⁴ (mean over σ), one point per method and resolution."""
    plt = _pyplot()
    sub = board[(board["dataset"] == dataset) & (board["noise"] == noise) & (board["status"] == "finished")]
    means = sub.groupby(["method", "n_points"], as_index=False)[["sec_per_shape", "cd_1e4"]].mean()
    resolutions = sorted(means["n_points"].unique())
    markers = dict(zip(resolutions, "os^Dv"))
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for rec in means.itertuples():
        ax.scatter(max(rec.sec_per_shape, 1e-3), rec.cd_1e4, color=colors[rec.method], marker=markers.get(rec.n_points, "o"), s=60)
        ax.annotate(f"{rec.method} {format_n(rec.n_points)}", (max(rec.sec_per_shape, 1e-3), rec.cd_1e4),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("seconds per shape (log scale)")
    ax.set_ylabel("CD ×10⁴, mean over σ (lower is better)")
    ax.set_title(f"{dataset}: time vs quality (device: {', '.join(sorted(sub['device'].unique()))})")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _png(fig)


def make_plots(board: pd.DataFrame, per_shape: pd.DataFrame) -> Dict[str, bytes]:
    """Every plot of the leaderboard, by file stem (``<dataset>_<kind>``), as PNG bytes."""
    ok = board[board["status"] == "finished"]
    if ok.empty:
        return {}
    colors = method_colors(sorted(board["method"].unique()))
    images = {}
    for dataset, noise in sorted({(d, n) for d, n in zip(ok["dataset"], ok["noise"])}):
        stem = dataset if noise == GAUSSIAN else f"{dataset}_{noise}"
        images[f"{stem}_metric_vs_noise"] = metric_vs_noise(board, dataset, noise, colors)
        if not per_shape.empty:
            images[f"{stem}_per_category"] = category_bars(per_shape, dataset, noise, colors)
        images[f"{stem}_time_vs_quality"] = time_vs_quality(board, dataset, noise, colors)
    return images
