"""Installable sbdbench (issue 19): protocol files found in every install, torch only when needed.

The wheel itself is built and used from a fresh venv by ``.ci/wheel_smoke.sh`` (CI); these tests check
the lookup rules of :mod:`sbdbench.resources` and the lazy torch import in-process or in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sbdbench import resources
from sbdbench.data.sources.cards import card_names, cards_dir
from sbdbench.errors import DataError
from sbdbench.methods.settings import baselines_dir, frozen_params, missing_settings_note, settings_out_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def no_overrides(monkeypatch):
    for var in resources.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)


def test_checkout_reads_and_writes_the_repository_folders(no_overrides):
    assert resources.checkout_root() == REPO
    assert cards_dir() == REPO / "datasets" and "synth" in card_names()
    assert baselines_dir() == REPO / "baselines"
    assert settings_out_path("jet") == REPO / "baselines" / "jet.toml"  # what `tune` writes is what is read


def test_environment_variables_override(tmp_path, monkeypatch):
    (tmp_path / "cards").mkdir()
    (tmp_path / "settings").mkdir()
    monkeypatch.setenv("SBDBENCH_DATASETS_DIR", str(tmp_path / "cards"))
    monkeypatch.setenv("SBDBENCH_BASELINES", str(tmp_path / "settings"))
    assert cards_dir() == tmp_path / "cards" and card_names() == []
    assert baselines_dir() == tmp_path / "settings"
    assert settings_out_path("jet") == tmp_path / "settings" / "jet.toml"
    assert frozen_params("jet", 10000, 0.02) == {}
    monkeypatch.setenv("SBDBENCH_DATASETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="SBDBENCH_DATASETS_DIR.*not a folder"):
        cards_dir()


def test_installed_package_reads_its_own_copy(tmp_path, monkeypatch, no_overrides):
    """Outside a checkout the shipped ``_protocol`` copy is read, and nothing is written into it."""
    shipped = tmp_path / "_protocol"
    for folder in ("datasets", "baselines"):
        (shipped / folder).mkdir(parents=True)
        for src in (REPO / folder).glob("*.toml"):
            (shipped / folder / src.name).write_bytes(src.read_bytes())
    monkeypatch.setattr(resources, "checkout_root", lambda: None)
    monkeypatch.setattr(resources, "packaged_dir", lambda name: shipped / name)
    assert cards_dir() == shipped / "datasets" and "punet" in card_names()
    assert frozen_params("jet", 10000, 0.02) == frozen_params("jet", 10000, 0.02, folder=REPO / "baselines")
    with pytest.raises(DataError, match="pass --out or set \\$SBDBENCH_BASELINES"):
        settings_out_path("jet")


def test_packaged_dir_is_inside_the_package():
    assert resources.packaged_dir("datasets") == Path(resources.__file__).parent / "_protocol" / "datasets"


def test_missing_settings_say_so_in_one_line(tmp_path, monkeypatch, no_overrides):
    assert missing_settings_note("jet") is None
    assert missing_settings_note("noisy") is None  # nothing to set
    monkeypatch.setenv("SBDBENCH_BASELINES", str(tmp_path))
    note = missing_settings_note("jet")
    assert note.startswith("warning: jet has no frozen settings") and "\n" not in note
    (tmp_path / "jet.toml").write_text('method = "jet"\n')
    assert "has no cells" in missing_settings_note("jet")


def test_denoise_without_frozen_settings_warns_on_stderr(tmp_path):
    from click.testing import CliRunner

    from sbdbench.cli import main

    cloud = tmp_path / "in.xyz"
    np.savetxt(cloud, np.random.default_rng(0).normal(size=(300, 3)))
    runner = CliRunner(env={"SBDBENCH_BASELINES": str(tmp_path)})
    result = runner.invoke(main, ["denoise", str(cloud), str(tmp_path / "out.xyz"), "--method", "jet"])
    assert result.exit_code == 0, result.output
    assert "warning: jet has no frozen settings" in result.output


LAZY = textwrap.dedent("""
    import sys
    from sbdbench.cli import main
    try:
        main(["denoise", sys.argv[1], sys.argv[2], "--method", "pca"], standalone_mode=False)
    finally:
        print("AFTER_PCA", "torch" in sys.modules)
    from sbdbench.methods.base import get_method_class
    get_method_class("score")  # a learned method still registers, importing torch now
    print("AFTER_SCORE", "torch" in sys.modules)
""")


def test_classical_denoise_never_imports_torch(tmp_path):
    cloud = tmp_path / "in.xyz"
    np.savetxt(cloud, np.random.default_rng(0).normal(size=(500, 3)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", LAZY, str(cloud), str(tmp_path / "out.xyz")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "AFTER_PCA False" in proc.stdout, proc.stdout
    assert "AFTER_SCORE True" in proc.stdout, proc.stdout


LAZY_BENCH = textwrap.dedent("""
    import sys
    from sbdbench.cli import main

    out, db = sys.argv[1], sys.argv[2]
    for args in (["run", "--method", "pca", "--resolutions", "1000", "--sigmas", "1%", "--out", out, "--quiet"],
                 ["evaluate", "--dataset", "synth", "--pred-dir", out + "/synth_1000_poisson_0.01", "--resolutions", "1000",
                  "--out", out + "/eval.csv", "--quiet"],
                 ["bench", "--methods", "pca", "--resolutions", "1000", "--sigmas", "1%", "--db", db, "--init-db", "--quiet"],
                 ["leaderboard", "--db", db, "--out", out + "/board", "--allow-dirty"]):
        main(args, standalone_mode=False)
        print(args[0], "torch" in sys.modules)
""")


def test_classical_run_evaluate_bench_leaderboard_never_import_torch(tmp_path, tiny_synth):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SBDBENCH_HOME": str(tiny_synth.root.parent)}
    proc = subprocess.run([sys.executable, "-c", LAZY_BENCH, str(tmp_path / "run"), str(tmp_path / "r.db")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for command in ("run", "evaluate", "bench", "leaderboard"):
        assert f"{command} False" in proc.stdout, proc.stdout
    assert (tmp_path / "run" / "eval.csv").is_file() and (tmp_path / "run" / "board" / "leaderboard.csv").is_file()
