"""The typed records of sbdbench.protocol: ShapeRecord (cell → journal → store) and TunedCell (tune → TOML → settings).

The golden strings below were written by the dict-based code these records replaced (journal lines, messages,
``settings_toml``); the records must reproduce them byte for byte.
"""

from __future__ import annotations

import json
import pickle

import pytest

from sbdbench.bench.cell import RECORD_KEYS as CELL_RECORD_KEYS
from sbdbench.bench.grid import Cell, canonical_json
from sbdbench.bench.journal import CellJournal
from sbdbench.bench.store import ResultsStore, RunInfo, utc_now
from sbdbench.errors import DataError
from sbdbench.methods.settings import frozen_params
from sbdbench.methods.tuning import CELL_KEYS as TUNING_CELL_KEYS
from sbdbench.methods.tuning import settings_toml
from sbdbench.protocol import CELL_KEYS, METRICS, RECORD_KEYS, ShapeRecord, TunedCell

GOOD = {"shape": "s0", "category": "smooth", "n_points": 1000, "sigma": 0.01, "n_out": 1000, "cd": 1e-4, "p2m": 5e-5,
        "p2m_pt3d": 3e-5, "hd": 0.01, "seconds": 0.5, "peak_mem_mb": None}
#: ``json.dumps(record, sort_keys=True)`` of GOOD as the journal wrote it before ShapeRecord
GOOD_LINE = ('{"category": "smooth", "cd": 0.0001, "hd": 0.01, "n_out": 1000, "n_points": 1000, "p2m": 5e-05, '
             '"p2m_pt3d": 3e-05, "peak_mem_mb": null, "seconds": 0.5, "shape": "s0", "sigma": 0.01}')


def test_record_keys_are_the_fields_in_csv_order():
    assert RECORD_KEYS == ("shape", "category", "n_points", "sigma", "n_out", *METRICS, "seconds", "peak_mem_mb")
    assert CELL_RECORD_KEYS is RECORD_KEYS
    assert CELL_KEYS == ("n_points", "sigma", "shapes", "cd", "noisy_cd", "seconds_per_shape", "searched", "held_from",
                         "params", "within", "max_seconds", "best_params", "best_cd", "trials")
    assert TUNING_CELL_KEYS is CELL_KEYS


def test_shape_record_round_trips_and_writes_the_old_journal_line():
    record = ShapeRecord.from_dict(GOOD)
    assert record.cd == 1e-4 and record.peak_mem_mb is None and record.shape == "s0"
    assert list(record.to_dict()) == list(RECORD_KEYS) and record.to_dict() == GOOD
    assert ShapeRecord.from_dict(record.to_dict()) == record
    assert json.dumps(record.to_dict(), sort_keys=True) == GOOD_LINE
    assert pickle.loads(pickle.dumps(record)) == record  # what the process pool and Dask send back
    with pytest.raises(AttributeError):
        record.cd = 2.0  # frozen


@pytest.mark.parametrize("bad, message", [
    ({**GOOD, "cd": float("nan")}, "shape 's0': cd is nan, not a finite number ≥ 0"),
    ({k: v for k, v in GOOD.items() if k not in ("hd", "seconds")}, "missing hd, seconds"),
    ([1], "not a JSON object: list"),
    ({**GOOD, "shape": 3}, "shape and category must be strings"),
    ({**GOOD, "n_out": True}, "shape 's0': n_out is True, not a count"),
    ({**GOOD, "seconds": -1.0}, "shape 's0': seconds is -1.0, not a finite number ≥ 0"),
    ({**GOOD, "p2m": "x"}, "shape 's0': p2m is 'x', not a finite number ≥ 0"),
    ({**GOOD, "n_points": 1000.0}, "shape 's0': n_points is 1000.0, not a count"),
])
def test_a_bad_record_is_the_same_one_line_error_as_before(bad, message):
    with pytest.raises(DataError) as info:
        ShapeRecord.from_dict(bad)
    assert str(info.value) == message and "\n" not in str(info.value)


def test_journal_keeps_good_lines_and_drops_a_bad_one_with_its_reason(tmp_path):
    journal = CellJournal(tmp_path, "key")
    journal.append(ShapeRecord.from_dict(GOOD))
    assert journal.path.read_text(encoding="utf-8") == GOOD_LINE + "\n"
    with open(journal.path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({**GOOD, "shape": "s1", "cd": float("inf")}) + "\n")
    found = journal.load(["s0", "s1"])
    assert found == {"s0": ShapeRecord.from_dict(GOOD)}
    assert (journal.dropped, journal.problem) == (1, "shape 's1': cd is inf, not a finite number ≥ 0")
    assert journal.path.read_text(encoding="utf-8") == GOOD_LINE + "\n"  # the bad line is gone, the good one kept as written


def test_store_writes_the_same_rows_from_records_and_from_their_dicts(tmp_path):
    info = RunInfo("0.1.0", "abc123", "host")
    rows = [{**GOOD, "shape": f"s{i}", "cd": 1e-4 * (i + 1), "peak_mem_mb": 12.0 if i else None} for i in range(3)]
    frames = []
    for name, records in (("dicts", rows), ("records", [ShapeRecord.from_dict(r) for r in rows])):
        with ResultsStore(tmp_path / f"{name}.db") as store:
            cell = Cell("pca", canonical_json({"k": 8}), "tiny", "/data", "mhash", 1000, 0.01)
            assert store.record_finished(cell, records, info=info, started_at=utc_now()) is not None
            frames.append(store.shapes_frame().drop(columns=["run_id"]))
    assert frames[0].equals(frames[1])
    assert frames[1]["cd"].tolist() == pytest.approx([1e-4, 2e-4, 3e-4], rel=1e-15) and frames[1]["peak_mem_mb"].isna().tolist() == [True, False, False]


# --- TunedCell ---------------------------------------------------------------------------------------
FULL = {"n_points": 10000, "sigma": 0.01, "shapes": ["a_train01", "b_train02"], "cd": 1.25e-4, "noisy_cd": 3.5e-4,
        "seconds_per_shape": 0.125, "searched": ["radius_scale", "iterations"], "held_from": "",
        "params": {"k": 12, "radius_scale": 2.0, "iterations": 1}, "within": 0.01, "max_seconds": 0.2,
        "best_params": {"k": 12, "radius_scale": 4.0, "iterations": 2}, "best_cd": 1.24e-4,
        "trials": [{"radius_scale": 2.0, "iterations": 1, "cd": 1.25e-4, "seconds": 0.1},
                   {"radius_scale": 4.0, "iterations": 2, "cd": 1.24e-4, "seconds": 0.3}]}
#: an older cell: no seconds_per_shape, searched, held_from, within...
SHORT = {"n_points": 50000, "sigma": 0.02, "shapes": ["a_train01"], "cd": 2e-4, "noisy_cd": 6e-4,
         "params": {"radius_scale": 4.0}, "trials": [{"radius_scale": 4.0, "cd": 2e-4}]}
HEADER = {"method": "jet", "paper": "Cazals & Pouget", "sbdbench_version": "0.1.0", "date": "2026-11-25", "dataset": "synth",
          "split": "train", "score": "mean Chamfer distance", "seed": 0, "fixed_params": {"k": 12},
          "grid": {"radius_scale": [2.0, 4.0], "iterations": [1, 2]}}
#: settings_toml({**HEADER, "cell": [FULL, SHORT]}) as the dict-based code wrote it
GOLDEN_TOML = (
    '# Frozen settings of `jet`, written by `sbdbench tune`. Do not edit by hand: re-run the tuning.\n\nmethod = "jet"\n'
    'paper = "Cazals & Pouget"\nsbdbench_version = "0.1.0"\ndate = "2026-11-25"\ndataset = "synth"\nsplit = "train"\n'
    'score = "mean Chamfer distance"\nseed = 0\n\n[fixed_params]\nk = 12\n\n[grid]\nradius_scale = [\n    2.0,\n    4.0,\n]\n'
    'iterations = [\n    1,\n    2,\n]\n\n[[cell]]\nn_points = 10000\nsigma = 0.01\nshapes = [\n    "a_train01",\n    "b_train02",\n]\n'
    'cd = 0.000125\nnoisy_cd = 0.00035\nseconds_per_shape = 0.125\nsearched = [\n    "radius_scale",\n    "iterations",\n]\n'
    'held_from = ""\nwithin = 0.01\nmax_seconds = 0.2\nbest_cd = 0.000124\ntrials = [\n'
    '    { radius_scale = 2.0, iterations = 1, cd = 0.000125, seconds = 0.1 },\n'
    '    { radius_scale = 4.0, iterations = 2, cd = 0.000124, seconds = 0.3 },\n]\n\n'
    '[cell.params]\nk = 12\nradius_scale = 2.0\niterations = 1\n\n[cell.best_params]\nk = 12\nradius_scale = 4.0\niterations = 2\n\n'
    '[[cell]]\nn_points = 50000\nsigma = 0.02\nshapes = [\n    "a_train01",\n]\ncd = 0.0002\nnoisy_cd = 0.0006\ntrials = [\n'
    '    { radius_scale = 4.0, cd = 0.0002 },\n]\n\n[cell.params]\nradius_scale = 4.0\n')


def test_tuned_cell_round_trips_and_leaves_unset_fields_out():
    full, short = TunedCell.from_dict(FULL), TunedCell.from_dict({**SHORT, "scratch": "dropped"})
    assert full.to_dict() == FULL and list(full.to_dict()) == list(CELL_KEYS)
    assert short.to_dict() == SHORT and short.held_from is None and short.within is None
    assert full.held_from == "" and "held_from" in full.to_dict()  # empty is set, only None is unset
    assert TunedCell(10000, 0.01, params={}).to_dict() == {"n_points": 10000, "sigma": 0.01, "params": {}}
    assert full.key == (10000, 0.01) and TunedCell(10000, 0.010000001).key == full.key
    for bad, message in (({"sigma": 0.01}, "tuned cell lacks n_points"), ([1], "a tuned cell must be a table, got list")):
        with pytest.raises(DataError, match=message):
            TunedCell.from_dict(bad)


def test_settings_toml_of_tuned_cells_is_byte_identical_to_the_old_writer(tmp_path):
    assert settings_toml({**HEADER, "cell": [FULL, SHORT]}) == GOLDEN_TOML
    assert settings_toml({**HEADER, "cell": [TunedCell.from_dict(FULL), TunedCell.from_dict(SHORT)]}) == GOLDEN_TOML
    (tmp_path / "jet.toml").write_text(GOLDEN_TOML, encoding="utf-8")
    assert frozen_params("jet", 10000, 0.012, folder=tmp_path) == FULL["params"]
    assert frozen_params("jet", 60000, None, folder=tmp_path) == SHORT["params"]


def test_a_frozen_cell_without_its_resolution_is_a_one_line_error(tmp_path):
    (tmp_path / "jet.toml").write_text(GOLDEN_TOML.replace("n_points = 50000\n", ""), encoding="utf-8")
    with pytest.raises(DataError, match=r"jet\.toml: tuned cell lacks n_points; re-run `sbdbench tune --method jet`"):
        frozen_params("jet", 10000, 0.01, folder=tmp_path)
