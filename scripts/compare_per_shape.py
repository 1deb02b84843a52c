"""Per-shape wins and losses of one leaderboard method against another, from a leaderboard's ``per_shape.csv``.

    python scripts/compare_per_shape.py LEADERBOARD_DIR/per_shape.csv --method sbd --against score:weights=official

Prints, per (dataset, N, σ): the two means (CD / P2M ×10⁴), how many shapes the method is better on by CD and by
P2M, and the shapes it loses by CD with both values. The counting is :func:`sbdbench.bench.versus.versus_table`,
which `sbdbench leaderboard --versus METHOD` also writes into a board (versus.csv and a table per dataset).
"""

from __future__ import annotations

import argparse

import pandas as pd

from sbdbench.bench.versus import versus_table


def compare(per_shape: pd.DataFrame, method: str, against: str) -> pd.DataFrame:
    """One row per (dataset, n_points, sigma) with both means and the win counts (shapes both methods scored)."""
    table = versus_table(per_shape, against)
    table = table[table["method"] == method]
    return pd.DataFrame({
        "dataset": table["dataset"], "N": table["n_points"], "sigma": table["sigma"], "shapes": table["shapes"],
        f"{method} CD/P2M": [f"{c:.2f} / {p:.2f}" for c, p in zip(table["cd_1e4"], table["p2m_1e4"])],
        f"{against} CD/P2M": [f"{c:.2f} / {p:.2f}" for c, p in zip(table["cd_1e4_against"], table["p2m_1e4_against"])],
        "better by CD": table["better_cd"], "better by P2M": table["better_p2m"], "lost by CD": table["lost_by_cd"],
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("per_shape")
    ap.add_argument("--method", required=True)
    ap.add_argument("--against", required=True)
    args = ap.parse_args()
    print(markdown(compare(pd.read_csv(args.per_shape), args.method, args.against)))


def markdown(table: pd.DataFrame) -> str:
    """A Markdown table (no third-party renderer needed)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
