"""The frozen-settings TOML is written by tomli-w: whatever the keys and strings, it loads back equal."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from sbdbench.methods.settings import baselines_dir, frozen_params, load_settings
from sbdbench.methods.tuning import settings_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _doc(**over):
    doc = {"method": "jet", "paper": "p", "sbdbench_version": "0", "date": "2026-11-25", "dataset": "synth", "split": "train",
           "score": "cd", "seed": 0, "fixed_params": {}, "grid": {"radius_scale": [2.0, 4.0]},
           "cell": [{"n_points": 10000, "sigma": 0.01, "shapes": ["a"], "cd": 1e-4, "params": {"radius_scale": 2.0},
                     "trials": [{"radius_scale": 2.0, "cd": 1e-4}]}]}
    doc.update(over)
    return doc


def test_keys_and_strings_the_hand_written_writer_broke_load_back_equal():
    # the old writer wrote keys bare and strings without escaping newlines: each of these made invalid TOML
    awkward = {"radius scale": 1.5, "a.b": 2, 'q"uote': "x", "": 0}
    text = 'line one\nline "two" \\ tab\there\r\nend'
    doc = _doc(paper=text, fixed_params=awkward,
               cell=[{"n_points": 10000, "sigma": 0.01, "shapes": ["it's", "new\nline"], "cd": 1e-4, "held_from": text,
                      "params": awkward, "trials": [{**awkward, "cd": 1e-4}]}])
    back = tomllib.loads(settings_toml(doc))
    assert back["paper"] == text and back["fixed_params"] == awkward
    assert back["cell"][0]["params"] == awkward and back["cell"][0]["trials"] == [{**awkward, "cd": 1e-4}]
    assert back["cell"][0]["shapes"] == ["it's", "new\nline"] and back["cell"][0]["held_from"] == text


def test_numpy_scalars_and_tuples_are_written_as_plain_numbers_and_arrays():
    doc = _doc(seed=np.int64(3), grid={"k": (np.int32(8), np.int64(16)), "on": [np.bool_(True)]},
               cell=[{"n_points": np.int64(10000), "sigma": np.float32(0.02), "cd": np.float64(1.25e-4), "params": {"k": np.int64(8)},
                      "trials": [{"k": np.int64(8), "cd": np.float64(1.25e-4)}]}])
    back = tomllib.loads(settings_toml(doc))
    assert back["seed"] == 3 and back["grid"] == {"k": [8, 16], "on": [True]}
    cell = back["cell"][0]
    assert cell["n_points"] == 10000 and cell["sigma"] == pytest.approx(0.02) and cell["cd"] == 1.25e-4
    assert type(cell["n_points"]) is int and cell["params"] == {"k": 8}


def test_unknown_keys_are_not_written_and_a_value_toml_cannot_hold_is_one_line():
    back = tomllib.loads(settings_toml(_doc(scratch="dropped")))
    assert "scratch" not in back
    from sbdbench.errors import DataError

    with pytest.raises(DataError, match="cannot write the tuned settings of 'jet' as TOML"):
        settings_toml(_doc(seed=None))


@pytest.mark.parametrize("path", sorted(baselines_dir().glob("*.toml")), ids=lambda p: p.stem)
def test_committed_baselines_rewritten_by_tomli_w_give_the_same_frozen_settings(path, tmp_path):
    committed = load_settings(path.stem)
    assert committed and committed["cell"], path
    (tmp_path / path.name).write_text(settings_toml(committed), encoding="utf-8")
    assert load_settings(path.stem, tmp_path) == committed
    for cell in committed["cell"]:
        n, sigma = int(cell["n_points"]), float(cell["sigma"])
        assert frozen_params(path.stem, n, sigma, folder=tmp_path) == frozen_params(path.stem, n, sigma)
