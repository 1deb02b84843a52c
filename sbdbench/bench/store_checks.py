"""Type checks of the results database's numeric columns (SQLite stores any value in any column)."""

from __future__ import annotations

import sqlite3
from typing import Optional

from sbdbench.protocol import METRICS

#: table → (columns that must be numbers or NULL, columns that must be numbers, a label for the row)
NUMERIC = {
    "shapes": ((*METRICS, "peak_mem_mb"), ("n_out", "seconds"), "run_id, shape"),
    "runs": ((), ("n_points", "sigma", "attempts", "seconds"), "run_id, method"),
}


def first_bad_value(conn: sqlite3.Connection) -> Optional[str]:
    """'table shapes, rowid 1 (run_id 3, shape 'cube'): cd is 'abc', not a number', or None when all are numbers."""
    for table, (nullable, required, label) in NUMERIC.items():
        for column in nullable + required:
            allowed = "('integer', 'real', 'null')" if column in nullable else "('integer', 'real')"
            row = conn.execute(f"SELECT rowid, {column}, {label} FROM {table} "
                               f"WHERE typeof({column}) NOT IN {allowed} ORDER BY rowid LIMIT 1").fetchone()
            if row is not None:
                names = [n.strip() for n in label.split(",")]
                where = ", ".join(f"{n} {v!r}" for n, v in zip(names, row[2:]))
                return f"table {table}, rowid {row[0]} ({where}): {column} is {row[1]!r}, not a number"
    return None
