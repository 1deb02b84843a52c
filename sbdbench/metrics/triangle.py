"""Point–triangle squared distances, elementwise, for numpy arrays and torch tensors alike.

Two definitions live here:

* :func:`ericson_sqdist` — the true Euclidean distance (Ericson, *Real-Time Collision Detection*,
  §5.1.5, vectorised). Degenerate (zero-area) triangles fall through to their edges; nothing
  divides by zero.
* :func:`pytorch3d_sqdist` — a line-by-line port of PyTorch3D ≥ 0.6.2's
  ``PointTriangle3DistanceForward`` (``csrc/utils/geometry_utils.h``/``.cuh``): project onto the
  plane with ``normal / (|normal| + 1e-8)``, barycentrics with ``denom = 4·area² + 1e-8``; when the
  projection is "inside" **and** ``area >= min_triangle_area`` the distance is ``t²``, otherwise it
  is the smallest squared distance to the three edges (an edge shorter than 1e-4 counts as its
  first vertex, as in PyTorch3D).

All functions broadcast over leading dimensions. Inputs carry the coordinate axis last
(``(..., 3)``); ``xp`` is the array namespace (``numpy`` or ``torch``) and is inferred.
"""

from __future__ import annotations

import sys

import numpy as np

PT3D_EPS = 1e-8  # kEpsilon / vEpsilon in PyTorch3D's geometry_utils


def _xp(x):
    """``torch`` for a tensor, else ``numpy`` (without importing torch: no tensor exists before it is imported)."""
    torch = sys.modules.get("torch")
    return torch if (torch is not None and isinstance(x, torch.Tensor)) else np


def _dot(u, v):
    """Dot product over the last axis, written out so numpy and torch share it."""
    return u[..., 0] * v[..., 0] + u[..., 1] * v[..., 1] + u[..., 2] * v[..., 2]


def _safe(xp, den, cond):
    """``den`` with the entries where ``cond`` holds replaced by 1 (the result is discarded there)."""
    return xp.where(cond, 1.0, den)


def ericson_vw(d1, d2, d3, d4, d5, d6, xp=np):
    """Barycentric weights (v, w) of the closest point ``a + v·ab + w·ac`` from the six dot products.

    ``d1 = ab·ap, d2 = ac·ap, d3 = ab·bp, d4 = ac·bp, d5 = ab·cp, d6 = ac·cp``. Regions are applied in
    reverse priority (last write wins) so the result is exactly Ericson's if-chain.
    """
    W = xp.where
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    s = va + vb + vc
    den = _safe(xp, s, s == 0)
    v, w = vb / den, vc / den  # face interior
    zero, one = 0.0, 1.0
    e1, e2 = d4 - d3, d5 - d6
    t = e1 / _safe(xp, e1 + e2, e1 + e2 == 0)
    m = (va <= 0) & (e1 >= 0) & (e2 >= 0)  # edge BC
    v, w = W(m, 1 - t, v), W(m, t, w)
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)  # edge AC
    v, w = W(m, zero, v), W(m, d2 / _safe(xp, d2 - d6, d2 - d6 == 0), w)
    m = (d6 >= 0) & (d5 <= d6)  # vertex C
    v, w = W(m, zero, v), W(m, one, w)
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)  # edge AB
    v, w = W(m, d1 / _safe(xp, d1 - d3, d1 - d3 == 0), v), W(m, zero, w)
    m = (d3 >= 0) & (d4 <= d3)  # vertex B
    v, w = W(m, one, v), W(m, zero, w)
    m = (d1 <= 0) & (d2 <= 0)  # vertex A
    v, w = W(m, zero, v), W(m, zero, w)
    return v, w


def segment_sqdist(p, a, b):
    """Exact squared distance from ``p`` to segments ``a b`` (the point ``a`` where ``a == b``), broadcasting."""
    xp = _xp(p)
    e = b - a
    ee = _dot(e, e)
    t = xp.where(ee > 0, _dot(p - a, e) / _safe(xp, ee, ee <= 0), 0.0).clip(0.0, 1.0)
    d = p - (a + t[..., None] * e)
    return _dot(d, d)


def degenerate_triangles(a, b, c):
    """Triangles with (numerically) zero area: ``|ab × ac|² ≤ 1e-12 |ab|² |ac|²`` (coincident or collinear corners).

    Ericson's region tests assume a proper triangle (with a == b every point would land on vertex a),
    so these are measured as their three edges instead."""
    ab, ac = b - a, c - a
    n = _cross(ab, ac)
    return _dot(n, n) <= 1e-12 * _dot(ab, ab) * _dot(ac, ac)


def edges_sqdist(p, a, b, c):
    """Squared distance to the union of the three edges of each triangle (exact), broadcasting."""
    xp = _xp(p)
    return xp.minimum(xp.minimum(segment_sqdist(p, a, b), segment_sqdist(p, a, c)), segment_sqdist(p, b, c))


def ericson_sqdist(p, a, b, c):
    """Exact squared Euclidean distance from points ``p`` to triangles ``(a, b, c)``.

    Args:
        p, a, b, c: arrays/tensors of shape ``(..., 3)`` that broadcast against each other.

    Returns:
        ``(...)`` squared distances, same dtype. Degenerate triangles count as their edges.
    """
    xp = _xp(p)
    ab, ac = b - a, c - a
    ap, bp, cp = p - a, p - b, p - c
    v, w = ericson_vw(_dot(ab, ap), _dot(ac, ap), _dot(ab, bp), _dot(ac, bp), _dot(ab, cp), _dot(ac, cp), xp)
    r = ap - v[..., None] * ab - w[..., None] * ac  # exact residual (no cancellation-prone expansion)
    d = _dot(r, r)
    deg = degenerate_triangles(a, b, c)
    if bool(deg.any()):
        d = xp.where(deg, edges_sqdist(p, a, b, c), d)
    return d


def pytorch3d_segment_sqdist(p, v0, v1):
    """PyTorch3D's ``PointLine3DistanceForward``: squared distance to segment ``v0 v1``.

    A segment with ``|v1 - v0|² < 1e-8`` counts as the point ``v0`` (PyTorch3D's rule).
    """
    xp = _xp(p)
    e = v1 - v0
    t_bot = _dot(e, e)
    t_top = _dot(p - v0, e)
    small = t_bot < PT3D_EPS
    tt = xp.where(small, 0.0, t_top / _safe(xp, t_bot, small)).clip(0.0, 1.0)
    d = p - (v0 + tt[..., None] * e)
    return _dot(d, d)


def _cross(u, v):
    xp = _xp(u)
    x = u[..., 1] * v[..., 2] - u[..., 2] * v[..., 1]
    y = u[..., 2] * v[..., 0] - u[..., 0] * v[..., 2]
    z = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    return xp.stack([x, y, z], -1) if xp is np else xp.stack([x, y, z], dim=-1)


def pytorch3d_plane_term(p, v0, v1, v2, min_triangle_area: float = 5e-3):
    """The "inside" branch of PyTorch3D's point–triangle distance: ``(inside, t²)``, broadcasting.

    ``inside`` is PyTorch3D's test (projection within the barycentric range, computed with its
    1e-8 epsilons, area ≥ ``min_triangle_area``, ``|normal| > 1e-8``); ``t²`` is its squared
    distance along the slightly short normal ``n / (|n| + 1e-8)``.
    """
    xp = _xp(p)
    normal = _cross(v2 - v0, v1 - v0)
    norm_normal = xp.sqrt(_dot(normal, normal))
    nrm = normal / (norm_normal[..., None] + PT3D_EPS)
    t = _dot(v0 - p, nrm)
    p0 = p + t[..., None] * nrm
    # barycentrics of the projection (PyTorch3D's BarycentricCoords3D, with its +1e-8)
    e1, e2, q = v1 - v0, v2 - v0, p0 - v0
    d00, d01, d11 = _dot(e1, e1), _dot(e1, e2), _dot(e2, e2)
    d20, d21 = _dot(q, e1), _dot(q, e2)
    denom = d00 * d11 - d01 * d01 + PT3D_EPS
    w1 = (d11 * d20 - d01 * d21) / denom
    w2 = (d00 * d21 - d01 * d20) / denom
    w0 = 1.0 - w1 - w2
    inside = (w0 >= 0) & (w0 <= 1) & (w1 >= 0) & (w1 <= 1) & (w2 >= 0) & (w2 <= 1)
    area = norm_normal / 2.0
    inside = inside & (area >= min_triangle_area) & (norm_normal > PT3D_EPS)
    return inside, t * t


def pytorch3d_edges_sqdist(p, v0, v1, v2):
    """PyTorch3D's "edges" branch: min of its three segment distances (v0v1, v0v2, v1v2), broadcasting."""
    xp = _xp(p)
    return xp.minimum(
        xp.minimum(pytorch3d_segment_sqdist(p, v0, v1), pytorch3d_segment_sqdist(p, v0, v2)),
        pytorch3d_segment_sqdist(p, v1, v2),
    )


def pytorch3d_sqdist(p, v0, v1, v2, min_triangle_area: float = 5e-3):
    """PyTorch3D ≥ 0.6.2's point–triangle "distance" (see the module docstring), broadcasting.

    Args:
        p, v0, v1, v2: ``(..., 3)``, broadcastable.
        min_triangle_area: triangles with area below it are treated as their three edges
            (PyTorch3D's default 5e-3; 1e-5 reproduces PyTorch3D 0.5–0.6.1, 0 disables the rule).
    """
    xp = _xp(p)
    inside, t2 = pytorch3d_plane_term(p, v0, v1, v2, min_triangle_area)
    return xp.where(inside, t2, pytorch3d_edges_sqdist(p, v0, v1, v2))


def pytorch3d_inside_scale(v0, v1, v2):
    """How much PyTorch3D's "inside" region is enlarged about ``v0``: ``(4a² + 1e-8) / 4a²`` per triangle.

    The ``+1e-8`` in the barycentric denominator shrinks the weights, so the accepted region is the
    triangle ``v0 + s·(v1 - v0, v2 - v0)`` with this ``s``. Used to bound the port's distance from
    below when pruning candidates. numpy only; degenerate triangles get ``inf``.
    """
    e1, e2 = v1 - v0, v2 - v0
    g = _dot(e1, e1) * _dot(e2, e2) - _dot(e1, e2) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (g + PT3D_EPS) / g
    return np.where(g > 0, s, np.inf)
