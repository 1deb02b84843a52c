"""Leaderboard files from a results database: CSV values (pandas), Markdown layout, HTML structure (html.parser)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from sbdbench.bench.grid import Cell, canonical_json
from sbdbench.bench.leaderboard import LEADERBOARD_COLUMNS, PER_SHAPE_COLUMNS, load_reported, write_leaderboard
from sbdbench.bench.store import ResultsStore, RunInfo, utc_now
from sbdbench.errors import DataError

REPO = Path(__file__).resolve().parents[1]
INFO = RunInfo("0.1.0", "abc123", "host")
SHAPES = [("ball", "smooth"), ("cube", "sharp"), ("torus", "genus")]


def _records(n_points, sigma, quality):
    """Per-shape records whose metrics grow with σ and with the method's 'quality' factor."""
    out = []
    for i, (shape, cat) in enumerate(SHAPES):
        cd = quality * sigma * 1e-2 * (1 + i)
        out.append({"shape": shape, "category": cat, "n_points": n_points, "sigma": sigma, "n_out": n_points,
                    "cd": cd, "p2m": cd / 3, "p2m_pt3d": cd / 4, "hd": 10 * sigma, "seconds": 0.1 * quality + i,
                    "peak_mem_mb": 10.0 * (i + 1)})
    return out


@pytest.fixture()
def results_db(tmp_path) -> Path:
    db = tmp_path / "results.db"
    with ResultsStore(db) as store:
        for method, quality in (("noisy", 3.0), ("jet", 1.0), ("pca", 1.5)):
            for n in (1000, 5000):
                for sigma in (0.01, 0.02, 0.03):
                    cell = Cell(method, canonical_json({"k": 8}), "tiny", "/x", "m1", n, sigma)
                    store.record_finished(cell, _records(n, sigma, quality), info=INFO, started_at=utc_now())
        broken = Cell("broken", canonical_json({}), "tiny", "/x", "m1", 1000, 0.02)
        store.record_failed(broken, "CellError: method 'broken' failed on shape 'cube': ValueError: boom",
                            info=INFO, attempts=2, started_at=utc_now())
    return db


def test_csv_files(results_db, tmp_path):
    out = tmp_path / "board"
    result = write_leaderboard(out, results_db, plots=False)
    assert result.n_cells == 19 and result.n_failed == 1
    board = pd.read_csv(out / "leaderboard.csv")
    assert list(board.columns) == LEADERBOARD_COLUMNS
    assert len(board) == 19
    row = board[(board.method == "jet") & (board.n_points == 1000) & (board.sigma == 0.02)].iloc[0]
    # mean over the 3 shapes of cd = 1.0 * 0.02 * 1e-2 * (1, 2, 3) → 4e-4, ×1e4 = 4
    assert row.cd_1e4 == pytest.approx(4.0)
    assert row.p2m_1e4 == pytest.approx(4.0 / 3, rel=1e-5)
    assert row.n_shapes == 3 and row.peak_mem_mb == 30.0 and row.sec_per_shape == pytest.approx(1.1)
    assert row.status == "finished" and row.version == "0.1.0" and '"k":8' in row.params
    failed = board[board.status == "failed"].iloc[0]
    assert failed.method == "broken" and "cube" in failed.error and pd.isna(failed.cd_1e4)

    per_shape = pd.read_csv(out / "per_shape.csv")
    assert list(per_shape.columns) == PER_SHAPE_COLUMNS
    assert len(per_shape) == 3 * 6 * 3
    torus = per_shape[(per_shape.method == "pca") & (per_shape.n_points == 5000) & (per_shape.sigma == 0.03) & (per_shape["shape"] == "torus")]
    assert torus.cd_1e4.iloc[0] == pytest.approx(1.5 * 0.03 * 1e-2 * 3 * 1e4)


def test_markdown_paper_layout(results_db, tmp_path):
    out = tmp_path / "board"
    write_leaderboard(out, results_db, plots=True)
    text = (out / "README.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Method |"))
    assert header == "| Method | Rank | 1K 1% | 1K 2% | 1K 3% | 5K 1% | 5K 2% | 5K 3% |"
    jet = next(line for line in text.splitlines() if line.startswith("| jet |"))
    assert jet.startswith("| jet | 1 | **2.00** / **0.67** | **4.00** / **1.33**")
    pca = next(line for line in text.splitlines() if line.startswith("| pca |"))
    assert "**" not in pca
    assert "| broken | – | – | failed |" in text
    assert "### Per category, 1K" in text and "genus (1)" in text
    assert "## Reported on PUNet" in text and "| ScoreDenoise | 2.52 / 0.46 |" in text
    assert "## Failed cells" in text
    for png in (out / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{png.name}" in text
    assert len(list((out / "plots").glob("*.png"))) == 3


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables = {}  # id → list of rows (list of cell texts)
        self.classes = {}
        self.images = []
        self.scripts = 0
        self.external = []
        self._table = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("link", "script") and (attrs.get("href") or attrs.get("src")):
            self.external.append(attrs.get("href") or attrs.get("src"))
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self._table = attrs.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
            self.classes[self._table] = attrs.get("class", "")
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_html_page(results_db, tmp_path):
    out = tmp_path / "board"
    write_leaderboard(out, results_db)
    page = (out / "index.html").read_text()
    parser = _Collector()
    parser.feed(page)
    assert parser.external == []  # self-contained
    assert parser.scripts == 1
    assert len(parser.images) == 3 and all(src.startswith("data:image/png;base64,") for src in parser.images)
    measured = parser.tables["measured"]
    assert "sortable" in parser.classes["measured"]
    assert measured[0][:5] == ["method", "dataset", "N", "σ %", "CD ×10⁴"]
    assert len(measured) == 1 + 19
    assert all(len(row) == len(measured[0]) for row in measured)  # sorting needs a full grid
    jet = next(r for r in measured if r[0] == "jet" and r[2] == "5K" and r[3] == "3")
    assert float(jet[4]) == pytest.approx(6.0)
    assert any(r[0] == "broken" and r[4] == "failed" for r in measured)
    # published numbers: their own, visibly distinct table; never in the measured one
    reported = parser.tables["reported"]
    assert "reported" in parser.classes["reported"]
    assert len(reported) == 1 + len(load_reported())
    assert all("reported on PUNet" in r[0] for r in reported[1:])
    assert not any("ScoreDenoise" in r[0] for r in measured)
    assert "cube" in " ".join(" ".join(r) for r in parser.tables["failed"])


def test_empty_and_missing_database(tmp_path):
    with pytest.raises(DataError, match="no results database"):
        write_leaderboard(tmp_path / "b", tmp_path / "absent.db")
    ResultsStore(tmp_path / "empty.db").close()
    write_leaderboard(tmp_path / "b", tmp_path / "empty.db")
    assert "No results yet" in (tmp_path / "b" / "README.md").read_text()
    assert pd.read_csv(tmp_path / "b" / "leaderboard.csv").empty


def test_reported_csv_is_complete_and_sourced():
    reported = load_reported(REPO / "baselines" / "reported.csv")
    assert len(reported) == 8 * 6
    assert reported["source"].str.len().min() > 10
    score = reported[(reported.method == "ScoreDenoise") & (reported.n_points == 50000) & (reported.sigma == 0.03)].iloc[0]
    assert (score.cd_1e4, score.p2m_1e4) == (1.93, 1.04)
    assert set(reported["dataset"]) == {"PUNet"}
