"""`leaderboard --versus`: per-shape wins and losses against a reference method, in versus.csv, README and HTML."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from sbdbench.bench.grid import Cell, canonical_json
from sbdbench.bench.leaderboard import write_leaderboard
from sbdbench.bench.store import ResultsStore, RunInfo, utc_now
from sbdbench.bench.versus import VERSUS_COLUMNS, versus_table
from sbdbench.cli import main
from sbdbench.errors import InputError

INFO = RunInfo("0.1.0", "abc123", "host")
# CD per shape of each method at every cell; "ours" wins on ball, ties on cube, loses on torus (by 0.5 ×10⁻⁴).
CD = {"ref": {"ball": 2e-4, "cube": 3e-4, "torus": 4e-4},
      "ours": {"ball": 1e-4, "cube": 3e-4, "torus": 4.5e-4},
      "worse": {"ball": 5e-4, "cube": 7e-4, "torus": 7e-4}}


def _records(method, n_points, sigma, shapes=("ball", "cube", "torus")):
    return [{"shape": s, "category": "c", "n_points": n_points, "sigma": sigma, "n_out": n_points,
             "cd": CD[method][s], "p2m": CD[method][s] / 2, "p2m_pt3d": CD[method][s] / 2, "hd": 0.01,
             "seconds": 1.0, "peak_mem_mb": 10.0} for s in shapes]


@pytest.fixture()
def db(tmp_path):
    path = tmp_path / "results.db"
    with ResultsStore(path) as store:
        for method in CD:
            for sigma in (0.01, 0.02):
                shapes = ("ball", "cube") if (method == "worse" and sigma == 0.02) else ("ball", "cube", "torus")
                cell = Cell(method, canonical_json({}), "tiny", "/x", "m1", 1000, sigma)
                store.record_finished(cell, _records(method, 1000, sigma, shapes), info=INFO, started_at=utc_now())
    return path


def test_versus_csv_counts_wins_ties_and_losses(db, tmp_path):
    out = tmp_path / "board"
    result = write_leaderboard(out, db, plots=False, versus="ref")
    assert out / "versus.csv" in result.files
    table = pd.read_csv(out / "versus.csv")
    assert list(table.columns) == VERSUS_COLUMNS
    assert set(table["method"]) == {"ours", "worse"} and set(table["against"]) == {"ref"}
    ours = table[(table.method == "ours") & (table.sigma == 0.01)].iloc[0]
    assert (ours.shapes, ours.better_cd, ours.better_p2m) == (3, 1, 1)  # the tie on cube is no win
    assert ours.lost_by_cd == "torus (4.50 > 4.00)"
    assert ours.cd_1e4 == pytest.approx((1 + 3 + 4.5) / 3, rel=1e-5) and ours.cd_1e4_against == pytest.approx(3.0)
    partial = table[(table.method == "worse") & (table.sigma == 0.02)].iloc[0]
    assert partial.shapes == 2 and partial.better_cd == 0  # only the shapes both methods scored
    assert partial.lost_by_cd == "cube (7.00 > 3.00); ball (5.00 > 2.00)"  # worst loss first


def test_versus_tables_in_readme_and_html(db, tmp_path):
    out = tmp_path / "board"
    write_leaderboard(out, db, plots=False, versus="ref")
    text = (out / "README.md").read_text()
    assert "### Per-shape wins against ref" in text
    lines = text.splitlines()
    assert "| ours | 1 / 1 of 3 | 1 / 1 of 3 |" in lines
    assert "| worse | 0 / 0 of 3 | 0 / 0 of 2 |" in lines
    html = (out / "index.html").read_text()
    assert "<h3>Per-shape wins against ref" in html and "1 / 1 of 3" in html


def test_no_versus_no_file(db, tmp_path):
    out = tmp_path / "board"
    write_leaderboard(out, db, plots=False)
    assert not (out / "versus.csv").exists()
    assert "Per-shape wins" not in (out / "README.md").read_text()


def test_unknown_reference_is_refused_before_writing(db, tmp_path):
    out = tmp_path / "board"
    with pytest.raises(InputError, match="no finished results for that method.*methods: ours, ref, worse"):
        write_leaderboard(out, db, plots=False, versus="score:weights=official")
    assert not out.exists()
    result = CliRunner().invoke(main, ["leaderboard", "--db", str(db), "--out", str(out), "--no-plots", "--versus", "nope"])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1 and "--versus nope" in result.output
    assert not out.exists()


def test_versus_table_is_empty_without_common_shapes():
    per_shape = pd.DataFrame({"method": ["ref", "ours"], "dataset": ["a", "b"], "noise": ["gaussian"] * 2,
                              "n_points": [10, 10], "sigma": [0.01, 0.01], "shape": ["s", "s"],
                              "cd_1e4": [1.0, 0.5], "p2m_1e4": [1.0, 0.5]})
    table = versus_table(per_shape, "ref")
    assert table.empty and list(table.columns) == VERSUS_COLUMNS
