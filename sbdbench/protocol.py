"""The benchmark protocol's facts, in one place: the on-disk layout, the default grid, the noise kinds and the
metric schema. Every writer, reader and the bench's cell hash build and parse paths with these functions, so
they cannot drift apart.

Layout (ScoreDenoise's ``data/`` folder, so either tool reads the other's)::

    <root>/<dataset>/meshes/<split>/<shape>.off                        GT meshes
    <root>/<dataset>/pointclouds/<split>/<N>_poisson/<shape>.xyz       clean GT clouds
    <root>/examples/<dataset>_<N>_poisson_<σ>/<shape>.xyz              noisy test inputs, Gaussian noise
    <root>/examples/<dataset>_<N>_poisson_<kind>_<σ>/<shape>.xyz       other noise kinds
    <root>/examples/<dataset>_val_<N>_poisson_[<kind>_]<σ>/            noisy val inputs (never read as test inputs)
    <root>/<dataset>/scans/<split>/<scan>.xyz                          real scans without GT (noisy only, any N)

``σ`` is written as ScoreDenoise writes it (``0.01``, ``0.025``: :func:`sigma_label`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

# --- splits, grid, noise -------------------------------------------------------------------------
SPLITS: Tuple[str, ...] = ("train", "val", "test")
#: the papers' grid: 10K and 50K points, σ = 1, 2, 3 % of the unit sphere
DEFAULT_RESOLUTIONS: Tuple[int, ...] = (10000, 50000)
DEFAULT_SIGMAS: Tuple[float, ...] = (0.01, 0.02, 0.03)
#: the protocol's noise kind (ScoreDenoise's folders carry no kind in their name)
GAUSSIAN = "gaussian"
#: every noise kind ``sbdbench build`` can add (implemented in :mod:`sbdbench.data.noise`)
NOISE_KINDS: Tuple[str, ...] = (GAUSSIAN, "laplace", "uniform_ball", "anisotropic", "outliers", "scanner_ray")

# --- metrics ---------------------------------------------------------------------------------------
#: per-shape metrics, in column order: Chamfer, exact P2M, PyTorch3D-default P2M, Hausdorff (all squared, raw)
METRICS: Tuple[str, ...] = ("cd", "p2m", "p2m_pt3d", "hd")
#: the metrics papers print multiplied by REPORT_SCALE (columns ``<metric>_1e4``)
SCALED_METRICS: Tuple[str, ...] = ("cd", "p2m", "p2m_pt3d")
REPORT_SCALE = 1e4
#: no-reference figures (no GT needed: real scans, ``evaluate --pred X`` alone): mean distance to the local
#: kNN plane (unit-sphere frame, not squared) and the spacing's coefficient of variation (sbdbench.metrics.noref)
NOREF_METRICS: Tuple[str, ...] = ("plane_res", "spacing_cv")
#: the no-reference figures printed ×REPORT_SCALE (``plane_res_1e4``)
SCALED_NOREF_METRICS: Tuple[str, ...] = ("plane_res",)


def reported_column(metric: str) -> str:
    """The report column of a scaled metric: ``cd`` → ``cd_1e4``."""
    return f"{metric}_1e4"


# --- layout ------------------------------------------------------------------------------------------
CLEAN_SUFFIX = "_poisson"


def sigma_label(sigma: float) -> str:
    """The folder label of a noise level as ScoreDenoise writes it: 0.01 → '0.01', 0.025 → '0.025'."""
    return f"{float(sigma):g}"


def clean_dir_name(n_points: int) -> str:
    """``<N>_poisson``: the folder of the clean clouds at N points."""
    return f"{int(n_points)}{CLEAN_SUFFIX}"


def clean_rel_dir(dataset: str, split: str, n_points: int) -> str:
    """``<dataset>/pointclouds/<split>/<N>_poisson`` (relative to the data root)."""
    return f"{dataset}/pointclouds/{split}/{clean_dir_name(n_points)}"


def mesh_rel_dir(dataset: str, split: str) -> str:
    """``<dataset>/meshes/<split>`` (relative to the data root)."""
    return f"{dataset}/meshes/{split}"


def scan_rel_dir(dataset: str, split: str = "test") -> str:
    """``<dataset>/scans/<split>``: real scans, noisy as captured, with no clean cloud or mesh (no GT)."""
    return f"{dataset}/scans/{split}"


def noisy_dir_name(dataset: str, n_points: int, sigma: float, noise: str = GAUSSIAN, split: str = "test") -> str:
    """``<dataset>[_<split>]_<N>_poisson[_<kind>]_<σ>``: no split for test, no kind for Gaussian noise."""
    prefix = dataset if split == "test" else f"{dataset}_{split}"
    kind = "" if noise == GAUSSIAN else f"{noise}_"
    return f"{prefix}_{int(n_points)}{CLEAN_SUFFIX}_{kind}{sigma_label(sigma)}"


def noisy_rel_dir(dataset: str, n_points: int, sigma: float, noise: str = GAUSSIAN, split: str = "test") -> str:
    """``examples/<noisy_dir_name>`` (relative to the data root)."""
    return f"examples/{noisy_dir_name(dataset, n_points, sigma, noise, split)}"


@dataclass(frozen=True)
class NoisyDir:
    """What a noisy folder's name says."""

    dataset: str
    split: str
    n_points: int
    noise: str
    sigma: float


_NOISY_TAIL = r"(?:_(?P<split>val|train))?_(?P<n>\d+)_poisson_(?:(?P<kind>[a-z][a-z_]*)_)?(?P<sigma>[0-9.eE+-]+)"


def parse_noisy_dir(name: str, dataset: Optional[str] = None) -> Optional[NoisyDir]:
    """The :class:`NoisyDir` a folder name encodes (of ``dataset`` only, when given), or None for any other name."""
    head = re.escape(dataset) if dataset is not None else r"(?P<dataset>.+?)"
    found = re.fullmatch(head + _NOISY_TAIL, name)
    if not found:
        return None
    try:
        sigma = float(found.group("sigma"))
    except ValueError:
        return None
    return NoisyDir(dataset if dataset is not None else found.group("dataset"), found.group("split") or "test",
                    int(found.group("n")), found.group("kind") or GAUSSIAN, sigma)


def parse_clean_dir(name: str) -> Optional[int]:
    """N of a clean-cloud folder name (``10000_poisson`` → 10000), or None."""
    found = re.fullmatch(r"(\d+)" + CLEAN_SUFFIX, name)
    return int(found.group(1)) if found else None


def resolution_in_name(name: str) -> Optional[int]:
    """N carried by a folder name in the layout (``synth_10000_poisson_0.02``, or a run's copy of it), or None."""
    found = re.search(r"_(\d+)" + CLEAN_SUFFIX + r"(?:_|$)", name)
    return int(found.group(1)) if found else None
