"""The SQLite results store: atomic cells, no duplicates, concurrent writers, clear errors on corruption."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3

import pytest

from sbdbench.bench.grid import Cell, canonical_json
from sbdbench.bench.store import ResultsStore, RunInfo, utc_now
from sbdbench.errors import DataError

INFO = RunInfo("0.1.0", "abc123", "testhost")


def make_cell(method="pca", sigma=0.01, params=None, n_points=1000) -> Cell:
    return Cell(method, canonical_json(params or {"k": 8}), "tiny", "/data", "mhash", n_points, sigma)


def records(n=3, base=1e-4):
    return [{"shape": f"s{i}", "category": "smooth", "n_points": 1000, "sigma": 0.01, "n_out": 1000,
             "cd": base * (i + 1), "p2m": base / 2, "p2m_pt3d": base / 3, "hd": 0.01, "seconds": 0.5, "peak_mem_mb": 12.0}
            for i in range(n)]


def test_wal_mode_and_roundtrip(tmp_path):
    db = tmp_path / "results.db"
    with ResultsStore(db) as store:
        cell = make_cell()
        run_id = store.record_finished(cell, records(), info=INFO, started_at=utc_now(), seconds=1.5)
        assert run_id is not None
        assert store.finished_keys() == {cell.key}
        shapes = store.shapes_frame()
        assert list(shapes["shape"]) == ["s0", "s1", "s2"]
        assert shapes["cd"].tolist() == pytest.approx([1e-4, 2e-4, 3e-4])
        runs = store.runs_frame()
        assert runs.loc[0, "status"] == "finished" and runs.loc[0, "git_commit"] == "abc123"
        assert runs.loc[0, "params_hash"] == cell.params_hash
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cell_key_tracks_params_and_manifest():
    a = make_cell(params={"k": 8})
    assert a.key == make_cell(params={"k": 8}).key
    assert a.key != make_cell(params={"k": 9}).key
    assert a.key != Cell("pca", a.params_json, "tiny", "/data", "other-manifest", 1000, 0.01).key
    assert a.key != make_cell(sigma=0.02).key


def test_no_duplicate_finished_rows(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        cell = make_cell()
        assert store.record_finished(cell, records(), info=INFO, started_at=utc_now()) is not None
        # a second writer of the same cell is dropped, and writes no shape rows
        assert store.record_finished(cell, records(base=9.0), info=INFO, started_at=utc_now()) is None
        assert store.count_rows() == {"finished": 1, "shapes": 3}
        # the unique index holds even against a raw insert
        with pytest.raises(sqlite3.IntegrityError):
            store._insert_run(cell, "finished", info=INFO, attempts=1, started_at="x", finished_at="x", seconds=0, error=None)


def test_replace_supersedes_old_run(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        cell = make_cell()
        first = store.record_finished(cell, records(), info=INFO, started_at=utc_now())
        second = store.record_finished(cell, records(base=2e-4), info=INFO, started_at=utc_now(), replace=True)
        runs = store.runs_frame().set_index("run_id")
        assert runs.loc[first, "status"] == "superseded" and runs.loc[second, "status"] == "finished"


def test_bad_record_writes_nothing(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        bad = records()
        del bad[2]["hd"]
        with pytest.raises(Exception, match="lacks hd"):
            store.record_finished(make_cell(), bad, info=INFO, started_at=utc_now())
        bad = records()
        bad[2]["n_out"] = "not a number"
        with pytest.raises(ValueError):
            store.record_finished(make_cell(), bad, info=INFO, started_at=utc_now())
        assert store.count_rows() == {"shapes": 0}


def test_failed_cell_keeps_error_and_is_not_finished(tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        cell = make_cell()
        store.record_failed(cell, "CellError: method 'x' failed on shape 'torus'", info=INFO, attempts=2, started_at=utc_now())
        assert store.finished_keys() == set()
        runs = store.runs_frame()
        assert runs.loc[0, "status"] == "failed" and "torus" in runs.loc[0, "error"] and runs.loc[0, "attempts"] == 2


def test_corrupt_database_is_a_clear_error_and_left_untouched(tmp_path):
    db = tmp_path / "results.db"
    garbage = b"this is not sqlite" * 300
    db.write_bytes(garbage)
    with pytest.raises(DataError, match=r"results database .* is corrupt.*move it away"):
        ResultsStore(db)
    assert db.read_bytes() == garbage


def test_damaged_page_is_detected(tmp_path):
    db = tmp_path / "results.db"
    with ResultsStore(db) as store:
        for i in range(30):
            store.record_finished(make_cell(sigma=0.001 * (i + 1)), records(20), info=INFO, started_at=utc_now())
    data = bytearray(db.read_bytes())
    assert len(data) > 8 * 4096
    data[5 * 4096: 6 * 4096] = b"\x5a" * 4096  # wreck one b-tree page in the middle
    db.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt"):
        ResultsStore(db)


def test_foreign_sqlite_database_is_refused(tmp_path):
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE photos (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(DataError, match="not an sbdbench database"):
        ResultsStore(db)


def test_missing_database_for_readers(tmp_path):
    with pytest.raises(DataError, match="no results database"):
        ResultsStore(tmp_path / "absent.db", create=False)


def _writer(db: str, worker: int, n_cells: int) -> None:
    with ResultsStore(db) as store:
        for i in range(n_cells):
            # every writer writes the same cells: exactly one copy of each must survive
            store.record_finished(make_cell(sigma=0.001 * (i + 1)), records(5), info=RunInfo("0.1", str(worker), "h"), started_at=utc_now())


def test_concurrent_writers_never_duplicate(tmp_path):
    db = str(tmp_path / "results.db")
    ResultsStore(db).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db, w, 15)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with ResultsStore(db) as store:
        assert store.count_rows() == {"finished": 15, "shapes": 75}
        shapes = store.shapes_frame()
        assert not shapes.duplicated(["cell_key", "shape"]).any()


def test_cell_key_tracks_artifacts_and_keeps_old_keys_without_them():
    plain = make_cell()
    assert dataclasses.replace(plain, artifacts="").key == plain.key  # classical cells keep their keys
    a = dataclasses.replace(plain, artifacts="weights=sha256:aaaa")
    assert a.key != plain.key and a.key != dataclasses.replace(plain, artifacts="weights=sha256:bbbb").key


def test_version_1_database_is_migrated_in_place(tmp_path):
    """A results.db written before the weights digest existed opens, keeps its rows and gains the column."""
    from sbdbench.bench import store as store_mod

    db = tmp_path / "old.db"
    old_schema = store_mod._SCHEMA.replace("    artifacts     TEXT NOT NULL DEFAULT '',\n", "").replace(
        f"'schema_version', '{store_mod.SCHEMA_VERSION}'", "'schema_version', '1'")
    assert "artifacts" not in old_schema
    conn = sqlite3.connect(db)
    conn.executescript(old_schema)
    conn.execute("INSERT INTO runs (cell_key, status, method, params_json, params_hash, dataset, manifest_hash, n_points, "
                 "sigma, noise, device, version, git_commit, host, attempts, started_at, finished_at, seconds) "
                 "VALUES ('k1', 'finished', 'pca', '{}', 'h', 'tiny', 'm', 1000, 0.01, 'gaussian', 'cpu', '0.1', 'c', 'h', 1, 'a', 'b', 1.0)")
    conn.commit()
    conn.close()
    with ResultsStore(db) as store:
        runs = store.runs_frame()
        assert runs["cell_key"].tolist() == ["k1"] and runs["artifacts"].tolist() == [""]
        cell = dataclasses.replace(make_cell(), artifacts="weights=sha256:abcd")
        store.record_finished(cell, records(), info=INFO, started_at=utc_now())
        assert store.runs_frame()["artifacts"].tolist() == ["", "weights=sha256:abcd"]
    version = sqlite3.connect(db).execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == store_mod.SCHEMA_VERSION



def test_immediate_transaction_commits_rolls_back_and_respects_an_early_rollback(tmp_path):
    from sbdbench.bench.store import immediate_transaction

    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x INTEGER)")
    with immediate_transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError):
        with immediate_transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("interrupted")
    with immediate_transaction(conn):
        conn.execute("INSERT INTO t VALUES (3)")
        conn.execute("ROLLBACK")  # the body decided not to write
    assert [r[0] for r in conn.execute("SELECT x FROM t")] == [1] and not conn.in_transaction
