"""Shared fixtures. Reference data in ``../shared`` is optional: tests that need it skip with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` (golden values, official ScoreDenoise weights), or skip."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not available ({REFERENCE} is absent: it exists only in the developers' workspace)")
    return REFERENCE


@pytest.fixture()
def sbd_home(tmp_path, monkeypatch) -> Path:
    """An empty, private ``$SBDBENCH_HOME`` for one test."""
    home = tmp_path / "sbdbench_home"
    monkeypatch.setenv("SBDBENCH_HOME", str(home))
    return home
