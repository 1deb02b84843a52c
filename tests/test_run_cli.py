"""``sbdbench run`` / ``denoise`` / ``tune`` / ``methods`` end to end on a tiny synth dataset, and run_cell's errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sbdbench.cli import main
from sbdbench.errors import DataError, InputError
from sbdbench.methods.base import Denoiser


@pytest.fixture()
def synth(request, tmp_path_factory, monkeypatch):
    """The shared ``tiny_synth`` fixture if conftest has one, else a 2-shape synth at 1000 points; the
    returned dataset is reachable by name (``$SBDBENCH_HOME`` points at it)."""
    from sbdbench.data.dataset import register_dataset

    try:
        ds = request.getfixturevalue("tiny_synth")
    except pytest.FixtureLookupError:
        ds = _own_tiny_synth(tmp_path_factory)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SBDBENCH_HOME", str(home))
    register_dataset(ds.name, ds.root)
    return ds


_CACHE = {}


def _own_tiny_synth(tmp_path_factory):
    if "ds" not in _CACHE:
        from sbdbench.data.synth import build_synth_dataset

        root = tmp_path_factory.mktemp("tiny_synth") / "data"
        _CACHE["ds"] = build_synth_dataset(root=root, resolutions=(1000,), noise_levels=(0.02,), shapes=["sphere", "cube"],
                                           n_train=2, n_val=1, extra_noises=(), progress=False, workers=1)
    return _CACHE["ds"]


def _cell(ds):
    """The smallest resolution at its largest noise level (where smoothing clearly pays off)."""
    n = ds.resolutions("test")[0]
    return n, ds.noise_levels(n)[-1]


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_run_writes_scoredenoise_layout_and_beats_noisy(synth, tmp_path):
    n, sigma = _cell(synth)
    for method in ("noisy", "jet"):
        res = _invoke("run", "--method", method, "--dataset", synth.name, "--resolutions", n, "--sigmas", sigma, "--out", tmp_path / method)
        assert res.exit_code == 0, res.output
        assert "cd_1e4" in res.output and "p2m_1e4" in res.output
        cell_dir = tmp_path / method / f"{synth.name}_{n}_poisson_{sigma:g}"
        assert sorted(p.stem for p in cell_dir.glob("*.xyz")) == synth.shapes("test")
    noisy = pd.read_csv(tmp_path / "noisy" / "per_shape.csv")
    jet = pd.read_csv(tmp_path / "jet" / "per_shape.csv")
    for col in ("shape", "category", "n_points", "sigma", "n_out", "cd", "p2m", "p2m_pt3d", "hd", "seconds", "peak_mem_mb", "params"):
        assert col in jet.columns
    assert (jet["n_out"] == n).all()
    assert jet["cd"].mean() < noisy["cd"].mean()
    summary = pd.read_csv(tmp_path / "jet" / "summary.csv")
    assert summary.loc[0, "cd_1e4"] == pytest.approx(jet["cd"].mean() * 1e4)


def test_run_max_memory_caps_each_cloud(synth, tmp_path):
    """--max-memory goes down to every cloud: a cap the cloud fits under gives the uncapped outputs, a cap too small
    for even one block is a one-line error naming a cap that fits (splitting itself: tests/test_blocks.py)."""
    n, sigma = _cell(synth)
    args = ("run", "--method", "pca", "--dataset", synth.name, "--resolutions", n, "--sigmas", sigma)
    whole = _invoke(*args, "--out", tmp_path / "whole")
    capped = _invoke(*args, "--out", tmp_path / "capped", "--max-memory", "2GB")
    assert whole.exit_code == 0 and capped.exit_code == 0, capped.output
    cell = f"{synth.name}_{n}_poisson_{sigma:g}"
    for shape in synth.shapes("test"):
        assert (tmp_path / "whole" / cell / f"{shape}.xyz").read_bytes() == (tmp_path / "capped" / cell / f"{shape}.xyz").read_bytes()
    tiny = _invoke(*args, "--out", tmp_path / "tiny", "--max-memory", "0.05MB")
    assert tiny.exit_code != 0 and "Traceback" not in tiny.output
    assert "--max-memory" in tiny.output and "MB or more" in tiny.output


def test_run_param_overrides_frozen_settings(synth, tmp_path):
    n, sigma = _cell(synth)
    res = _invoke("run", "--method", "pca", "--dataset", synth.name, "--resolutions", n, "--param", "iterations=3",
                  "--param", "k=10", "--out", tmp_path)
    assert res.exit_code == 0, res.output
    params = pd.read_csv(tmp_path / "per_shape.csv")["params"].iloc[0]
    assert '"iterations": 3' in params and '"k": 10' in params


@pytest.mark.parametrize("args,fragment", [
    (("--method", "nope"), "unknown method"),
    (("--method", "jet", "--resolutions", "777"), "no 777-point"),
    (("--method", "jet", "--sigmas", "0.5"), "no noisy inputs"),
    (("--method", "jet", "--param", "bogus=1"), "no parameter"),
    (("--method", "jet", "--param", "k=1"), "parameter k"),
    (("--method", "jet", "--dataset", "missing_ds"), "not present"),
])
def test_run_bad_input_is_one_line_error(synth, tmp_path, args, fragment):
    res = _invoke("run", *args, "--dataset", synth.name, "--out", tmp_path) if "--dataset" not in args else _invoke("run", *args, "--out", tmp_path)
    assert res.exit_code != 0
    assert fragment in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("suffix", [".xyz", ".ply", ".npy"])
def test_denoise_keeps_frame_and_format(synth, tmp_path, suffix):
    from scipy.spatial import cKDTree

    from sbdbench.io import read_points, write_points

    n, sigma = _cell(synth)
    shape = synth.shapes("test")[0]
    noisy = synth.load_noisy(shape, n, sigma) * 250.0 + np.array([1000.0, -20.0, 3.0])  # a user's own frame
    src = write_points(tmp_path / f"in{suffix}", noisy)
    dst = tmp_path / f"out{suffix}"
    res = _invoke("denoise", src, dst, "--method", "jet")
    assert res.exit_code == 0, res.output
    assert " s " in res.output and f"{n} -> {n} points" in res.output
    out = read_points(dst)
    assert out.shape == noisy.shape
    clean = synth.load_clean(shape, n) * 250.0 + np.array([1000.0, -20.0, 3.0])
    # same frame as the input, and closer to the clean surface than the input was
    d_out = cKDTree(clean).query(out)[0].mean()
    d_in = cKDTree(clean).query(noisy)[0].mean()
    assert d_out < d_in


def test_denoise_errors(tmp_path):
    np.savetxt(tmp_path / "bad.xyz", np.array([[0.0, 1.0], [2.0, 3.0]]))
    for args, fragment in [
        ((tmp_path / "missing.xyz", tmp_path / "o.xyz", "--method", "jet"), "no such file"),
        ((tmp_path / "bad.xyz", tmp_path / "o.xyz", "--method", "jet"), "bad.xyz"),
        ((tmp_path / "bad.xyz", tmp_path / "o.abc", "--method", "jet"), "unknown output format"),
        ((tmp_path / "bad.xyz", tmp_path / "bad.xyz", "--method", "jet"), "overwrite"),
    ]:
        res = _invoke("denoise", *args)
        assert res.exit_code != 0 and fragment in res.output, res.output
        assert "Traceback" not in res.output


def test_tune_uses_train_shapes_and_freezes_choice(synth, tmp_path):
    from sbdbench.methods.settings import frozen_params, load_settings

    n, sigma = _cell(synth)
    out = tmp_path / "baselines" / "pca.toml"
    res = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", n, "--sigmas", sigma,
                  "--max-shapes", 2, "--out", out)
    assert res.exit_code == 0, res.output
    data = load_settings("pca", out.parent)
    (cell,) = data["cell"]
    assert set(cell["shapes"]) <= set(synth.shapes("train"))
    assert not set(cell["shapes"]) & set(synth.shapes("test"))
    assert cell["cd"] < cell["noisy_cd"]
    assert cell["cd"] == min(t["cd"] for t in cell["trials"])
    assert len(cell["trials"]) == len(data["grid"]["radius_scale"]) * len(data["grid"]["iterations"])
    assert data["sbdbench_version"] and data["date"] and data["split"] == "train"
    assert frozen_params("pca", n, sigma, folder=out.parent) == cell["params"]


def test_tune_on_the_val_split_never_reads_train_or_test(synth, tmp_path):
    """Learned methods are tuned on ``val`` (their weights saw ``train``); ``test`` is refused."""
    from sbdbench.methods.settings import load_settings
    from sbdbench.methods.tuning import tune_method

    if not synth.shapes("val"):
        pytest.skip("this tiny synth has no val split")
    n, sigma = _cell(synth)
    out = tmp_path / "baselines" / "pca.toml"
    res = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--split", "val", "--resolutions", n,
                  "--sigmas", sigma, "--max-shapes", 2, "--out", out)
    assert res.exit_code == 0, res.output
    data = load_settings("pca", out.parent)
    (cell,) = data["cell"]
    assert cell["shapes"] and set(cell["shapes"]) <= set(synth.shapes("val")) and data["split"] == "val"
    assert "val shapes" in data["score"]
    refused = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--split", "test", "--out", out)
    assert refused.exit_code != 0 and "test" in refused.output and "Traceback" not in refused.output
    with pytest.raises(InputError, match="never the test split"):
        tune_method("pca", synth.name, [int(n)], [float(sigma)], split="test", out=out)


def test_methods_lists_every_method_with_params_and_paper():
    res = _invoke("methods")
    assert res.exit_code == 0
    for name in ("jet", "bilateral", "wlop", "graph_lap"):
        assert name in res.output
    assert "Cazals & Pouget" in res.output and "radius_scale=" in res.output


class _NaNMethod(Denoiser):
    name = "t_nan"
    paper = "test double"

    def __init__(self) -> None:
        pass

    def _denoise_unit(self, points, noise_level):
        out = points.copy()
        out[0, 0] = np.nan
        return out


def test_run_cell_names_the_failing_shape(synth):
    from sbdbench.bench.cell import CellError, run_cell

    n, sigma = _cell(synth)
    first = synth.shapes("test")[0]
    with pytest.raises(CellError, match=first):
        run_cell(_NaNMethod(), synth, n, sigma, None, progress=False)
    with pytest.raises(DataError):
        run_cell(_NaNMethod(), synth, n, 0.77, None, progress=False)


def test_run_cell_records(synth, tmp_path):
    from sbdbench.bench.cell import RECORD_KEYS, run_cell
    from sbdbench.methods import make_method

    n, sigma = _cell(synth)
    seen = []
    shape = synth.shapes("test")[-1]
    records = run_cell(make_method("pca"), synth, n, sigma, tmp_path, shapes=[shape], on_shape=seen.append, progress=False)
    assert seen == records and len(records) == 1
    assert tuple(records[0].to_dict()) == RECORD_KEYS
    assert (tmp_path / f"{shape}.xyz").is_file()
    assert records[0].peak_mem_mb > 0 and records[0].seconds > 0


def test_tune_refine_searches_only_the_radius_and_keeps_other_choices(synth, tmp_path):
    from sbdbench.methods.settings import load_settings

    n, sigma = _cell(synth)
    out = tmp_path / "pca.toml"
    assert _invoke("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", n, "--sigmas", sigma,
                   "--max-shapes", 2, "--out", out).exit_code == 0
    res = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", 2 * n, "--sigmas", sigma,
                  "--max-shapes", 2, "--refine", "radius_scale", "--out", out)
    assert res.exit_code == 0, res.output
    data = load_settings("pca", tmp_path)
    low, high = data["cell"]
    assert (low["n_points"], high["n_points"]) == (n, 2 * n)
    assert high["searched"] == ["radius_scale"]
    assert high["params"]["iterations"] == low["params"]["iterations"]
    assert len(high["trials"]) == len(data["grid"]["radius_scale"])
    bad = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", n, "--refine", "nope", "--out", out)
    assert bad.exit_code != 0 and "not in the grid" in bad.output
    # --values: a part of the grid (here two radii); the TOML keeps the method's grid, the cell lists what was tried
    two = data["grid"]["radius_scale"][:2]
    res = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", 2 * n, "--sigmas", sigma, "--max-shapes", 2,
                  "--refine", "radius_scale", "--values", "radius_scale=" + ",".join(map(str, two)), "--out", out)
    assert res.exit_code == 0, res.output
    again = load_settings("pca", tmp_path)
    assert again["grid"] == data["grid"]
    assert [t["radius_scale"] for t in again["cell"][1]["trials"]] == two
    assert again["cell"][1]["params"]["radius_scale"] in two
    for item, message in (("iterations=1,2", "does not search"), ("radius_scale=", "expects KEY=V1,V2")):
        bad = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", 2 * n, "--refine", "radius_scale",
                      "--values", item, "--out", out)
        assert bad.exit_code != 0 and message in bad.output, bad.output


def test_interrupted_run_keeps_the_scores_of_finished_cells(synth, tmp_path, monkeypatch):
    """A run that dies in its second (N, σ) cell has already written the first cell's per-shape scores."""
    from sbdbench.bench import cell as cell_mod

    n = synth.resolutions("test")[0]
    levels = synth.noise_levels(n)
    if len(levels) < 2:
        pytest.skip("the tiny dataset has a single noise level")
    real_run_cell, calls = cell_mod.run_cell, []

    def dies_in_second_cell(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run_cell(*args, **kwargs)

    monkeypatch.setattr(cell_mod, "run_cell", dies_in_second_cell)
    with pytest.raises(KeyboardInterrupt):
        cell_mod.run_method("pca", synth.name, [n], levels[:2], out=tmp_path / "pca", log=lambda s: None, progress=False)
    kept = pd.read_csv(tmp_path / "pca" / "per_shape.csv")
    assert sorted(kept["shape"]) == sorted(synth.shapes("test")) and set(kept["sigma"]) == {levels[0]}


def test_parts_of_a_grid_tuned_side_by_side_merge_into_one_choice(synth, tmp_path):
    """`tune --values` on two halves of a grid, then `merge-settings`: the trials are pooled and the best of all is
    chosen, exactly as one run over the whole grid chooses; a cell searched differently is replaced (later wins)."""
    from sbdbench.methods.settings import load_settings, tomllib

    n, sigma = _cell(synth)
    common = ("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", n, "--sigmas", sigma, "--max-shapes", 2)
    assert _invoke(*common, "--out", tmp_path / "whole" / "pca.toml").exit_code == 0
    whole = load_settings("pca", tmp_path / "whole")["cell"][0]
    radii = [t["radius_scale"] for t in whole["trials"]]
    values = sorted(set(radii), key=radii.index)
    halves = [values[: len(values) // 2], values[len(values) // 2:]]
    parts = []
    for i, half in enumerate(halves):
        parts.append(tmp_path / f"part{i}.toml")
        res = _invoke(*common, "--values", "radius_scale=" + ",".join(map(str, half)), "--out", parts[-1])
        assert res.exit_code == 0, res.output
    merged_path = tmp_path / "merged" / "pca.toml"
    res = _invoke("merge-settings", *parts, "--out", merged_path)
    assert res.exit_code == 0, res.output
    merged = tomllib.loads(merged_path.read_text(encoding="utf-8"))["cell"][0]
    assert len(merged["trials"]) == len(whole["trials"])
    assert merged["params"] == whole["params"] and merged["cd"] == pytest.approx(whole["cd"], rel=1e-12)
    # a refinement (other searched keys) of the same cell replaces it instead of pooling
    refined = tmp_path / "refined.toml"
    assert _invoke(*common, "--refine", "radius_scale", "--refine-from", merged_path, "--out", refined).exit_code == 0
    res = _invoke("merge-settings", merged_path, refined, "--out", tmp_path / "final.toml")
    assert res.exit_code == 0, res.output
    final = tomllib.loads((tmp_path / "final.toml").read_text(encoding="utf-8"))["cell"][0]
    assert final["searched"] == ["radius_scale"] and len(final["trials"]) == len(values)
    # files of another method, or a missing file, are refused in one line and nothing is written
    other = tmp_path / "other.toml"
    other.write_text((tmp_path / "final.toml").read_text(encoding="utf-8").replace('method = "pca"', 'method = "jet"'), encoding="utf-8")
    res = _invoke("merge-settings", tmp_path / "final.toml", other, "--out", tmp_path / "mixed.toml")
    assert res.exit_code != 0 and "different methods" in res.output and not (tmp_path / "mixed.toml").exists()
    res = _invoke("merge-settings", tmp_path / "nope.toml", "--out", tmp_path / "mixed.toml")
    assert res.exit_code != 0 and not (tmp_path / "mixed.toml").exists()


def test_tune_within_freezes_the_cheapest_trial_near_the_best(synth, tmp_path):
    """`tune --within 0.5`: the frozen point is the fastest trial within 50 % of the best score; the best is recorded."""
    from sbdbench.methods.settings import load_settings
    from sbdbench.methods.tuning import choose_trial

    trials = [{"cd": 1.0, "seconds": 9.0}, {"cd": 1.005, "seconds": 3.0}, {"cd": 1.2, "seconds": 1.0}, {"cd": 1.004, "seconds": 3.0}]
    assert choose_trial(trials) == (0, 0)
    assert choose_trial(trials, 0.01) == (0, 1)  # ties in cost -> the earlier grid point
    assert choose_trial(trials, 0.25) == (0, 2)
    n, sigma = _cell(synth)
    out = tmp_path / "baselines" / "pca.toml"
    res = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", n, "--sigmas", sigma, "--max-shapes", 2,
                  "--values", "radius_scale=2.0", "--param", "k=12", "--within", 0.5, "--out", out)
    assert res.exit_code == 0, res.output
    (cell,) = load_settings("pca", out.parent)["cell"]
    assert all(t["seconds"] > 0 for t in cell["trials"]) and cell["params"]["k"] == 12
    best = min(cell["trials"], key=lambda t: t["cd"])
    assert cell["cd"] <= best["cd"] * 1.5
    chosen = next(t for t in cell["trials"] if all(t[k] == v for k, v in cell["params"].items() if k in t))
    assert chosen["seconds"] == min(t["seconds"] for t in cell["trials"] if t["cd"] <= best["cd"] * 1.5)
    if chosen is not best:
        assert cell["best_cd"] == best["cd"] and cell["within"] == 0.5
    res = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", n, "--sigmas", sigma, "--within", -1, "--out", out)
    assert res.exit_code != 0 and "--within must be" in res.output
    res = _invoke("tune", "--method", "pca", "--dataset", synth.name, "--resolutions", n, "--sigmas", sigma, "--max-seconds", 0, "--out", out)
    assert res.exit_code != 0 and "--max-seconds must be > 0" in res.output and len(res.output.strip().splitlines()) == 1


def test_tune_max_seconds_caps_the_cost_of_the_frozen_trial():
    """`--max-seconds`: a trial slower than the cap is never frozen, however good; `within` applies to the best trial
    under the cap; no trial under the cap, or a cap ≤ 0, is a one-line error."""
    from sbdbench.errors import InputError
    from sbdbench.methods.tuning import choose_trial

    trials = [{"cd": 1.0, "seconds": 9.0}, {"cd": 1.02, "seconds": 5.0}, {"cd": 1.025, "seconds": 4.0}, {"cd": 1.5, "seconds": 1.0}]
    assert choose_trial(trials, 0.01) == (0, 0)
    assert choose_trial(trials, 0.0, max_seconds=6.0) == (0, 1)
    assert choose_trial(trials, 0.01, max_seconds=6.0) == (0, 2)  # 1.025 is within 1 % of 1.02, and cheaper
    assert choose_trial(trials, 0.0, max_seconds=1.0) == (0, 3)
    with pytest.raises(InputError, match="no trial ran within --max-seconds 0.5"):
        choose_trial(trials, 0.0, max_seconds=0.5)
    with pytest.raises(InputError, match="--max-seconds must be > 0"):
        choose_trial(trials, 0.0, max_seconds=0.0)


def test_merging_parts_of_a_grid_remakes_the_choice_under_within_and_the_cap(tmp_path):
    """Pooled trials are chosen again as one run over the union would choose: the larger `within` and the cap of
    either part apply, so a part run with `--max-seconds` keeps a faster trial frozen over a slower best one."""
    from sbdbench.methods.settings import tomllib
    from sbdbench.methods.tuning import merge_settings_files, settings_toml
    from sbdbench.protocol import TunedCell

    def part(name, trials, **extra):
        cell = TunedCell(50000, 0.02, shapes=["a", "b"], noisy_cd=5.0, seconds_per_shape=1.0, searched=["k"], held_from="",
                         params={"k": trials[0]["k"]}, cd=trials[0]["cd"], trials=trials, **extra)
        path = tmp_path / f"{name}.toml"
        path.write_text(settings_toml({"method": "pca", "cell": [cell]}), encoding="utf-8")
        return path

    slow_best = part("a", [{"k": 16, "cd": 1.00, "seconds": 150.0}])
    fast = part("b", [{"k": 8, "cd": 1.012, "seconds": 100.0}, {"k": 6, "cd": 1.011, "seconds": 85.0}], within=0.01)
    capped = part("c", [{"k": 4, "cd": 1.05, "seconds": 65.0}], within=0.01, max_seconds=105.0)
    merge_settings_files([slow_best, fast], tmp_path / "m1.toml")
    (cell,) = tomllib.loads((tmp_path / "m1.toml").read_text(encoding="utf-8"))["cell"]
    assert cell["params"] == {"k": 16} and "best_params" not in cell  # 1.011 is 1.1 % off the best: not within 1 %
    merge_settings_files([slow_best, fast, capped], tmp_path / "m2.toml")
    (cell,) = tomllib.loads((tmp_path / "m2.toml").read_text(encoding="utf-8"))["cell"]
    assert cell["params"] == {"k": 6} and cell["cd"] == 1.011 and cell["max_seconds"] == 105.0
    assert cell["best_params"] == {"k": 16} and cell["best_cd"] == 1.0 and len(cell["trials"]) == 4
