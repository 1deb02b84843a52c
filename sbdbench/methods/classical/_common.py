"""Shared numpy/scipy kernels of the classical denoisers: kNN, PCA frames, scale estimates, chunking.

Every classical method works in the protocol's unit-sphere frame (the base class normalises), so
spacings, radii and σ below are in those units.

Neighbourhood scaling (research note §1): the same relative noise needs more neighbours at higher
resolution. With mean spacing s̄ ≈ sqrt(A / N) and noise σ, a neighbourhood of radius
``r = radius_scale · sqrt(s̄² + σ²)`` holds about ``k = π r² / s̄² = π · radius_scale² · (1 + σ²/s̄²)``
points. At 10K/1 % that is ≈ 3.5·c² neighbours, at 50K/3 % ≈ 18·c² (c = radius_scale), so one tuned
``radius_scale`` transfers across resolutions and noise levels where a fixed ``k`` does not.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional, Tuple

import numpy as np
from scipy.spatial import cKDTree

from sbdbench.errors import InputError

#: neighbourhood sizes are clipped to this range (a quadric fit needs ≥ 6; memory bounds the top).
K_MIN, K_MAX = 8, 200
#: points processed per batch by the batched kernels, to bound memory at (CHUNK, k, 6) floats.
CHUNK = 8192


def chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    """Consecutive slices covering ``range(n)``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def knn_self(points: np.ndarray, k: int, tree: Optional[cKDTree] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest *other* points of each point: (distances (N, k), indices (N, k)).

    ``k`` is clipped to N - 1 (a tiny cloud still gets every other point).
    """
    n = len(points)
    k = int(max(1, min(k, n - 1)))
    tree = tree if tree is not None else cKDTree(points)
    dist, idx = tree.query(points, k=k + 1, workers=-1)
    return dist[:, 1:], idx[:, 1:]


def local_frames(points: np.ndarray, neighbours: np.ndarray, weights: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Weighted) PCA of neighbourhoods.

    Args:
        points: (N, 3) cloud.
        neighbours: (M, K) indices; each row is one neighbourhood (include the centre yourself if wanted).
        weights: optional (M, K) non-negative weights.

    Returns:
        centroids (M, 3), eigenvalues (M, 3) ascending, eigenvectors (M, 3, 3) with column 0 the
        normal (smallest eigenvalue) and columns 1, 2 the tangent directions.
    """
    nb = points[neighbours]  # (M, K, 3)
    if weights is None:
        c = nb.mean(axis=1)
        d = nb - c[:, None]
        cov = np.einsum("mki,mkj->mij", d, d) / nb.shape[1]
    else:
        wsum = weights.sum(axis=1, keepdims=True)
        wsum = np.where(wsum > 0, wsum, 1.0)
        wn = weights / wsum
        c = np.einsum("mk,mki->mi", wn, nb)
        d = nb - c[:, None]
        cov = np.einsum("mk,mki,mkj->mij", wn, d, d)
    evals, evecs = np.linalg.eigh(cov)
    return c, evals, evecs


def with_self(idx: np.ndarray, rows: slice | np.ndarray | None = None) -> np.ndarray:
    """Prepend each point's own index to its neighbour list: (M, K) → (M, K + 1)."""
    own = np.arange(len(idx))[:, None] if rows is None else np.arange(len(idx))[rows][:, None]
    sub = idx if rows is None else idx[rows]
    return np.concatenate([own, sub], axis=1)


def mean_spacing(points: np.ndarray, tree: Optional[cKDTree] = None) -> float:
    """Mean surface spacing s̄ ≈ sqrt(A / N), from the median distance to the 16th neighbour.

    On a surface the 16 nearest points fill a disc of area π r16² ≈ 16 A / N, so
    s̄ = r16 · sqrt(π / 16). Noise thicker than s̄ biases it slightly upward; the tuned
    ``radius_scale`` absorbs that.
    """
    k = min(16, len(points) - 1)
    if k < 1:
        return 1.0
    dist, _ = knn_self(points, k, tree)
    r = float(np.median(dist[:, -1]))
    return max(r * math.sqrt(math.pi / k), 1e-9)


def estimate_noise(points: np.ndarray, k: int = 32, tree: Optional[cKDTree] = None) -> float:
    """Noise σ̂ = median over points of sqrt(smallest eigenvalue of the kNN covariance).

    Biased upward by curvature, but good enough to size neighbourhoods when σ is not given.
    """
    if len(points) < 4:
        return 0.0
    _, idx = knn_self(points, k, tree)
    out = np.empty(len(points))
    for sl in chunks(len(points)):
        _, evals, _ = local_frames(points, with_self(idx, sl))
        out[sl] = np.sqrt(np.clip(evals[:, 0], 0.0, None))
    return float(np.median(out))


def neighbourhood(points: np.ndarray, noise_level: Optional[float], radius_scale: float, k: Optional[int] = None,
                  tree: Optional[cKDTree] = None) -> Tuple[int, float, float]:
    """Resolve the neighbourhood of a method: returns (k, sigma, spacing).

    ``sigma`` is ``noise_level`` or the estimate :func:`estimate_noise`; ``k`` is the explicit value
    if given, else ``π · radius_scale² · (1 + σ²/s̄²)`` clipped to [K_MIN, K_MAX] (module docstring).
    Both are clipped to N - 1.
    """
    spacing = mean_spacing(points, tree)
    sigma = float(noise_level) if noise_level is not None else estimate_noise(points, tree=tree)
    if k is None:
        k = math.pi * radius_scale ** 2 * (1.0 + (sigma / spacing) ** 2)
        k = int(round(min(max(k, K_MIN), K_MAX)))
    return int(max(1, min(int(k), len(points) - 1))), sigma, spacing


# --- parameter checks (constructors store values as given; these run at denoise time) -------------
def check_int(name: str, value, minimum: int = 0, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"parameter {name} must be an integer ≥ {minimum}, got {value!r}")


def check_float(name: str, value, minimum: float = 0.0, strict: bool = True, allow_none: bool = False, maximum: float | None = None) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > minimum if strict else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        rng = f"{'>' if strict else '≥'} {minimum}" + (f" and ≤ {maximum}" if maximum is not None else "")
        raise InputError(f"parameter {name} must be a finite number {rng}, got {value!r}")


def too_small(points: np.ndarray, minimum: int, name: str) -> bool:
    """True when the cloud has fewer than ``minimum`` points (the method then returns it unchanged)."""
    return len(points) < minimum
