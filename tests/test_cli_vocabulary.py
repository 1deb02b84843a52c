"""One CLI vocabulary (#19, items 3-5): --resolutions / --sigmas / --sigma / --noise-kind / --out / --quiet in
every command, the old spellings as warned aliases, bench progress and its checks before work, evaluate's
inferred resolution and --shapes, and denoise's σ / frozen-cell line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from sbdbench.cli import main
from sbdbench.errors import DataError


def _params(command: str, args):
    """The parsed parameters of ``sbdbench COMMAND ARGS`` (nothing runs)."""
    cmd = main.commands[command]
    with cmd.make_context(command, list(args)) as ctx:
        return ctx.params


# --- every old spelling still works, and warns once -------------------------------------------
ALIASES = [  # command, required args, old spelling, value, parameter, parsed value
    ("build", [], "--noise-levels", "2%", "sigmas", [0.02]),
    ("build", [], "--noise", "laplace", "noise_kind", "laplace"),
    ("run", ["--method", "jet"], "--resolution", "10K", "resolutions", [10000]),
    ("run", ["--method", "jet"], "--noise", "1%,3%", "sigmas", [0.01, 0.03]),
    ("tune", ["--method", "jet"], "--resolution", "50K", "resolutions", [50000]),
    ("tune", ["--method", "jet"], "--noise", "2%", "sigmas", [0.02]),
    ("bench", [], "--noise", "0.02", "sigmas", [0.02]),
    ("bench", [], "--noise-model", "laplace", "noise_kind", "laplace"),
    ("evaluate", [], "--resolution", "10000", "resolutions", [10000]),
    ("denoise", ["in.xyz", "out.xyz", "--method", "jet"], "--noise-level", "2%", "sigma", 0.02),
    ("diagnose", [], "--n-points", "5K", "resolutions", [5000]),
]


@pytest.mark.parametrize("command,required,old,value,param,parsed", ALIASES, ids=[f"{a[0]}{a[2]}" for a in ALIASES])
def test_old_spelling_works_and_warns(capsys, command, required, old, value, parsed, param):
    params = _params(command, [*required, old, value])
    assert params[param] == pytest.approx(parsed) if not isinstance(parsed, str) else params[param] == parsed
    err = capsys.readouterr().err
    assert err.count("deprecated") == 1 and old in err and err.count("\n") == 1
    # the --old=value form too
    assert _params(command, [*required, f"{old}={value}"])[param] == params[param]


def test_fetch_no_progress_is_quiet(capsys):
    assert _params("fetch", ["--no-progress"])["quiet"] is True
    assert "deprecated; use --quiet" in capsys.readouterr().err


def test_new_spellings_do_not_warn_and_old_ones_are_not_in_help(capsys):
    _params("bench", ["--sigmas", "1%", "--noise-kind", "gaussian", "--resolutions", "10K"])
    assert capsys.readouterr().err == ""
    help_text = CliRunner().invoke(main, ["bench", "--help"]).output
    options = help_text.split("Deprecated spellings")[0]
    assert "--sigmas" in options and "--noise-model" not in options and "--noise " not in options


# --- 10K and 2% everywhere ----------------------------------------------------------------------
@pytest.mark.parametrize("command,required", [("build", []), ("run", ["--method", "jet"]), ("tune", ["--method", "jet"]),
                                              ("bench", []), ("evaluate", []), ("diagnose", [])])
def test_resolutions_accept_10k(command, required):
    assert _params(command, [*required, "--resolutions", "10K"])["resolutions"] == [10000]


@pytest.mark.parametrize("command,required", [("build", []), ("run", ["--method", "jet"]), ("tune", ["--method", "jet"]), ("bench", [])])
def test_sigmas_accept_percent(command, required):
    assert _params(command, [*required, "--sigmas", "1%,0.03"])["sigmas"] == pytest.approx([0.01, 0.03])


@pytest.mark.parametrize("command,required", [("denoise", ["a.xyz", "b.xyz", "--method", "jet"]), ("diagnose", [])])
def test_sigma_accepts_percent(command, required):
    assert _params(command, [*required, "--sigma", "2%"])["sigma"] == pytest.approx(0.02)


@pytest.mark.parametrize("text,fragment", [("ten", "must be integers"), ("0", "must be > 0"), ("1.0005K", "whole point counts"),
                                           (",", "is empty")])
def test_bad_resolutions_are_one_line_errors(text, fragment):
    result = CliRunner().invoke(main, ["run", "--method", "jet", "--resolutions", text])
    assert result.exit_code == 1 and fragment in result.output and "Traceback" not in result.output


def test_parsers():
    from sbdbench.cli_options import parse_counts, parse_sigmas

    assert parse_counts("10K, 50k,1.5K,2M,300") == [10000, 50000, 1500, 2000000, 300]
    assert parse_sigmas("1%,0.02, 2.5%") == pytest.approx([0.01, 0.02, 0.025])
    assert parse_counts(None) is None and parse_sigmas(None) is None


# --- --quiet --------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["build", "check-noise", "evaluate", "run", "denoise", "tune", "train", "diagnose", "bench", "fetch",
                                     "leaderboard"])
def test_quiet_everywhere(command):
    required = {"run": ["--method", "jet"], "tune": ["--method", "jet"], "train": ["--method", "score"],
                "denoise": ["a.xyz", "b.xyz", "--method", "jet"]}.get(command, [])
    assert _params(command, [*required, "--quiet"])["quiet"] is True


@pytest.fixture()
def tiny(tiny_synth, sbd_home):
    from sbdbench.data.dataset import register_dataset

    register_dataset(tiny_synth.name, tiny_synth.root)
    return tiny_synth


def test_run_quiet_prints_only_the_table(tiny, tmp_path):
    n = tiny.resolutions("test")[0]
    args = ["run", "--method", "noisy", "--dataset", tiny.name, "--resolutions", str(n), "--sigmas", "1%", "--out", str(tmp_path / "r")]
    loud = CliRunner().invoke(main, args)
    quiet = CliRunner().invoke(main, [*args, "--quiet"])
    assert loud.exit_code == quiet.exit_code == 0, quiet.output
    assert quiet.stderr == "" and "per-shape results" in loud.stderr
    assert "cd_1e4" in quiet.stdout


# --- bench: progress per shape, and every check before the first cell ---------------------------
def test_bench_reports_each_shape_with_an_eta(tiny, tmp_path):
    from sbdbench.bench import run_bench
    from sbdbench.bench.progress import ShapeProgress

    n = tiny.resolutions("test")[0]
    lines = []
    summary = run_bench(["noisy"], [tiny.name], [n], [0.01], db=str(tmp_path / "r.db"), log=lines.append,
                        progress=ShapeProgress(lines.append, tty=False, min_interval_s=0))
    assert summary.finished == 1
    total = len(tiny.shapes("test"))
    shown = [ln for ln in lines if "shapes, ETA" in ln]
    assert [ln.split(": ")[1].split(" ")[0] for ln in shown] == [f"{i}/{total}" for i in range(1, total)]


def test_bench_cli_shows_progress_unless_quiet(tiny, tmp_path, monkeypatch):
    from sbdbench.bench import runner
    from sbdbench.bench.progress import ShapeProgress

    seen = []
    real = runner.run_bench
    monkeypatch.setattr(runner, "run_bench", lambda *a, **k: seen.append(k["progress"]) or real(*a, **k))
    n = tiny.resolutions("test")[0]
    args = ["bench", "--methods", "noisy", "--datasets", tiny.name, "--resolutions", str(n), "--sigmas", "1%", "--db"]
    result = CliRunner().invoke(main, [*args, str(tmp_path / "q.db"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "shapes, ETA" not in result.output and "1 cells: 1 run" in result.output
    assert CliRunner().invoke(main, [*args, str(tmp_path / "p.db")]).exit_code == 0
    assert seen[0] is None and isinstance(seen[1], ShapeProgress)


def test_missing_weights_is_the_first_error(tiny, tmp_path, monkeypatch):
    """A learned method's missing weights file stops the bench before any cell runs (nothing stored)."""
    from sbdbench.bench import executors, run_bench

    ran = []
    monkeypatch.setattr(executors, "execute_cell", lambda *a, **k: ran.append(a))
    n = tiny.resolutions("test")[0]
    missing = tmp_path / "nope.pt"
    with pytest.raises(DataError, match="weights file not found"):
        run_bench(["noisy", f"score:weights={missing}"], [tiny.name], [n], [0.01], db=str(tmp_path / "w.db"))
    assert ran == [] and not (tmp_path / "w.db").exists()
    result = CliRunner().invoke(main, ["bench", "--methods", f"noisy,score:weights={missing}", "--datasets", tiny.name,
                                       "--resolutions", str(n), "--sigmas", "1%", "--db", str(tmp_path / "w.db")])
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0, result.output
    assert "weights file not found" in result.output and "score:weights=" in result.output


# --- evaluate: inferred resolution, --shapes ------------------------------------------------------
def _predictions(ds, folder, n, shapes):
    folder.mkdir(parents=True)
    for shape in shapes:
        shutil.copy(ds.noisy_dir(n, 0.01) / f"{shape}.xyz", folder / f"{shape}.xyz")
    return folder


def test_evaluate_infers_the_resolution_and_honours_shapes(tiny, tmp_path):
    from sbdbench.metrics.evaluate import infer_resolution

    low, high = tiny.resolutions("test")[:2]
    shapes = tiny.shapes("test")
    named = _predictions(tiny, tmp_path / f"synth_{high}_poisson_0.01", high, shapes)
    assert infer_resolution(tiny.name, named) == high
    plain = _predictions(tiny, tmp_path / "preds", low, shapes[:1])  # no N in the name: the point counts tell
    result = CliRunner().invoke(main, ["evaluate", "--dataset", tiny.name, "--pred-dir", str(plain), "--shapes", shapes[0],
                                       "--out", str(tmp_path / "e.csv")])
    assert result.exit_code == 0, result.output
    assert f"resolution N={low} (inferred" in result.stderr
    import pandas as pd

    frame = pd.read_csv(tmp_path / "e.csv")
    assert frame["shape"].tolist() == [shapes[0]] and (frame["n_points"] == low).all()
    missing = CliRunner().invoke(main, ["evaluate", "--dataset", tiny.name, "--pred-dir", str(plain)])
    assert missing.exit_code != 0 and "no prediction for shape" in missing.output
    bad = CliRunner().invoke(main, ["evaluate", "--dataset", tiny.name, "--pred-dir", str(plain), "--shapes", "nope"])
    assert bad.exit_code == 1 and "no shape 'nope'" in bad.output


def test_evaluate_says_when_it_cannot_infer(tiny, tmp_path):
    from sbdbench.errors import InputError
    from sbdbench.metrics.evaluate import infer_resolution

    folder = tmp_path / "odd"
    folder.mkdir()
    for shape in tiny.shapes("test"):
        np.savetxt(folder / f"{shape}.xyz", np.random.default_rng(0).normal(size=(77, 3)))
    with pytest.raises(InputError, match="give --resolutions"):
        infer_resolution(tiny.name, folder)


# --- denoise: the σ and the frozen cell -----------------------------------------------------------
def test_denoise_prints_sigma_and_frozen_cell(tiny, tmp_path):
    n = tiny.resolutions("test")[0]
    src = tiny.noisy_dir(n, 0.02) / f"{tiny.shapes('test')[0]}.xyz"
    given = CliRunner().invoke(main, ["denoise", str(src), str(tmp_path / "o.xyz"), "--method", "jet", "--sigma", "2%"])
    assert given.exit_code == 0, given.output
    assert "σ given: 0.02 (2 %); settings: frozen cell N=10000 σ=0.02" in given.stderr
    estimated = CliRunner().invoke(main, ["denoise", str(src), str(tmp_path / "o.xyz"), "--method", "jet"])
    assert "σ estimated: " in estimated.stderr and "frozen cell N=" in estimated.stderr
    quiet = CliRunner().invoke(main, ["denoise", str(src), str(tmp_path / "o.xyz"), "--method", "jet", "--quiet"])
    assert quiet.stderr == "" and "points in" in quiet.stdout
