"""Seeded noise models for noisy inputs. σ is relative to the unit sphere of the clean cloud.

Every model returns an (N, 3) array whose row i is the noisy version of clean row i (no point is
added, dropped or reordered), so ``noisy - clean`` is the per-point residual.

===============  =============================================================================
kind             definition (ε ~ N(0, 1) per coordinate unless said otherwise)
===============  =============================================================================
gaussian         x + σ ε — the protocol of ScoreDenoise (σ = 0.01, 0.02, 0.03)
laplace          x + Laplace(0, b) per coordinate with b = σ/√2, so the std is σ (heavy tails)
uniform_ball     x + a point uniform in the ball of radius σ (ScoreDenoise's ``AddUniformBallNoise``)
anisotropic      x + σ L ε with L Lᵀ = C; ``cov`` (3×3, default diag(2, 0.75, 0.25)) is rescaled to
                 trace 3, so the mean per-coordinate variance is σ²
outliers         gaussian noise on every point, then a fraction ``fraction`` (default 0.01) of the
                 rows, chosen at random, replaced by points uniform in the cube [-``extent``, ``extent``]³
                 (default 1.0)
scanner_ray      x + σ ε d̂ with d̂ the unit direction from ``scanner`` (default (0, 0, 3)) to x:
                 depth noise of a range scanner along its rays
===============  =============================================================================
"""

from __future__ import annotations

import numpy as np

from sbdbench.errors import InputError
from sbdbench.geometry import check_points
from sbdbench.protocol import GAUSSIAN, NOISE_KINDS  # noqa: F401  (NOISE_KINDS: re-exported)

_ALIASES = {k.replace("_", "-"): k for k in NOISE_KINDS}


def canonical_kind(kind: str) -> str:
    """'uniform-ball' → 'uniform_ball'; unknown kinds raise :class:`InputError`."""
    k = _ALIASES.get(str(kind), str(kind))
    if k not in NOISE_KINDS:
        raise InputError(f"unknown noise kind {kind!r} (known: {', '.join(NOISE_KINDS)})")
    return k


def check_sigma(sigma) -> float:
    """σ must be a finite number ≥ 0."""
    try:
        s = float(sigma)
    except (TypeError, ValueError):
        raise InputError(f"noise level σ must be a number, got {sigma!r}") from None
    if not np.isfinite(s) or s < 0:
        raise InputError(f"noise level σ must be finite and ≥ 0, got {sigma!r}")
    return s


def add_noise(clean_unit_points, sigma: float, kind: str = GAUSSIAN, seed: int = 0, **kw) -> np.ndarray:
    """The noisy version of a unit-normalised clean cloud (N, 3); row i stays row i.

    Args:
        clean_unit_points: (N, 3) clean cloud already in its unit sphere.
        sigma: noise level relative to that sphere (≥ 0).
        kind: one of :data:`NOISE_KINDS` ('-' may replace '_').
        seed: RNG seed (numpy ``default_rng``); the same inputs give the same output bytes.
        **kw: model options (``cov``, ``fraction``, ``extent``, ``scanner``; see the module doc).
    """
    x = check_points(clean_unit_points, name="clean points")
    s = check_sigma(sigma)
    kind = canonical_kind(kind)
    rng = np.random.default_rng(int(seed))
    n = len(x)
    allowed = {"anisotropic": {"cov"}, "outliers": {"fraction", "extent"}, "scanner_ray": {"scanner"}}.get(kind, set())
    unknown = set(kw) - allowed
    if unknown:
        raise InputError(f"noise {kind!r} takes no option(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed)) or 'none'})")
    if kind == GAUSSIAN:
        return x + s * rng.standard_normal((n, 3))
    if kind == "laplace":
        return x + rng.laplace(0.0, s / np.sqrt(2.0), size=(n, 3))
    if kind == "uniform_ball":
        direction = rng.standard_normal((n, 3))
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-300)
        radius = s * rng.random(n) ** (1.0 / 3.0)
        return x + radius[:, None] * direction
    if kind == "anisotropic":
        cov = np.asarray(kw.get("cov", np.diag([2.0, 0.75, 0.25])), dtype=np.float64)
        if cov.shape != (3, 3) or not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() <= 0:
            raise InputError("anisotropic noise: cov must be a symmetric positive-definite 3x3 matrix")
        cov = cov * (3.0 / np.trace(cov))
        return x + s * rng.standard_normal((n, 3)) @ np.linalg.cholesky(cov).T
    if kind == "outliers":
        fraction, extent = float(kw.get("fraction", 0.01)), float(kw.get("extent", 1.0))
        if not 0.0 <= fraction <= 1.0:
            raise InputError(f"outliers: fraction must be in [0, 1], got {fraction}")
        if not extent > 0:
            raise InputError(f"outliers: extent must be > 0, got {extent}")
        noisy = x + s * rng.standard_normal((n, 3))
        rows = rng.choice(n, size=int(round(fraction * n)), replace=False)
        noisy[np.sort(rows)] = rng.uniform(-extent, extent, size=(len(rows), 3))
        return noisy
    # scanner_ray
    scanner = np.asarray(kw.get("scanner", (0.0, 0.0, 3.0)), dtype=np.float64).reshape(3)
    ray = x - scanner
    length = np.linalg.norm(ray, axis=1, keepdims=True)
    if (length < 1e-12).any():
        raise InputError("scanner_ray noise: the scanner position coincides with a point")
    return x + s * rng.standard_normal((n, 1)) * (ray / length)
