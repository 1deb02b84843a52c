"""Leaderboard fairness and provenance (#19): like-with-like ranking, coverage, dirty rows, links, memory, out dir."""

from __future__ import annotations

import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from sbdbench.bench import cell as cell_mod
from sbdbench.bench.grid import Cell, canonical_json
from sbdbench.bench.leaderboard import default_out_dir, write_leaderboard
from sbdbench.bench.store import ResultsStore, RunInfo, git_commit, utc_now
from sbdbench.cli import main
from test_leaderboard import INFO, _records

REPO = Path(__file__).resolve().parents[1]
DIRTY = RunInfo("0.1.0", "def456def456-dirty", "host")
SIGMAS = (0.01, 0.02)


def _store(db: Path, cells) -> Path:
    """cells: (method, quality, sigma, n_shapes, info) → finished runs at N=1000 on the first n_shapes shapes."""
    with ResultsStore(db) as store:
        for method, quality, sigma, n_shapes, info in cells:
            cell = Cell(method, canonical_json({}), "tiny", "/x", "m1", 1000, sigma)
            store.record_finished(cell, _records(1000, sigma, quality)[:n_shapes], info=info, started_at=utc_now())
    return db


@pytest.fixture()
def uneven_db(tmp_path) -> Path:
    """jet, pca, noisy: every shape at 1 % and 2 %. score: better CD, but 2 of 3 shapes at 1 %.
    graph_lap: the best CD, but no 2 % cell at all."""
    cells = [(m, q, s, 3, INFO) for m, q in (("jet", 1.0), ("pca", 1.5), ("noisy", 3.0)) for s in SIGMAS]
    cells += [("score", 0.5, 0.01, 2, INFO), ("score", 0.9, 0.02, 3, INFO), ("graph_lap", 0.2, 0.01, 3, INFO)]
    return _store(tmp_path / "results.db", cells)


def _line(text: str, method: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {method} |"))


def test_partial_cell_is_never_bold_and_shows_its_coverage(uneven_db, tmp_path):
    write_leaderboard(tmp_path / "b", uneven_db, plots=False)
    text = (tmp_path / "b" / "README.md").read_text()
    score = _line(text, "score")
    # 1 %: 2 of 3 shapes → its (lower) value is shown with the coverage and not bold; graph_lap is best there
    assert "0.75 / 0.25 (2/3 shapes)" in score and "**0.75**" not in score
    assert _line(text, "graph_lap").split(" | ")[2].startswith("**0.40**")
    assert "**" not in _line(text, "jet").split(" | ")[2]
    # 2 %: score's complete cell is comparable and the best of the column
    assert score.endswith("| **3.60** / **1.20** |")
    assert "Shapes per cell: 3 in every column." in text
    assert "score: 1K 1% on 2 of 3 shapes" in text and "graph_lap: 1K 2% missing" in text
    board = pd.read_csv(tmp_path / "b" / "leaderboard.csv")
    row = board[(board.method == "score") & (board.sigma == 0.01)].iloc[0]
    assert row.n_shapes == 2 and row.n_expected == 3 and not row.complete


def test_incomplete_methods_are_out_of_rank_and_all(uneven_db, tmp_path):
    write_leaderboard(tmp_path / "b", uneven_db, plots=False)
    text = (tmp_path / "b" / "README.md").read_text()
    ranks = {m: _line(text, m).split(" | ")[1] for m in ("jet", "pca", "noisy", "score", "graph_lap")}
    assert ranks == {"jet": "1", "pca": "2", "noisy": "3", "score": "–", "graph_lap": "–"}
    # the ranked methods come first, in rank order
    first = text[text.index("| Method | Rank |"):].split("\n\n")[0].splitlines()[2:]
    assert [line.split(" | ")[0][2:] for line in first] == ["jet", "pca", "noisy", "graph_lap", "score"]
    board = pd.read_csv(tmp_path / "b" / "leaderboard.csv")
    assert board.groupby("method")["rank"].first().isna().to_dict() == {
        "graph_lap": True, "jet": False, "noisy": False, "pca": False, "score": True}
    # per-category 'all': graph_lap (best CD, one σ only) and score (one complete cell) have none and are marked
    cats = text[text.index("### Per category"):]
    assert _line(cats, "graph_lap †").endswith("| – |") and _line(cats, "score †").endswith("| – |")
    assert _line(cats, "jet").endswith("| **3.00** |") and "**" not in _line(cats, "graph_lap †")
    assert "† lacks a complete cell" in cats


def test_dirty_rows_are_refused_unless_allowed(tmp_path):
    db = _store(tmp_path / "results.db", [("jet", 1.0, s, 3, INFO) for s in SIGMAS]
                + [("pca", 1.5, s, 3, DIRTY) for s in SIGMAS])
    out = tmp_path / "b"
    result = CliRunner().invoke(main, ["leaderboard", "--db", str(db), "--out", str(out), "--no-plots"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "2 of 4 leaderboard rows" in lines[0] and "def456def456-dirty (2)" in lines[0]
    assert "--allow-dirty" in lines[0] and not out.exists()
    result = CliRunner().invoke(main, ["leaderboard", "--db", str(db), "--out", str(out), "--no-plots", "--allow-dirty"])
    assert result.exit_code == 0, result.output
    text = (out / "README.md").read_text()
    assert "sbdbench 0.1.0 at abc123 (2 cells); sbdbench 0.1.0 at def456def456-dirty (2 cells, uncommitted changes)" in text
    page = (out / "index.html").read_text()
    assert '<td class="text dirty" title="ran from a source tree with uncommitted changes">0.1.0 @ def456def456-dirty</td>' in page


def test_default_out_dir_is_the_current_directory_even_in_a_clone(uneven_db, tmp_path, monkeypatch):
    clone = tmp_path / "clone"
    (clone / "leaderboard").mkdir(parents=True)
    (clone / "pyproject.toml").write_text('[project]\nname = "sbdbench"\n')
    work = clone / "sub"
    work.mkdir()
    monkeypatch.chdir(work)
    assert default_out_dir() == work / "leaderboard"
    result = CliRunner().invoke(main, ["leaderboard", "--db", str(uneven_db), "--no-plots"])
    assert result.exit_code == 0, result.output
    assert (work / "leaderboard" / "index.html").is_file()
    assert list((clone / "leaderboard").iterdir()) == []  # the clone's committed folder is untouched
    monkeypatch.chdir(clone)  # at the top of the clone, ./leaderboard is the committed board: only when named
    result = CliRunner().invoke(main, ["leaderboard", "--db", str(uneven_db), "--no-plots"])
    assert result.exit_code == 1 and "committed leaderboard; pass --out leaderboard" in result.output
    assert list((clone / "leaderboard").iterdir()) == []
    result = CliRunner().invoke(main, ["leaderboard", "--db", str(uneven_db), "--no-plots", "--out", "leaderboard"])
    assert result.exit_code == 0 and (clone / "leaderboard" / "README.md").is_file()


def test_make_bench_writes_the_repository_folder_explicitly():
    bench = (REPO / "Makefile").read_text().split("\nbench:")[1].split("\n\n")[0]
    assert "sbdbench leaderboard --out leaderboard" in bench


class _Links(HTMLParser):
    """Rows of the methods table: [(cell text, [hrefs])...] per row."""

    def __init__(self):
        super().__init__()
        self.rows, self._in, self._cell = [], False, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._in = attrs.get("id") == "methods"
        elif self._in and tag == "tr":
            self.rows.append([])
        elif self._in and tag == "td":
            self._cell = ["", []]
            self.rows[-1].append(self._cell)
        elif self._in and tag == "a" and self._cell is not None:
            self._cell[1].append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in = False
        elif tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


def test_html_links_each_methods_paper_and_code(uneven_db, tmp_path):
    write_leaderboard(tmp_path / "b", uneven_db, plots=False)
    parser = _Links()
    parser.feed((tmp_path / "b" / "index.html").read_text())
    rows = {r[0][0]: r[1:] for r in parser.rows if r}
    assert set(rows) == {"graph_lap", "jet", "noisy", "pca", "score"}
    paper, code = rows["score"]
    assert paper[1] == ["https://arxiv.org/abs/2107.10981"] and "Luo & Hu" in paper[0]
    assert code[1] == ["https://github.com/luost26/score-denoise"]
    paper, code = rows["pca"]  # no URL known: the citation as text, no code link
    assert paper[1] == [] and paper[0].startswith("Hoppe") and code == ["–", []]
    text = (tmp_path / "b" / "README.md").read_text()
    assert "| score | [Luo & Hu, Score-Based Point Cloud Denoising, ICCV 2021](https://arxiv.org/abs/2107.10981) | " \
           "[code](https://github.com/luost26/score-denoise) |" in text


def test_one_peak_memory_definition(uneven_db, tmp_path, monkeypatch):
    class Echo:
        def denoise(self, points, noise_level=None):
            return points.copy()

    import numpy as np

    points = np.zeros((10, 3))
    _, _, peak = cell_mod.denoise_measured(Echo(), points, 0.01)
    assert peak is None or peak > 0
    monkeypatch.setattr(cell_mod, "_reset_peak_rss", lambda: False)  # no resettable counter: no value, never a lifetime peak
    assert cell_mod.denoise_measured(Echo(), points, 0.01)[2] is None
    write_leaderboard(tmp_path / "b", uneven_db, plots=False)
    text = (tmp_path / "b" / "README.md").read_text()
    assert "| Method | s/shape 1K | peak RSS MiB 1K |" in text and cell_mod.PEAK_MEM_DEFINITION in text
    page = (tmp_path / "b" / "index.html").read_text()
    assert f'title="{cell_mod.PEAK_MEM_DEFINITION}">peak RSS MiB</th>' in page


def test_regenerated_leaderboard_does_not_make_the_tree_dirty(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "leaderboard").mkdir()
    (tmp_path / "leaderboard" / "README.md").write_text("old\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "leaderboard" / "README.md").write_text("new\n")
    assert not git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path).endswith("-dirty")
