"""`sbdbench diagnose --method sbd`: the note's Jarque-Bera observation (marginal passes, nearest fails)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sbdbench.cli import main
from sbdbench.errors import InputError
from sbdbench.io import write_points
from sbdbench.methods.learned.diagnostics import COLUMNS, jarque_bera_table
from sbdbench.methods.learned.diffusion import make_schedule


def sphere(n: int, seed: int = 0) -> np.ndarray:
    """Fibonacci points on the unit sphere (an evenly spaced clean cloud)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.c_[np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)]


def test_marginal_passes_and_nearest_fails_as_the_note_reports():
    sched = make_schedule()
    table = jarque_bera_table([sphere(4000)], schedule=sched, noise_level=0.02, seed=0)
    assert list(table.columns) == COLUMNS
    t_in = sched.start_step(0.02)
    marginal = table[table.strategy == "marginal"]
    nearest = table[table.strategy == "nearest"].set_index("t")
    assert len(marginal) == t_in and bool(marginal["passes"].all())
    # below the input step the nearest construction is far from Gaussian (peaked: positive excess kurtosis)
    low = nearest.loc[1: t_in - 2]
    assert not bool(low["passes"].any())
    assert bool((low["excess_kurtosis"] > 0.2).all())
    # at t = t_in it *is* the noisy input, hence Gaussian
    assert bool(nearest.loc[t_in, "passes"])
    # the deviation grows as t goes down (more snapping, less Gaussian offset)
    assert nearest.loc[1, "jb_stat"] > nearest.loc[t_in - 1, "jb_stat"]


def test_table_is_deterministic_and_checks_its_arguments():
    a = jarque_bera_table([sphere(1000)], noise_level=0.01, seed=3)
    b = jarque_bera_table([sphere(1000)], noise_level=0.01, seed=3)
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(InputError):
        jarque_bera_table([sphere(100)], strategies=["furthest"])
    with pytest.raises(InputError):
        jarque_bera_table([])
    with pytest.raises(InputError):
        jarque_bera_table([sphere(100)], noise_level=0.0)


def test_diagnose_command_writes_table_and_plot(tmp_path):
    cloud = write_points(tmp_path / "sphere.xyz", sphere(2000) * 5.0 + 2.0)  # any frame: normalised inside
    out = tmp_path / "diag"
    result = CliRunner().invoke(main, ["diagnose", "--method", "sbd", "--cloud", str(cloud), "--sigma", "2%", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "marginal:" in result.output and "nearest:" in result.output
    table = pd.read_csv(out / "sbd_jb.csv")
    assert set(table.strategy) == {"marginal", "nearest"}
    assert (out / "sbd_jb.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diagnose_command_reports_bad_schedule_in_one_line(tmp_path):
    cloud = write_points(tmp_path / "sphere.xyz", sphere(500))
    result = CliRunner().invoke(main, ["diagnose", "--cloud", str(cloud), "--param", "schedule=wavy", "--out", str(tmp_path / "d")])
    assert result.exit_code != 0
    assert "unknown schedule" in result.output and "Traceback" not in result.output
