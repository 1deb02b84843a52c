"""The results store: one SQLite database (``$SBDBENCH_HOME/results.db``, WAL mode).

Two tables:

* ``runs``: one row per *finished attempt set* of a cell — method, params (JSON + hash), dataset,
  manifest hash, N, σ, noise model, device, sbdbench version, git commit, host, timestamps,
  status (``finished`` / ``failed`` / ``superseded``) and, for failures, the error text.
* ``shapes``: the per-shape records of a finished run (metrics raw, unscaled; seconds; peak memory).

Why it is safe:

* A cell's run row and all its shape rows are written in **one transaction** when the cell ends,
  so a killed or crashed cell leaves nothing behind and everything that finished is kept.
* A partial unique index allows at most one ``finished`` run per cell key, so two concurrent
  writers (two ``sbdbench bench`` processes on one database) can never duplicate a cell: the
  second one's transaction sees the first one's row and is dropped.
* Writers take the lock with ``BEGIN IMMEDIATE`` and wait (busy timeout) rather than fail.
* A database that is not readable as ours is a clear :class:`DataError`; it is never reset.
"""

from __future__ import annotations

import math
import os
import socket
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Set, Union

from sbdbench.errors import DataError, SbdbenchError
from sbdbench.protocol import METRICS, ShapeRecord

SCHEMA_VERSION = 2
DB_NAME = "results.db"
BUSY_TIMEOUT_S = 120.0

#: the :class:`~sbdbench.protocol.ShapeRecord` fields stored in ``shapes`` (N and σ are the run's).
SHAPE_FIELDS = ("shape", "category", "n_out", *METRICS, "seconds", "peak_mem_mb")
METRIC_FIELDS = METRICS

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    cell_key      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('finished', 'failed', 'superseded')),
    method        TEXT NOT NULL,
    params_json   TEXT NOT NULL,
    params_hash   TEXT NOT NULL,
    dataset       TEXT NOT NULL,
    manifest_hash TEXT NOT NULL,
    n_points      INTEGER NOT NULL,
    sigma         REAL NOT NULL,
    noise         TEXT NOT NULL,
    device        TEXT NOT NULL,
    artifacts     TEXT NOT NULL DEFAULT '',
    version       TEXT NOT NULL,
    git_commit    TEXT NOT NULL,
    host          TEXT NOT NULL,
    attempts      INTEGER NOT NULL,
    started_at    TEXT NOT NULL,
    finished_at   TEXT NOT NULL,
    seconds       REAL NOT NULL,
    error         TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_one_finished_per_cell ON runs (cell_key) WHERE status = 'finished';
CREATE INDEX IF NOT EXISTS runs_by_cell ON runs (cell_key);
CREATE TABLE IF NOT EXISTS shapes (
    run_id      INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    shape       TEXT NOT NULL,
    category    TEXT NOT NULL,
    n_out       INTEGER NOT NULL,
    cd          REAL,
    p2m         REAL,
    p2m_pt3d    REAL,
    hd          REAL,
    seconds     REAL NOT NULL,
    peak_mem_mb REAL,
    PRIMARY KEY (run_id, shape)
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');
"""


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older database up to :data:`SCHEMA_VERSION` in place (inside the caller's transaction).

    1 → 2: ``runs.artifacts`` (the weights digest of learned methods). Old rows get "": their cell keys
    never included a digest, so learned-method rows of version 1 are simply not found again (re-run).
    """
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or int(row[0]) != 1:
        return
    columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
    if "artifacts" not in columns:
        conn.execute("ALTER TABLE runs ADD COLUMN artifacts TEXT NOT NULL DEFAULT ''")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def default_db_path() -> Path:
    from sbdbench.paths import home

    return home() / DB_NAME


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunInfo:
    """Provenance of a run, stored with every cell."""

    version: str
    git_commit: str
    host: str


def current_run_info() -> RunInfo:
    """sbdbench version, git commit of the source tree (``-dirty`` when a tracked file outside ``leaderboard/``
    has uncommitted changes; ``sbdbench leaderboard`` refuses such rows without ``--allow-dirty``) and host name."""
    from sbdbench import __version__

    return RunInfo(__version__, git_commit(), socket.gethostname())


def git_commit(repo: Optional[Path] = None) -> str:
    """The commit of the sbdbench source tree (or of ``repo``), or 'unknown' (installed from a wheel, no git)."""
    import subprocess

    repo = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return "unknown"
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        # the published leaderboard/ is output, not code: regenerating it must not mark later runs dirty
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":(exclude)leaderboard"], capture_output=True, text=True, timeout=10)
        return head.stdout.strip()[:12] + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _finite_or_none(value) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _shape_row(cell, record: Union[ShapeRecord, Mapping[str, Any]]) -> tuple:
    """The ``shapes`` columns (after ``run_id``) of one per-shape record; a record lacking a field is an error."""
    rec = record.to_dict() if isinstance(record, ShapeRecord) else record
    missing = [k for k in SHAPE_FIELDS if k not in rec]
    if missing:
        raise SbdbenchError(f"{cell.label}: per-shape record lacks {', '.join(missing)}")
    return (str(rec["shape"]), str(rec["category"]), int(rec["n_out"]), *(_finite_or_none(rec[k]) for k in METRIC_FIELDS),
            float(rec["seconds"]), _finite_or_none(rec.get("peak_mem_mb")))


def _stays_empty(path: Path, fresh_s: float = 10.0, wait_s: float = 3.0) -> bool:
    """Whether ``path`` is an existing zero-byte file. A file created moments ago may be a database that a
    concurrent bench is setting up (SQLite creates it empty, then writes its first page): wait for that."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            st = path.stat()
        except OSError:
            return False
        if not path.is_file() or st.st_size > 0:
            return False
        if time.time() - st.st_mtime > fresh_s or time.monotonic() > deadline:
            return True
        time.sleep(0.05)


class ResultsStore:
    """Read and write the results database. Cheap to create; opens one connection per instance.

    Args:
        path: the database file (default ``$SBDBENCH_HOME/results.db``).
        create: create the file when absent (readers pass ``False`` and get a clear error instead).
        init: set up an existing *empty* (zero-byte) file as a new database; without it such a file is
            an error (an emptied database is more likely an accident than a fresh start).
    """

    def __init__(self, path: str | os.PathLike | None = None, *, create: bool = True, init: bool = False):
        self.path = Path(path) if path is not None else default_db_path()
        if not self.path.exists() and not create:
            raise DataError(f"no results database at {self.path} (run `sbdbench bench` first, or pass --db)")
        if not init and _stays_empty(self.path):
            raise DataError(f"results database {self.path} is an empty file (0 bytes), not a database; it was left "
                            f"untouched: `sbdbench bench --init-db` sets it up as a new one, or move it away")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SbdbenchError(f"cannot create folder {self.path.parent}: {exc.strerror or exc}") from None
        self._conn = self._open()

    # --- opening and checking ----------------------------------------------------------------
    def _corrupt(self, exc: Exception) -> DataError:
        return DataError(
            f"results database {self.path} is corrupt or not an sbdbench database ({exc}); "
            f"move it away (e.g. `mv {self.path} {self.path}.bad`) or pass --db to use another file — it was left untouched"
        )

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise DataError(f"cannot open results database {self.path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'no answer'}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not {"meta", "runs", "shapes"} <= tables:
                raise sqlite3.DatabaseError(f"unexpected tables {', '.join(sorted(tables))}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DataError(f"results database {self.path}: cannot switch to WAL mode (got {mode}); is it on a network filesystem?")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            with immediate_transaction(conn):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                _migrate(conn)
            version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if version is None or int(version[0]) != SCHEMA_VERSION:
                raise DataError(f"results database {self.path} has schema version {version[0] if version else '?'}; "
                                f"this sbdbench reads version {SCHEMA_VERSION} (upgrade sbdbench or use another --db)")
        except DataError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._corrupt(exc) from None
        return conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- queries -------------------------------------------------------------------------------
    def finished_keys(self) -> Set[str]:
        """Cell keys that have a finished run (a bench skips them)."""
        return {r[0] for r in self._conn.execute("SELECT cell_key FROM runs WHERE status = 'finished'")}

    def count_rows(self) -> Dict[str, int]:
        runs = self._conn.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        out = {status: n for status, n in runs}
        out["shapes"] = self._conn.execute("SELECT COUNT(*) FROM shapes").fetchone()[0]
        return out

    def check_types(self) -> None:
        """A one-line :class:`DataError` naming the first row whose numeric column holds something else
        (e.g. text written by hand with the sqlite3 shell), before pandas meets it."""
        from sbdbench.bench.store_checks import first_bad_value

        bad = first_bad_value(self._conn)
        if bad:
            raise DataError(f"results database {self.path}: {bad}; fix or delete that row (nothing was written)")

    def runs_frame(self):
        """All runs as a pandas DataFrame (one row per run)."""
        import pandas as pd

        return pd.read_sql_query("SELECT * FROM runs ORDER BY run_id", self._conn)

    def shapes_frame(self):
        """All per-shape rows joined with their run's identity, as a pandas DataFrame."""
        import pandas as pd

        return pd.read_sql_query(
            "SELECT s.*, r.cell_key, r.method, r.params_hash, r.dataset, r.manifest_hash, r.n_points, r.sigma, r.noise, r.device, "
            "r.artifacts "
            "FROM shapes s JOIN runs r USING (run_id) ORDER BY s.run_id, s.shape",
            self._conn,
        )

    # --- writes --------------------------------------------------------------------------------
    def _insert_run(self, cell, status: str, *, info: RunInfo, attempts: int, started_at: str, finished_at: str,
                    seconds: float, error: Optional[str]) -> int:
        cur = self._conn.execute(
            "INSERT INTO runs (cell_key, status, method, params_json, params_hash, dataset, manifest_hash, n_points, sigma, noise, "
            "device, artifacts, version, git_commit, host, attempts, started_at, finished_at, seconds, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cell.key, status, cell.method, cell.params_json, cell.params_hash, cell.dataset, cell.manifest_hash,
             int(cell.n_points), float(cell.sigma), cell.noise, cell.device, cell.artifacts,
             info.version, info.git_commit, info.host,
             int(attempts), started_at, finished_at, float(seconds), error),
        )
        return int(cur.lastrowid)

    def record_finished(self, cell, records: Sequence[Union[ShapeRecord, Mapping[str, Any]]], *, info: RunInfo,
                        attempts: int = 1, started_at: str, finished_at: Optional[str] = None, seconds: float = 0.0,
                        replace: bool = False) -> Optional[int]:
        """Store a finished cell and its per-shape records (:class:`~sbdbench.protocol.ShapeRecord`, or their
        :meth:`~sbdbench.protocol.ShapeRecord.to_dict` form) in one transaction.

        Returns the new run id, or ``None`` when the cell already has a finished run (written by a
        concurrent bench) and ``replace`` is false — nothing is written then.
        With ``replace``, the older finished run is kept but marked ``superseded``.
        """
        if not records:
            raise SbdbenchError(f"{cell.label}: no per-shape records to store")
        rows = [_shape_row(cell, rec) for rec in records]
        conn = self._conn
        with immediate_transaction(conn):
            existing = conn.execute("SELECT run_id FROM runs WHERE cell_key = ? AND status = 'finished'", (cell.key,)).fetchone()
            if existing is not None:
                if not replace:
                    conn.execute("ROLLBACK")
                    return None
                conn.execute("UPDATE runs SET status = 'superseded' WHERE run_id = ?", (existing[0],))
            run_id = self._insert_run(cell, "finished", info=info, attempts=attempts, started_at=started_at,
                                      finished_at=finished_at or utc_now(), seconds=seconds, error=None)
            conn.executemany(
                "INSERT INTO shapes (run_id, shape, category, n_out, cd, p2m, p2m_pt3d, hd, seconds, peak_mem_mb) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, *row) for row in rows],
            )
        return run_id

    def record_failed(self, cell, error: str, *, info: RunInfo, attempts: int, started_at: str,
                      finished_at: Optional[str] = None, seconds: float = 0.0) -> int:
        """Store a failed cell with its error text (no shape rows). A later bench retries it."""
        with immediate_transaction(self._conn):
            return self._insert_run(cell, "failed", info=info, attempts=attempts, started_at=started_at,
                                    finished_at=finished_at or utc_now(), seconds=seconds, error=str(error))


@contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the write lock, waiting on the busy timeout) … ``COMMIT``; any exception rolls back and
    propagates. A body that ends the transaction itself (an early ``ROLLBACK``) is left as it is."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if conn.in_transaction:
        conn.execute("COMMIT")


def open_store(path: str | os.PathLike | None = None, *, create: bool = True) -> ResultsStore:
    """Open (or create) the results database; see :class:`ResultsStore`."""
    return ResultsStore(path, create=create)

