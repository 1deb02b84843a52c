"""Per-shape wins and losses of one leaderboard method against another, from a leaderboard's ``per_shape.csv``.

    python scripts/compare_per_shape.py LEADERBOARD_DIR/per_shape.csv --method sbd --against score:weights=official

Prints, per (dataset, N, σ): the two means (CD / P2M ×10⁴), how many shapes the method is better on by CD and by
P2M, and the shapes it loses by CD with both values.
"""

from __future__ import annotations

import argparse

import pandas as pd


def compare(per_shape: pd.DataFrame, method: str, against: str) -> pd.DataFrame:
    """One row per (dataset, n_points, sigma) with both means and the win counts (shapes both methods scored)."""
    key = ["dataset", "n_points", "sigma", "shape"]
    a = per_shape[per_shape["method"] == method].set_index(key)
    b = per_shape[per_shape["method"] == against].set_index(key)
    both = a[["cd_1e4", "p2m_1e4"]].merge(b[["cd_1e4", "p2m_1e4"]], left_index=True, right_index=True, suffixes=("_a", "_b")).reset_index()
    rows = []
    for (ds, n, s), g in both.groupby(["dataset", "n_points", "sigma"]):
        lost = g[g["cd_1e4_a"] > g["cd_1e4_b"]]
        rows.append({"dataset": ds, "N": n, "sigma": s, "shapes": len(g),
                     f"{method} CD/P2M": f"{g['cd_1e4_a'].mean():.2f} / {g['p2m_1e4_a'].mean():.2f}",
                     f"{against} CD/P2M": f"{g['cd_1e4_b'].mean():.2f} / {g['p2m_1e4_b'].mean():.2f}",
                     "better by CD": int((g["cd_1e4_a"] < g["cd_1e4_b"]).sum()),
                     "better by P2M": int((g["p2m_1e4_a"] < g["p2m_1e4_b"]).sum()),
                     "lost by CD": ", ".join(f"{r.shape} {r.cd_1e4_a:.2f}>{r.cd_1e4_b:.2f}" for r in lost.itertuples())})
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("per_shape")
    ap.add_argument("--method", required=True)
    ap.add_argument("--against", required=True)
    args = ap.parse_args()
    table = compare(pd.read_csv(args.per_shape), args.method, args.against)
    print(markdown(table))


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table (no third-party renderer needed)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
