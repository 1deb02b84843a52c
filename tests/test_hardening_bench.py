"""Issue #22, the bench part: every bad input to `bench` / `leaderboard` (and the dataset checks of `run` and
`evaluate --dataset`) is refused with one line and a non-zero exit, writing nothing and losing nothing.

W5 failed cells and bad variants/devices, W6 empty lists, W7 no implicit (re)builds, W8 tampered inputs,
W9 an empty results.db, T4 a hand-edited results.db, canonical variant parameters, invalid journal lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sbdbench.bench.grid import build_grid
from sbdbench.bench.runner import run_bench
from sbdbench.bench.store import ResultsStore
from sbdbench.cli import main
from sbdbench.errors import DataError, InputError
from sbdbench.methods import base as methods_base
from sbdbench.methods.base import Denoiser

CACHE = "cache"  # sbdbench's own hash cache under $SBDBENCH_HOME (not user data)


# --- helpers ------------------------------------------------------------------------------------
def snapshot(folder: Path) -> dict:
    """{relative path: sha256} of every file under ``folder`` except sbdbench's hash cache."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).parts[0] != CACHE}


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture()
def tiny(tiny_synth, sbd_home):
    """The session's tiny synth dataset registered (read only) under a private, otherwise empty home."""
    from sbdbench.data.dataset import register_dataset

    register_dataset(tiny_synth.name, tiny_synth.root)
    res = tiny_synth.resolutions("test")
    return tiny_synth.name, res, tiny_synth.noise_levels(res[0])


@pytest.fixture()
def own_copy(tiny_synth, sbd_home):
    """A copy of the tiny dataset as the user's own build in ``$SBDBENCH_HOME/data`` (free to damage)."""
    data = sbd_home / "data"
    shutil.copytree(tiny_synth.root, data)
    return data


def bench_args(name: str, res, sigmas, methods: str = "noisy") -> list:
    return ["bench", "--methods", methods, "--datasets", name, "--resolutions", str(res[0]), "--sigmas", str(sigmas[0])]


# --- W5: bad variants and devices are refused up front; failed cells make a non-zero exit ------------
@pytest.mark.parametrize("extra, fragments", [
    (["--methods", "pca:k=abc"], ["pca:k=abc", "parameter k must be int, got 'abc'"]),
    (["--methods", "pca:k=1"], ["'pca:k=1'", "parameter k must be an integer ≥ 3"]),
    (["--methods", "pca:iterations=2.5"], ["iterations must be int"]),
    (["--device", "bogus"], ["--device 'bogus' is not a torch device"]),
    (["--metrics-device", "cuda:x"], ["--metrics-device 'cuda:x' is not a torch device"]),
    (["--device", "meta"], ["meta tensors hold no data"]),
])
def test_bad_variant_or_device_is_refused_before_anything_runs(tiny, sbd_home, extra, fragments):
    name, res, sigmas = tiny
    before = snapshot(sbd_home)
    args = bench_args(name, res, sigmas, "noisy,pca") + extra
    if extra[0] == "--methods":
        args = bench_args(name, res, sigmas, extra[1])
    assert_one_line_error(cli(*args), *fragments)
    assert snapshot(sbd_home) == before and not (sbd_home / "results.db").exists()


def test_cuda_on_a_cpu_only_machine_is_refused(tiny, sbd_home):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    name, res, sigmas = tiny
    before = snapshot(sbd_home)
    assert_one_line_error(cli(*bench_args(name, res, sigmas), "--device", "cuda"), "--device 'cuda': CUDA is not available")
    assert snapshot(sbd_home) == before


def test_deleted_input_is_refused_before_anything_runs(own_copy, sbd_home):
    from sbdbench.data.dataset import open_dataset

    ds = open_dataset("synth")
    res, sigmas = ds.resolutions("test"), ds.noise_levels(1000)
    victim = ds.noisy_path(ds.shapes("test")[0], res[0], sigmas[0])
    victim.unlink()
    before = snapshot(sbd_home)
    rel = victim.relative_to(ds.root).as_posix()
    assert_one_line_error(cli(*bench_args("synth", res, sigmas)), f"missing file {rel}")
    assert snapshot(sbd_home) == before and not (sbd_home / "results.db").exists()


class _AlwaysFails(Denoiser):
    name = "test_always_fails"

    def _denoise_unit(self, points, noise_level):
        raise ValueError("synthetic failure")


@pytest.fixture()
def always_fails():
    methods_base.register(_AlwaysFails)
    yield _AlwaysFails.name
    methods_base._REGISTRY.pop(_AlwaysFails.name, None)


def test_failed_cell_makes_a_non_zero_exit(tiny, sbd_home, always_fails):
    name, res, sigmas = tiny
    result = cli(*bench_args(name, res, sigmas, f"noisy,{always_fails}"))
    assert_one_line_error(result, "1 of 2 cells failed", "retries them")
    assert "failed cell: test_always_fails" in result.output
    with ResultsStore(sbd_home / "results.db") as store:
        runs = store.runs_frame()
    assert sorted(zip(runs["method"], runs["status"])) == [("noisy", "finished"), (always_fails, "failed")]
    result = cli(*bench_args(name, res, sigmas, "noisy"))  # nothing failed in this run: exit 0
    assert result.exit_code == 0 and "1 already in the store" in result.output


# --- W6: an empty list is an error, never "the default grid" or "nothing" ------------------------------
@pytest.mark.parametrize("option, value, what", [
    ("--methods", "", "methods"), ("--methods", ",", "methods"), ("--methods", " , ", "methods"),
    ("--resolutions", "", "resolutions"), ("--resolutions", ",", "resolutions"),
    ("--sigmas", "", "noise levels"), ("--datasets", "", "datasets"), ("--datasets", ",", "datasets"),
])
def test_empty_list_is_an_error(tiny, sbd_home, option, value, what):
    name, res, sigmas = tiny
    args = bench_args(name, res, sigmas)
    args[args.index(option) + 1] = value
    before = snapshot(sbd_home)
    assert_one_line_error(cli(*args), f"the list of {what} is empty")
    assert snapshot(sbd_home) == before and not (sbd_home / "results.db").exists()


def test_empty_lists_in_the_api(tiny):
    name, res, sigmas = tiny
    for kwargs in ({"methods": []}, {"datasets": []}, {"resolutions": []}, {"noise_levels": []}):
        args = {"methods": ["noisy"], "datasets": [name], "resolutions": res[:1], "noise_levels": sigmas[:1], **kwargs}
        with pytest.raises(InputError, match="is empty"):
            build_grid(**args)


# --- W7: a user's dataset is never built, replaced or extended unasked -------------------------------
def test_subset_build_is_never_replaced(own_copy, sbd_home):
    before = snapshot(sbd_home)
    result = cli("bench", "--methods", "noisy", "--resolutions", "50K", "--sigmas", "1%")
    assert_one_line_error(result, "no test clouds at 50000 points", "it was left as is",
                          "`sbdbench build --resolutions 1000,2000,50000 --sigmas 0.01,0.02` rebuilds it")
    result = cli("bench", "--methods", "noisy", "--resolutions", "50K", "--sigmas", "1%", "--build")
    assert_one_line_error(result, "no test clouds at 50000 points")
    assert snapshot(sbd_home) == before


@pytest.mark.parametrize("args, command", [
    (["--quick"], "sbdbench build --no-train --resolutions 10000"),
    ([], "sbdbench build"),
    (["--resolutions", "10K", "--sigmas", "2%"], "sbdbench build --resolutions 10000 --sigmas 0.02"),
])
def test_absent_synth_names_the_build_command(sbd_home, args, command):
    assert_one_line_error(cli("bench", "--methods", "noisy", *args), f"build it with `{command}`", "--build")
    assert snapshot(sbd_home) == {} and not (sbd_home / "data").exists()


def test_build_flag_builds_only_an_absent_dataset(tiny_synth, sbd_home, monkeypatch):
    """`bench --build` builds exactly what `sbdbench build` would (the fake builder copies the tiny dataset)."""
    from sbdbench.data import synth

    calls = []

    def fake_build(**kwargs):
        calls.append(kwargs)
        shutil.copytree(tiny_synth.root, sbd_home / "data")

    monkeypatch.setattr(synth, "build_synth_dataset", fake_build)
    summary = run_bench(["noisy"], None, [1000], [0.01], quick=True, build=True, workers=1)
    assert calls == [{"resolutions": [1000], "noise_levels": [0.01], "include_train": False, "progress": False}]
    assert summary.finished == 1
    before = snapshot(sbd_home / "data")
    assert run_bench(["noisy"], None, [1000], [0.01, 0.02], build=True).finished == 1  # present: not built again
    assert len(calls) == 1 and snapshot(sbd_home / "data") == before


def test_makefile_bench_builds_explicitly():
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "sbdbench bench --quick --build" in makefile


# --- W8: a changed input file is refused (bench, run, evaluate --dataset) ------------------------------
def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture()
def tampered(own_copy):
    from sbdbench.data.dataset import open_dataset

    ds = open_dataset("synth")
    victim = ds.clean_path(ds.shapes("test")[1], 1000, "test")
    _flip_one_byte(victim)
    return ds, victim.relative_to(ds.root).as_posix()


def test_tampered_input_is_refused_by_bench(tampered, sbd_home):
    ds, rel = tampered
    before = snapshot(sbd_home)
    assert_one_line_error(cli(*bench_args("synth", [1000], [0.01])), f"{rel} does not match its manifest")
    assert_one_line_error(cli("verify", "synth"), "checksum mismatch")
    assert snapshot(sbd_home) == before and not (sbd_home / "results.db").exists()


def test_tampered_input_is_refused_by_run_and_evaluate(tampered, sbd_home, tmp_path):
    ds, rel = tampered
    out = tmp_path / "run_out"
    result = cli("run", "--method", "noisy", "--resolutions", "1000", "--sigmas", "0.01", "--out", str(out))
    assert_one_line_error(result, f"{rel} does not match its manifest")
    assert not out.exists()
    preds = tmp_path / "preds"
    preds.mkdir()
    for shape in ds.shapes("test"):
        shutil.copy(ds.clean_path(shape, 1000, "test"), preds / f"{shape}.xyz")
    before = snapshot(preds)
    result = cli("evaluate", "--dataset", "synth", "--pred-dir", str(preds), "--resolutions", "1000",
                 "--out", str(tmp_path / "scores.csv"))
    assert_one_line_error(result, f"{rel} does not match its manifest")
    assert snapshot(preds) == before and not (tmp_path / "scores.csv").exists()


def test_hash_cache_rehashes_only_changed_files(own_copy, monkeypatch):
    from sbdbench import paths
    from sbdbench.data.dataset import open_dataset
    from sbdbench.data.integrity import check_cell_inputs

    ds = open_dataset("synth")
    hashed = []
    real = paths.sha256_file
    monkeypatch.setattr(paths, "sha256_file", lambda p, *a: hashed.append(Path(p).name) or real(p, *a))
    n = check_cell_inputs(ds, 1000, 0.01)
    assert n == 3 * len(ds.shapes("test")) and len(hashed) == n
    hashed.clear()
    assert check_cell_inputs(ds, 1000, 0.01) == n and hashed == []  # size + mtime + inode unchanged: cached
    victim = ds.mesh_path(ds.shapes("test")[0])
    _flip_one_byte(victim)
    with pytest.raises(DataError, match="does not match its manifest"):
        check_cell_inputs(ds, 1000, 0.01)
    assert hashed == [victim.name]


# --- W9: an empty results.db is not silently set up ------------------------------------------------
def test_empty_database_file_needs_init_db(tiny, sbd_home):
    name, res, sigmas = tiny
    db = sbd_home / "results.db"
    db.write_bytes(b"")
    os.utime(db, (time.time() - 60, time.time() - 60))  # not a database another bench is creating right now
    assert_one_line_error(cli(*bench_args(name, res, sigmas)), "is an empty file (0 bytes)", "--init-db")
    assert db.read_bytes() == b""
    assert_one_line_error(cli("leaderboard", "--out", str(sbd_home / "board")), "is an empty file")
    assert not (sbd_home / "board").exists() and db.read_bytes() == b""
    result = cli(*bench_args(name, res, sigmas), "--init-db")
    assert result.exit_code == 0, result.output
    with ResultsStore(db) as store:
        assert store.count_rows()["finished"] == 1


# --- T4: a hand-edited value in results.db is a one-line error naming the row ---------------------------
@pytest.mark.parametrize("statement, fragment", [
    ("update shapes set cd='abc' where rowid=1", "table shapes, rowid 1 (run_id 1, shape "),
    ("update runs set sigma='x' where rowid=1", "table runs, rowid 1 (run_id 1, method 'noisy'): sigma is 'x'"),
])
def test_non_numeric_value_in_database(tiny, sbd_home, statement, fragment):
    name, res, sigmas = tiny
    run_bench(["noisy"], [name], res[:1], sigmas[:1])
    db = sbd_home / "results.db"
    con = sqlite3.connect(db)
    con.execute(statement)
    con.commit()
    con.close()
    before = snapshot(sbd_home)
    error = assert_one_line_error(cli("leaderboard", "--out", str(sbd_home / "board")), str(db), fragment, "not a number")
    assert "rowid 1" in error
    assert not (sbd_home / "board").exists() and snapshot(sbd_home) == before


# --- canonical variant parameters ---------------------------------------------------------------
def test_variant_parameters_are_canonical(tiny, sbd_home, tmp_path):
    from sbdbench.bench.leaderboard import write_leaderboard

    name, res, sigmas = tiny
    grid = build_grid(["pca:k=03", "pca:k=3", "pca:k=3.0"], [name], res[:1], sigmas[:1])
    assert [(c.method, c.params["k"]) for c in grid.cells] == [("pca:k=3", 3)]
    two = build_grid(["pca:radius_scale=2:iterations=1", "pca:iterations=01:radius_scale=2.0"], [name], res[:1], sigmas[:1])
    assert [c.method for c in two.cells] == ["pca:iterations=1:radius_scale=2"]
    assert isinstance(two.cells[0].params["radius_scale"], float)
    assert run_bench(["pca:k=03"], [name], res[:1], sigmas[:1]).finished == 1
    assert run_bench(["pca:k=3"], [name], res[:1], sigmas[:1]).skipped == 1
    write_leaderboard(tmp_path / "lb", sbd_home / "results.db", plots=False, allow_dirty=True)  # a dev tree may be dirty
    assert list(pd.read_csv(tmp_path / "lb" / "leaderboard.csv")["method"]) == ["pca:k=3"]


def test_typed_values_follow_the_constructor():
    from sbdbench.methods.params import canonical_spec, typed_overrides
    from sbdbench.methods import get_method_class

    pca = get_method_class("pca")
    assert typed_overrides("pca:k=none:radius_scale=3", pca) == {"k": None, "radius_scale": 3.0}
    assert canonical_spec("pca:radius_scale=1.50:k=04", pca) == "pca:k=4:radius_scale=1.5"
    with pytest.raises(InputError, match="given twice"):
        typed_overrides("pca:k=3:k=4", pca)
    with pytest.raises(InputError, match="radius_scale must be float, got 'wide'"):
        typed_overrides("pca:radius_scale=wide", pca)


# --- journal lines: valid JSON but a bad record is dropped with a warning ------------------------------
@pytest.mark.parametrize("damage", ["nan_cd", "missing_key", "not_object", "negative_seconds"])
def test_bad_journal_line_is_dropped_with_a_warning(tiny, tmp_path, damage):
    from sbdbench.bench.executors import execute_cell
    from sbdbench.bench.journal import journal_folder

    name, res, sigmas = tiny
    db = tmp_path / "r.db"
    cell = build_grid(["pca"], [name], res[:1], sigmas[:1]).cells[0]
    folder = journal_folder(db)
    full = execute_cell(cell, 1, str(folder))
    journal = folder / f"{cell.key}.jsonl"
    bad = full.records[0].to_dict()
    if damage == "nan_cd":
        bad["cd"] = float("nan")
    elif damage == "missing_key":
        del bad["hd"]
    elif damage == "negative_seconds":
        bad["seconds"] = -1.0
    line = json.dumps([1, 2]) if damage == "not_object" else json.dumps(bad)
    journal.write_text(line + "\n" + json.dumps(full.records[1].to_dict()) + "\n")
    lines = []
    summary = run_bench(["pca"], [name], res[:1], sigmas[:1], db=str(db), log=lines.append)
    assert (summary.finished, summary.failed) == (1, 0)
    warning = [m for m in lines if m.startswith("warning:")]
    assert len(warning) == 1 and "dropped 1 invalid journal line" in warning[0]
    assert "(1 shapes from an interrupted run)" in " ".join(lines)
    with ResultsStore(db) as store:
        cd = store.shapes_frame().set_index("shape")["cd"]
    assert np.isfinite(cd).all() and cd[full.records[0].shape] == pytest.approx(full.records[0].cd, rel=1e-12)
    assert not journal.exists()
