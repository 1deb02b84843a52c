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


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A tiny synth-like dataset (built once per session by the real builder, in a private temp folder).

    Returns a :class:`sbdbench.data.dataset.Dataset` named ``synth`` whose ``root`` is
    ``<tmp>/home/data`` (so ``SBDBENCH_HOME=<tmp>/home`` = ``tiny_synth.root.parent`` opens it by name:
    ``monkeypatch.setenv("SBDBENCH_HOME", str(tiny_synth.root.parent))``). Contents:

    * test shapes ``sphere`` (smooth), ``cube`` (sharp), ``torus`` (genus): meshes + clean Poisson
      clouds at N = 1000 and 2000; Gaussian noisy inputs at σ = 0.01 and 0.02 for both N
      (``examples/synth_<N>_poisson_<σ>/``) and a Laplace set at N = 1000, σ = 0.02;
    * train: 3 family shapes, val: 2 family shapes (meshes + clean clouds at 1000 and 2000;
      val noisy inputs at N = 1000, σ = 0.01/0.02 in ``examples/synth_val_1000_poisson_<σ>/``);
    * ``manifest.json`` with categories, seeds and sha256 of every file. Treat it as read-only.
    """
    from sbdbench.data.synth import build_synth_dataset

    root = tmp_path_factory.mktemp("tiny_synth") / "home" / "data"
    return build_synth_dataset(root, resolutions=(1000, 2000), noise_levels=(0.01, 0.02),
                               shapes=("sphere", "cube", "torus"), n_train=3, n_val=2, progress=False, workers=1)


@pytest.fixture()
def registered_synth(tiny_synth, tmp_path_factory, monkeypatch):
    """:func:`tiny_synth` registered by name in a fresh, private ``$SBDBENCH_HOME`` (for CLI runs that write there)."""
    from sbdbench.data.dataset import register_dataset

    monkeypatch.setenv("SBDBENCH_HOME", str(tmp_path_factory.mktemp("home")))
    register_dataset(tiny_synth.name, tiny_synth.root)
    return tiny_synth
