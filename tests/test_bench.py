"""The benchmark runner end to end on a tiny dataset: resume, kill-resume, failing cells, executors, CLI."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sbdbench.bench.grid import build_grid, canonical_json
from sbdbench.bench.runner import run_bench, run_cells
from sbdbench.bench.store import ResultsStore
from sbdbench.cli import main
from sbdbench.errors import DataError, InputError
from sbdbench.methods import base as methods_base
from sbdbench.methods.base import Denoiser

FAST = ["noisy", "pca"]


@pytest.fixture()
def tiny(tiny_synth, sbd_home):
    """(dataset name, resolutions, noise levels) of the session's tiny synth dataset, registered under
    a private $SBDBENCH_HOME (where the results database goes); the dataset itself is only read."""
    from sbdbench.data.dataset import register_dataset

    register_dataset(tiny_synth.name, tiny_synth.root)
    res = tiny_synth.resolutions("test")
    return tiny_synth.name, res, tiny_synth.noise_levels(res[0])


def _finished(db: Path) -> pd.DataFrame:
    with ResultsStore(db) as store:
        return store.runs_frame().query("status == 'finished'")


def test_bench_runs_every_cell_and_resumes(tiny, sbd_home):
    name, res, sigmas = tiny
    first = run_bench(FAST, [name], res[:1], sigmas)
    assert (first.finished, first.failed, first.skipped) == (4, 0, 0)
    db = sbd_home / "results.db"
    with ResultsStore(db) as store:
        counts = store.count_rows()
        shapes = store.shapes_frame()
    n_shapes = shapes["shape"].nunique()
    assert counts == {"finished": 4, "shapes": 4 * n_shapes}
    # the noisy baseline's error grows with σ (real metrics of real inputs were stored)
    mean_cd = shapes.groupby(["method", "sigma"])["cd"].mean().unstack("method")
    assert mean_cd["noisy"].is_monotonic_increasing and mean_cd["noisy"].iloc[0] > 0
    assert (shapes["seconds"] >= 0).all() and (shapes["n_out"] == res[0]).all()

    again = run_bench(FAST, [name], res[:1], sigmas)
    assert (again.finished, again.skipped) == (0, 4)
    with ResultsStore(db) as store:
        assert store.count_rows() == counts

    rerun = run_bench(["pca"], [name], res[:1], sigmas[:1], rerun=True)
    assert rerun.finished == 1
    runs = ResultsStore(db).runs_frame()
    assert (runs["status"] == "superseded").sum() == 1 and (runs["status"] == "finished").sum() == 4


def test_killed_bench_resumes_without_losing_or_duplicating(tiny, sbd_home):
    name, res, sigmas = tiny
    db = sbd_home / "results.db"
    methods = ["noisy", "pca", "laplacian"]
    args = ["--methods", ",".join(methods), "--datasets", name, "--resolutions", str(res[0]), "--sigmas", ",".join(map(str, sigmas))]
    n_cells = len(methods) * len(sigmas)
    proc = subprocess.Popen([sys.executable, "-m", "sbdbench.cli", "bench", *args], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done_before = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    done_before = sqlite3.connect(db, timeout=5).execute("SELECT COUNT(*) FROM runs WHERE status='finished'").fetchone()[0]
                except sqlite3.OperationalError:  # schema not created yet
                    done_before = 0
                if done_before >= 1:
                    break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert done_before >= 1, "the bench never finished a cell"
    before = _finished(db)
    assert 1 <= len(before) < n_cells, "the bench ended before it could be killed mid-run"
    # the killed cell left nothing: every shape row belongs to a finished run
    with ResultsStore(db) as store:
        shapes = store.shapes_frame()
    assert set(shapes["run_id"]) == set(before["run_id"])

    summary = run_bench(methods, [name], res[:1], sigmas)
    assert summary.skipped == len(before) and summary.finished == n_cells - len(before)
    after = _finished(db)
    assert len(after) == n_cells and after["cell_key"].is_unique
    kept = after.set_index("cell_key").loc[before["cell_key"], "run_id"]
    assert list(kept) == list(before["run_id"])  # the finished cells were not redone
    with ResultsStore(db) as store:
        shapes = store.shapes_frame()
    assert not shapes.duplicated(["cell_key", "shape"]).any()


class _FailsOnSecondShape(Denoiser):
    """A plug-in that breaks on the second shape it sees (raising, or returning NaN)."""

    name = "test_fails_once"

    def __init__(self, mode: str = "raise"):
        self.mode = mode
        self._calls = 0

    def _denoise_unit(self, points, noise_level):
        self._calls += 1
        if self._calls == 2:
            if self.mode == "raise":
                raise ValueError("synthetic failure")
            points = points.copy()
            points[0, 0] = np.nan
        return points


@pytest.fixture()
def failing_method():
    methods_base.register(_FailsOnSecondShape)
    yield _FailsOnSecondShape.name
    methods_base._REGISTRY.pop(_FailsOnSecondShape.name, None)


@pytest.mark.parametrize("mode", ["raise", "nan"])
def test_failing_method_is_recorded_and_others_continue(tiny, sbd_home, failing_method, mode):
    name, res, sigmas = tiny
    lines = []
    grid = build_grid([failing_method, "noisy"], [name], res[:1], sigmas[:1])
    cells = [c if c.method != failing_method else dataclasses.replace(c, params_json=canonical_json({"mode": mode}))
             for c in grid.cells]
    with ResultsStore(sbd_home / "results.db") as store:
        summary = run_cells(cells, store, log=lines.append)
        runs = store.runs_frame()
    assert (summary.finished, summary.failed) == (1, 1)
    failed = runs[runs["status"] == "failed"].iloc[0]
    assert failed["method"] == failing_method and failed["attempts"] == 2
    # attempt 1 fails on the 2nd shape, having journaled the 1st; the retry resumes at the 2nd shape with a fresh
    # method, whose own 2nd call (the 3rd shape) fails: the recorded error names that shape
    third_shape = sorted(ResultsStore(sbd_home / "results.db").shapes_frame()["shape"])[2]
    assert repr(third_shape) in failed["error"]
    assert ("synthetic failure" if mode == "raise" else "NaN") in failed["error"]
    assert any("retrying once" in line for line in lines)
    assert runs[runs["status"] == "finished"]["method"].tolist() == ["noisy"]


def test_dask_local_cluster_equals_sequential(tiny, sbd_home):
    pytest.importorskip("distributed")
    name, res, sigmas = tiny
    seq_db, dask_db = sbd_home / "seq.db", sbd_home / "dask.db"
    run_bench(FAST, [name], res[:1], sigmas, db=str(seq_db))
    summary = run_bench(FAST, [name], res[:1], sigmas, db=str(dask_db), executor="dask", workers=1)
    assert (summary.finished, summary.failed) == (4, 0)
    cols = ["cell_key", "shape", "n_out", "cd", "p2m", "p2m_pt3d", "hd"]
    seq = ResultsStore(seq_db).shapes_frame()[cols].sort_values(["cell_key", "shape"]).reset_index(drop=True)
    dsk = ResultsStore(dask_db).shapes_frame()[cols].sort_values(["cell_key", "shape"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(seq, dsk)


def test_process_pool_equals_sequential(tiny, sbd_home):
    name, res, sigmas = tiny
    seq_db, pool_db = sbd_home / "seq.db", sbd_home / "pool.db"
    run_bench(["pca"], [name], res[:1], sigmas, db=str(seq_db))
    summary = run_bench(["pca"], [name], res[:1], sigmas, db=str(pool_db), workers=2)
    assert summary.finished == 2
    cols = ["cell_key", "shape", "cd", "p2m", "hd"]
    seq = ResultsStore(seq_db).shapes_frame()[cols].sort_values(["cell_key", "shape"]).reset_index(drop=True)
    pool = ResultsStore(pool_db).shapes_frame()[cols].sort_values(["cell_key", "shape"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(seq, pool)


def test_changed_frozen_settings_make_new_cells(tiny, sbd_home, tmp_path, monkeypatch):
    name, res, sigmas = tiny
    folder = tmp_path / "baselines"
    folder.mkdir()
    monkeypatch.setenv("SBDBENCH_BASELINES", str(folder))
    (folder / "pca.toml").write_text(f"[[cell]]\nn_points = {res[0]}\nsigma = {sigmas[0]}\nparams = {{ k = 8 }}\n")
    grid = build_grid(None, [name], res[:1], sigmas[:1])
    assert [c.method for c in grid.cells] == ["noisy", "pca"]  # the reference row + methods with frozen settings
    assert grid.cells[1].params == {"k": 8}
    assert run_bench(None, [name], res[:1], sigmas[:1]).finished == 2
    assert run_bench(None, [name], res[:1], sigmas[:1]).skipped == 2
    (folder / "pca.toml").write_text(f"[[cell]]\nn_points = {res[0]}\nsigma = {sigmas[0]}\nparams = {{ k = 12 }}\n")
    assert run_bench(None, [name], res[:1], sigmas[:1]).finished == 1


def test_quick_leaves_out_slow_methods(tiny, sbd_home, tmp_path, monkeypatch):
    name, res, sigmas = tiny
    folder = tmp_path / "baselines"
    folder.mkdir()
    monkeypatch.setenv("SBDBENCH_BASELINES", str(folder))
    for method in ("pca", "wlop"):
        (folder / f"{method}.toml").write_text(f"[[cell]]\nn_points = {res[0]}\nsigma = {sigmas[0]}\nparams = {{}}\n")
    assert sorted({c.method for c in build_grid(None, [name], res[:1], sigmas[:1]).cells}) == ["noisy", "pca", "wlop"]
    quick = build_grid(None, [name], res[:1], sigmas[:1], quick=True)
    assert [c.method for c in quick.cells] == ["noisy", "pca"] and "wlop" in quick.notes[0]


def test_bad_input(tiny, sbd_home):
    name, res, sigmas = tiny
    with pytest.raises(InputError, match="unknown method.*nope"):
        build_grid(["nope"], [name], res, sigmas)
    with pytest.raises(DataError, match="not present"):
        build_grid(FAST, ["no_such_dataset"], res, sigmas)
    with pytest.raises(DataError, match="no test clouds at 777"):
        build_grid(FAST, [name], [777], sigmas)
    with pytest.raises(DataError, match="σ=0.09"):
        build_grid(FAST, [name], res, [0.09])
    with pytest.raises(InputError, match="--scheduler needs --executor dask"):
        run_bench(FAST, [name], res[:1], sigmas[:1], scheduler="tcp://127.0.0.1:1")


def test_cli_bench_and_leaderboard(tiny, sbd_home, tmp_path):
    name, res, sigmas = tiny
    runner = CliRunner()
    args = ["bench", "--methods", "noisy,pca", "--datasets", name, "--resolutions", str(res[0]), "--sigmas", f"{sigmas[0] * 100:g}%"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "2 cells: 2 run" in result.output
    out = tmp_path / "board"
    result = runner.invoke(main, ["leaderboard", "--out", str(out), "--allow-dirty"])  # a dev tree may be dirty
    assert result.exit_code == 0, result.output
    assert "written to" in result.output
    quiet = runner.invoke(main, ["leaderboard", "--out", str(tmp_path / "quiet"), "--allow-dirty", "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == "" and (tmp_path / "quiet" / "leaderboard.csv").is_file()
    board = pd.read_csv(out / "leaderboard.csv")
    per_shape = pd.read_csv(out / "per_shape.csv")
    assert sorted(board["method"]) == ["noisy", "pca"]
    for rec in board.itertuples():
        mine = per_shape[per_shape["method"] == rec.method]
        assert rec.cd_1e4 == pytest.approx(mine["cd_1e4"].mean(), rel=1e-5)
        assert rec.n_shapes == len(mine)

    result = runner.invoke(main, ["bench", "--methods", "nope", "--datasets", name])
    assert result.exit_code == 1 and "error: unknown method(s) nope" in result.output


def test_cli_corrupt_database_is_never_reset(tiny, sbd_home):
    name, res, sigmas = tiny
    db = sbd_home / "results.db"
    db.write_bytes(b"\x00garbage" * 500)
    result = CliRunner().invoke(main, ["bench", "--methods", "noisy", "--datasets", name, "--resolutions", str(res[0])])
    assert result.exit_code == 1
    assert f"results database {db} is corrupt" in result.output and "move it away" in result.output
    assert db.read_bytes() == b"\x00garbage" * 500
    result = CliRunner().invoke(main, ["leaderboard", "--out", str(sbd_home / "b")])
    assert result.exit_code == 1 and "corrupt" in result.output


def test_method_variants_are_separate_rows(tiny, sbd_home, tmp_path):
    """``pca:iterations=3`` is pca with one parameter fixed: its own cells, its own leaderboard row."""
    from sbdbench.bench.leaderboard import write_leaderboard

    name, res, sigmas = tiny
    grid = build_grid(["pca", "pca:iterations=3"], [name], res[:1], sigmas[:1])
    base, variant = grid.cells
    assert variant.method_name == "pca" and variant.params["iterations"] == 3 and base.params.get("iterations") != 3
    assert base.key != variant.key
    assert run_bench(["pca", "pca:iterations=3"], [name], res[:1], sigmas[:1]).finished == 2
    shapes = ResultsStore(sbd_home / "results.db").shapes_frame()
    cd = shapes.groupby("method")["cd"].mean()
    assert set(cd.index) == {"pca", "pca:iterations=3"} and cd["pca"] != cd["pca:iterations=3"]
    write_leaderboard(tmp_path / "lb", sbd_home / "results.db", plots=False, allow_dirty=True)  # a dev tree may be dirty
    board = pd.read_csv(tmp_path / "lb" / "leaderboard.csv")
    assert {"pca", "pca:iterations=3"} <= set(board["method"])
    with pytest.raises(InputError, match="has no parameter.*bogus"):
        build_grid(["pca:bogus=1"], [name], res[:1], sigmas[:1])
    with pytest.raises(InputError, match="expected name:key=value"):
        build_grid(["pca:3"], [name], res[:1], sigmas[:1])


def test_learned_cells_are_keyed_by_their_weights_file(tiny, tmp_path):
    """Re-trained weights must make new cells: the weights file's digest is part of the cell key."""
    import torch

    from sbdbench.methods.learned.checkpoint import save_project_weights
    from sbdbench.methods.learned.model import ScoreDenoiseModel

    name, res, sigmas = tiny
    torch.manual_seed(0)
    path = tmp_path / "w.pt"
    save_project_weights(path, ScoreDenoiseModel(), {"note": "first"})
    spec = f"score:weights={path}"
    first = build_grid([spec, "noisy"], [name], res[:1], sigmas[:1]).cells
    learned, classical = (next(c for c in first if c.method_name == m) for m in ("score", "noisy"))
    assert learned.artifacts.startswith("weights=sha256:") and classical.artifacts == ""
    assert build_grid([spec], [name], res[:1], sigmas[:1]).cells[0].key == learned.key  # stable
    save_project_weights(path, ScoreDenoiseModel(), {"note": "second"})  # same path, new weights
    again = build_grid([spec], [name], res[:1], sigmas[:1]).cells[0]
    assert again.params_json == learned.params_json and again.key != learned.key


def test_metrics_device_is_where_the_metrics_run(tiny, sbd_home, tmp_path):
    """``metrics_device`` reaches the metrics (not the key): the same cell scored on the CPU twice gives the same
    numbers; an absent CUDA device is refused before anything runs instead of running anywhere else."""
    import torch

    name, res, sigmas = tiny
    plain = build_grid(["pca"], [name], res[:1], sigmas[:1]).cells[0]
    moved = build_grid(["pca"], [name], res[:1], sigmas[:1], metrics_device="cpu").cells[0]
    assert moved.metrics_device == "cpu" and plain.metrics_device == "" and moved.key == plain.key
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    run_bench(["pca"], [name], res[:1], sigmas[:1], db=str(a))
    run_bench(["pca"], [name], res[:1], sigmas[:1], db=str(b), metrics_device="cpu")
    with ResultsStore(a) as sa, ResultsStore(b) as sb:
        np.testing.assert_array_equal(sa.shapes_frame()["cd"].to_numpy(), sb.shapes_frame()["cd"].to_numpy())
    if not torch.cuda.is_available():  # refused before any cell runs, and before the database is created
        with pytest.raises(InputError, match="--metrics-device 'cuda': CUDA is not available"):
            run_bench(["pca"], [name], res[:1], sigmas[:1], db=str(tmp_path / "c.db"), metrics_device="cuda")
        assert not (tmp_path / "c.db").exists()


def test_interrupted_cell_restarts_at_its_first_unfinished_shape(tiny, sbd_home, tmp_path):
    """Finished shapes of an unfinished cell are journaled beside the database; the next bench runs only the
    others (a planted marker value survives), deletes the journal once the cell is stored; --rerun ignores it."""
    import json

    from sbdbench.bench.executors import execute_cell
    from sbdbench.bench.journal import journal_folder

    name, res, sigmas = tiny
    db = tmp_path / "r.db"
    cell = build_grid(["pca"], [name], res[:1], sigmas[:1]).cells[0]
    folder = journal_folder(db)
    full = execute_cell(cell, 1, str(folder))  # journals every shape as it goes (the driver deletes the file)
    journal = folder / f"{cell.key}.jsonl"
    assert full.ok and full.resumed_shapes == 0
    assert [json.loads(line)["shape"] for line in journal.read_text().splitlines()] == [r.shape for r in full.records]
    first = dict(full.records[0].to_dict(), cd=0.123456)  # what a killed run left: one shape, then a line cut short
    journal.write_text(json.dumps(first) + "\n" + json.dumps(full.records[1].to_dict())[:25])
    summary = run_bench(["pca"], [name], res[:1], sigmas[:1], db=str(db))
    assert summary.finished == 1 and not journal.exists()
    with ResultsStore(db) as store:
        cd = store.shapes_frame().set_index("shape")["cd"]
    assert cd[first["shape"]] == 0.123456  # taken from the journal, not run again
    assert all(cd[r.shape] == pytest.approx(r.cd, rel=1e-12) for r in full.records[1:])
    journal.write_text(json.dumps(first) + "\n")
    run_bench(["pca"], [name], res[:1], sigmas[:1], db=str(db), rerun=True)
    with ResultsStore(db) as store:
        latest = store.shapes_frame().query("shape == @first['shape']")["cd"]
    assert (latest != 0.123456).any() and not journal.exists()


def test_pool_workers_end_when_the_bench_is_killed():
    """A local pool worker watches its parent: killing the bench (SIGKILL) ends the worker within seconds instead of
    leaving it to finish its cell as an orphan."""
    child = ("import os, time; from sbdbench.bench.executors import _exit_with_parent; "
             "_exit_with_parent(os.getppid(), 0.05); time.sleep(60)")
    parent = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child!r}]); "
              "print(p.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    time.sleep(1.0)  # the worker is up and watching
    os.kill(worker, 0)  # alive
    proc.kill()
    proc.wait(10)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its killed parent")


def test_bench_config_is_one_value_passed_down(tiny, sbd_home):
    from sbdbench.bench.config import BenchConfig

    name, res, sigmas = tiny
    config = BenchConfig(["noisy"], [name], res[:1], sigmas[:1], workers=1)
    assert config.methods == ("noisy",) and config.worker_count == 1 and BenchConfig(quick=True).worker_count >= 1
    assert BenchConfig.of(["noisy"], [name], noise_levels=[0.01]).sigmas == (0.01,)
    assert build_grid(config).cells == build_grid(["noisy"], [name], res[:1], sigmas[:1]).cells
    first = run_bench(config)
    again = run_bench(["noisy"], [name], res[:1], sigmas[:1])  # the same grid spelled as fields: nothing new to run
    assert (first.finished, again.finished, again.skipped) == (1, 0, 1)
