"""No-reference quality figures: how good a cloud looks without a clean ground truth (real scans).

``plane_res`` — **local plane residual**: for each point p, the least-squares plane of its k nearest
neighbours (p included; centroid c, normal n = the eigenvector of the smallest eigenvalue of their
covariance) and the distance |n·(p − c)|; the figure is the mean over points, in the unit-sphere
frame (bounding-box centre, max radius: the protocol's normalisation) of the cloud itself or of a
given reference cloud (e.g. the noisy input, so that every method's output is measured in one frame).
A noisy surface scores about 0.8 σ (the mean |N(0, σ²)|) plus a small curvature term; a perfectly
smooth one scores the curvature term only. Not squared; tables print it ×10⁴ (``plane_res_1e4``).

``spacing_cv`` — **spacing non-uniformity**: the coefficient of variation (std / mean) of each point's
mean distance to its ``k_spacing`` nearest other points. Scale-free (no frame needed). Clustering or
holes raise it; a Poisson-disk sampling scores about 0.1.

docs/metrics.md ("No-reference figures") says why these two, and how they rank methods against CD on
the synth split (benchmarks/noref_agreement.py). Exact, CPU only (scipy cKDTree + batched numpy eigh);
memory is bounded by ``chunk`` points' neighbourhoods at a time.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from sbdbench.errors import InputError
from sbdbench.geometry import check_points, frame_of, normalize_unit_sphere
from sbdbench.metrics.backend import check_in_frame, finite_or_raise
from sbdbench.protocol import NOREF_METRICS  # noqa: F401  (re-exported: the column order, raw values)

#: neighbourhood of the plane fit: 16 points spans ~2 point spacings, small against the curvature of the
#: test shapes at 10K points and large enough for a stable normal at σ = 3 % (docs/metrics.md)
DEFAULT_K = 16
DEFAULT_K_SPACING = 6
DEFAULT_CHUNK = 1 << 16
MIN_POINTS = 4
FITS = ("plane", "quadric")


def _checked(points, name: str, k: int) -> np.ndarray:
    pts = check_points(points, name)
    if len(pts) < MIN_POINTS:
        raise InputError(f"{name}: a no-reference figure needs at least {MIN_POINTS} points, got {len(pts)}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 3:
        raise InputError(f"k must be an integer ≥ 3 (a plane needs three points), got {k!r}")
    return pts


def _in_frame(pts: np.ndarray, frame, name: str) -> np.ndarray:
    """``pts`` in the unit-sphere frame of ``frame`` (an (M, 3) cloud; default: ``pts`` itself)."""
    ref = pts if frame is None else check_points(frame, "frame cloud")
    center, scale = frame_of(ref, "frame cloud" if frame is not None else name)
    return check_in_frame(normalize_unit_sphere(pts, center, scale)[0], name, "frame cloud")


def plane_distances(points, *, k: int = DEFAULT_K, frame=None, chunk: int = DEFAULT_CHUNK, fit: str = "plane") -> np.ndarray:
    """Per-point distance to the least-squares plane of its k nearest neighbours (itself included).

    Args:
        points: (N, 3) cloud, N ≥ 4; frame: (M, 3) cloud whose unit-sphere frame is used (default: ``points``).
        k: neighbourhood size (clipped to N); chunk: points whose neighbourhoods are held at once.

    Returns:
        (N,) float64 distances in the frame's unit-sphere units (not squared).
    """
    from scipy.spatial import cKDTree

    if fit not in FITS:
        raise InputError(f"unknown local fit {fit!r} (choose from {', '.join(FITS)})")
    pts = _in_frame(_checked(points, "cloud", k), frame, "cloud")
    k = int(min(k, len(pts)))
    tree = cKDTree(pts)
    out = np.empty(len(pts))
    for start in range(0, len(pts), int(chunk)):
        query = pts[start:start + int(chunk)]
        _, idx = tree.query(query, k=k, workers=-1)
        hood = pts[idx]                                        # (c, k, 3)
        centroid = hood.mean(axis=1)                           # (c, 3)
        centred = hood - centroid[:, None, :]
        cov = np.einsum("cki,ckj->cij", centred, centred) / k  # (c, 3, 3)
        axes = np.linalg.eigh(cov)[1]                          # columns: ascending eigenvalues; [:, :, 0] = normal
        if fit == "plane":
            out[start:start + len(query)] = np.abs(np.einsum("ci,ci->c", query - centroid, axes[:, :, 0]))
        else:
            out[start:start + len(query)] = _quadric_residual(centred, query - centroid, axes)
    return out


def _quadric_residual(centred: np.ndarray, own: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """|h − q(u, v)| of each query point, q the least-squares quadric height field of its neighbourhood in the
    local PCA frame (u, v tangent, h along the normal). centred (c, k, 3), own (c, 3), axes (c, 3, 3) → (c,)."""
    local = np.einsum("ckj,cji->cki", centred, axes)           # (c, k, 3): h, v, u
    h, v, u = local[..., 0], local[..., 1], local[..., 2]
    design = np.stack([u * u, u * v, v * v, u, v, np.ones_like(u)], axis=-1)   # (c, k, 6)
    gram = np.einsum("cki,ckj->cij", design, design) + 1e-12 * np.eye(6)
    coef = np.linalg.solve(gram, np.einsum("cki,ck->ci", design, h)[..., None])[..., 0]
    mine = np.einsum("cj,cji->ci", own, axes)
    hq, vq, uq = mine[:, 0], mine[:, 1], mine[:, 2]
    row = np.stack([uq * uq, uq * vq, vq * vq, uq, vq, np.ones_like(uq)], axis=-1)
    return np.abs(hq - np.einsum("ci,ci->c", row, coef))


def plane_residual(points, *, k: int = DEFAULT_K, frame=None, chunk: int = DEFAULT_CHUNK, fit: str = "plane") -> float:
    """Mean of :func:`plane_distances` (raw; tables print it ×10⁴ as ``plane_res_1e4``)."""
    return finite_or_raise(plane_distances(points, k=k, frame=frame, chunk=chunk, fit=fit).mean(), "plane residual")


def spacing_cv(points, *, k: int = DEFAULT_K_SPACING) -> float:
    """Coefficient of variation of each point's mean distance to its ``k`` nearest other points (scale-free)."""
    from scipy.spatial import cKDTree

    pts = _checked(points, "cloud", k)
    k = int(min(k, len(pts) - 1))
    pts = _in_frame(pts, None, "cloud")  # scale-free, but keeps the numbers away from overflow/underflow
    dist = cKDTree(pts).query(pts, k=k + 1, workers=-1)[0][:, 1:]
    spacing = dist.mean(axis=1)
    mean = spacing.mean()
    if not mean > 0:
        raise InputError("cloud: every point coincides with its neighbours (duplicated points); spacing_cv is undefined")
    return finite_or_raise(spacing.std() / mean, "spacing CV")


def noref_metrics(points, *, frame=None, k: int = DEFAULT_K, k_spacing: int = DEFAULT_K_SPACING) -> Dict[str, float]:
    """``{"plane_res", "spacing_cv"}`` of one cloud, raw (see the module docstring)."""
    return {"plane_res": plane_residual(points, k=k, frame=frame), "spacing_cv": spacing_cv(points, k=k_spacing)}


def noref_record(points, name: str, frame: Optional[np.ndarray] = None) -> Dict:
    """One evaluate-table row for a cloud scored without GT: shape, n_out and :data:`NOREF_METRICS`."""
    return {"shape": name, "category": "unknown", "n_out": int(len(points)), **noref_metrics(points, frame=frame)}
