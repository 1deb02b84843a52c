"""Geometry shared by every stage: input checks, the protocol's unit-sphere normalisation, kNN and FPS.

Normalisation follows ScoreDenoise exactly: centre = bounding-box centre, scale = maximum distance
of a point to that centre. numpy arrays in, numpy arrays out; the torch versions used by learned
methods live next to them, import torch only when called (classical commands never load it) and never
move data between devices.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Tuple

import numpy as np
from scipy.spatial import cKDTree

from sbdbench.errors import InputError

if TYPE_CHECKING:  # torch is imported only by the torch functions below (classical paths never load it)
    import torch


#: the largest coordinate magnitude accepted anywhere: far below the ~1e154 where squared distances overflow
MAX_ABS_COORD = 1e100


def _is_tensor(values) -> bool:
    """A torch tensor? Without importing torch: no tensor can exist before torch is imported."""
    torch_mod = sys.modules.get("torch")
    return torch_mod is not None and isinstance(values, torch_mod.Tensor)


def _as_real_array(values, name: str, what: str, dtype=np.float64) -> np.ndarray:
    """``np.asarray(values, dtype)`` that refuses complex, boolean, string and object data in one line."""
    if _is_tensor(values):
        values = values.detach().cpu().numpy()
    raw = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if np.iscomplexobj(raw):
        raise InputError(f"{name}: {what} are complex numbers; only real coordinates are accepted")
    if raw.dtype.kind not in "iuf":
        raise InputError(f"{name}: {what} are not a numeric array (dtype {raw.dtype}; real numbers expected)")
    try:
        return np.asarray(raw, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{name}: {what} are not a numeric array ({exc})") from None


def check_magnitude(arr: np.ndarray, name: str, what: str = "coordinate", limit: float = MAX_ABS_COORD) -> None:
    """Refuse finite values whose size would overflow squared distances (``|x| > limit``)."""
    big = np.abs(arr) > limit
    if big.any():
        row = int(np.argmax(big.any(axis=-1))) if arr.ndim == 2 else int(np.argmax(big))
        raise InputError(f"{name}: {what} magnitude {float(np.abs(arr).max()):.3g} (first at row {row}) exceeds {limit:.0e}; "
                         "rescale the data (squared distances would overflow)")


def check_points(points, name: str = "points", dtype=np.float64) -> np.ndarray:
    """Validate an (N, 3) cloud: real numbers, N ≥ 1, finite, ``|x| ≤ MAX_ABS_COORD``. Returns a contiguous array.

    Raises :class:`InputError` with a one-line message otherwise (never returns NaN-bearing data).
    """
    try:
        arr = _as_real_array(points, name, "coordinates", dtype)
    except InputError:
        raise
    except Exception as exc:  # ragged lists and other array-likes numpy cannot shape
        raise InputError(f"{name}: not a numeric array ({type(exc).__name__})") from None
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{name}: expected shape (N, 3), got {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise InputError(f"{name}: the point cloud is empty")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise InputError(f"{name}: {int(bad.sum())} point(s) have NaN/Inf coordinates (first at row {int(np.argmax(bad))})")
    check_magnitude(arr, name)
    return np.ascontiguousarray(arr)


def _check_faces(faces, n_verts: int, name: str) -> np.ndarray:
    try:
        f = np.asarray(faces.detach().cpu().numpy() if _is_tensor(faces) else faces)
    except Exception as exc:
        raise InputError(f"{name}: faces are not an array ({type(exc).__name__})") from None
    if f.size == 0:
        raise InputError(f"{name}: the mesh has no faces")
    if f.ndim != 2 or f.shape[1] != 3:
        raise InputError(f"{name}: faces must have shape (F, 3) (triangles), got {tuple(f.shape)}")
    if f.dtype.kind not in "iuf":
        raise InputError(f"{name}: face indices must be integers, got dtype {f.dtype}")
    if f.dtype.kind == "f" and not (np.isfinite(f).all() and np.all(np.mod(f, 1) == 0)):
        raise InputError(f"{name}: face indices must be integers")
    if f.min() < 0 or f.max() >= n_verts:
        raise InputError(f"{name}: face indices out of range [0, {n_verts - 1}] (found {f.min():.0f}..{f.max():.0f})")
    return f.astype(np.int64)


def check_mesh(verts, faces, name: str = "mesh") -> Tuple[np.ndarray, np.ndarray]:
    """Validate a triangle mesh: (V, 3) finite real vertices (``|x| ≤ MAX_ABS_COORD``), (F, 3) integer faces
    indexing them, F ≥ 1. Boolean, string and complex arrays are refused."""
    try:
        v = _as_real_array(verts, name, "vertices")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{name}: vertices are not a numeric array ({type(exc).__name__})") from None
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise InputError(f"{name}: vertices must have shape (V, 3) with V ≥ 1, got {tuple(v.shape)}")
    if not np.isfinite(v).all():
        raise InputError(f"{name}: vertices contain NaN/Inf")
    check_magnitude(v, name, "vertex coordinate")
    f = _check_faces(faces, len(v), name)
    return np.ascontiguousarray(v), np.ascontiguousarray(f)


def frame_of(points: np.ndarray, name: str, what: str = "points") -> Tuple[np.ndarray, float]:
    """:func:`bbox_center_and_scale`, refusing a cloud without extent (one point, or all coinciding):
    the protocol's unit-sphere frame does not exist for it (``build`` refuses such meshes too)."""
    center, scale = bbox_center_and_scale(points)
    if not scale > 0:
        raise InputError(f"{name}: all {what} coincide, so it has no unit-sphere frame to score in")
    return center, scale


def bbox_center_and_scale(points: np.ndarray) -> Tuple[np.ndarray, float]:
    """The protocol's frame of a cloud: bounding-box centre (3,) and max distance to it (a float)."""
    center = (points.max(axis=0) + points.min(axis=0)) / 2.0
    scale = float(np.sqrt(((points - center) ** 2).sum(axis=1)).max())
    return center, scale


def normalize_unit_sphere(points, center=None, scale=None) -> Tuple[np.ndarray, np.ndarray, float]:
    """Map a cloud into the unit sphere as ScoreDenoise does.

    Args:
        points: (N, 3) array.
        center, scale: use this frame instead of the cloud's own (e.g. the GT cloud's frame for metrics).

    Returns:
        (normalised (N, 3), center (3,), scale). A cloud of identical points (scale 0) keeps scale 1
        so that it maps to the origin instead of dividing by zero.
    """
    pts = np.asarray(points, dtype=np.float64)
    if center is None or scale is None:
        c, s = bbox_center_and_scale(pts)
        center = c if center is None else np.asarray(center, dtype=np.float64)
        scale = s if scale is None else float(scale)
    if not scale > 0:
        scale = 1.0
    return (pts - center) / scale, np.asarray(center, dtype=np.float64), float(scale)


def denormalize_unit_sphere(points, center, scale) -> np.ndarray:
    """Inverse of :func:`normalize_unit_sphere`: ``points * scale + center``."""
    return np.asarray(points, dtype=np.float64) * float(scale) + np.asarray(center, dtype=np.float64)


def knn(query: np.ndarray, reference: np.ndarray, k: int, workers: int = -1) -> Tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours of each query point among ``reference`` (scipy cKDTree).

    Returns (distances (Q, k), indices (Q, k)); Euclidean, not squared. ``k`` is clipped to the
    reference size.
    """
    k = int(min(k, len(reference)))
    dist, idx = cKDTree(reference).query(query, k=k, workers=workers)
    if k == 1:
        dist, idx = dist[:, None], idx[:, None]
    return dist, idx


def farthest_point_sampling(points: torch.Tensor, n_samples: int, start: int = 0) -> torch.Tensor:
    """Indices of ``n_samples`` farthest-point samples of an (N, 3) tensor, starting at index ``start``.

    Deterministic (the same as ``torch_cluster.fps(..., random_start=False)``: first index ``start``,
    then each next point is the one farthest from those chosen, ties to the lowest index). Works on any
    device and returns indices on the input's device; memory is O(N).

    On CPU it runs in O(N log N) instead of O(N·n): once a point q is chosen, only points closer to q
    than the current largest distance can change, and a KD-tree finds exactly those (same result as
    the plain loop, which is used on other devices).
    """
    import torch

    n = points.shape[0]
    n_samples = int(min(n_samples, n))
    if n_samples <= 0:
        return torch.empty(0, dtype=torch.long, device=points.device)
    if not 0 <= int(start) < n:
        raise InputError(f"farthest_point_sampling: start {start} is out of range [0, {n - 1}]")
    if points.device.type == "cpu":
        return torch.from_numpy(_fps_kdtree(points.detach().numpy(), n_samples, int(start)))
    return _fps_torch(points, n_samples, int(start))


def _fps_torch(points: torch.Tensor, n_samples: int, start: int) -> torch.Tensor:
    """The plain FPS loop (any device)."""
    import torch

    out = torch.empty(n_samples, dtype=torch.long, device=points.device)
    dist = torch.full((points.shape[0],), float("inf"), dtype=points.dtype, device=points.device)
    idx = torch.tensor(start, device=points.device)
    for i in range(n_samples):
        out[i] = idx
        torch.minimum(dist, ((points - points[idx]) ** 2).sum(dim=1), out=dist)
        idx = torch.argmax(dist)
    return out


def _fps_kdtree(points: np.ndarray, n_samples: int, start: int) -> np.ndarray:
    """FPS on a numpy (N, 3) array with KD-tree pruning of the distance updates and a blocked running maximum.

    Two things keep it near-linear (docs/scaling.md): only the points within the current largest distance of
    the newly chosen point are updated (a ball query), and the next farthest point is found from the maxima of
    ⌈N / B⌉ blocks of B ≈ √N consecutive indices instead of a scan of all N distances. Distances only ever
    decrease, so a block's maximum needs recomputing only when its own maximising point was updated. Ties go to
    the lowest index (first block, then first in the block), as the plain loop's argmax.
    """
    pts = np.ascontiguousarray(points)
    n = len(pts)
    tree = cKDTree(pts)
    width = max(64, int(np.sqrt(n)))
    n_blocks = -(-n // width)
    dist = np.full(n_blocks * width, -np.inf)
    dist[:n] = ((pts - pts[start]) ** 2).sum(axis=1)
    blocks = dist.reshape(n_blocks, width)  # a view: updates of ``dist`` show in ``blocks``
    block_arg = blocks.argmax(axis=1)
    block_max = blocks[np.arange(n_blocks), block_arg]
    out = np.empty(n_samples, dtype=np.int64)
    out[0] = start
    for i in range(1, n_samples):
        best = int(np.argmax(block_max))
        idx = best * width + int(block_arg[best])
        out[i] = idx
        q = pts[idx]
        # points that can get closer to q than their current distance lie within sqrt(max dist) of q
        radius = float(np.sqrt(dist[idx])) * (1.0 + 1e-6) + 1e-12
        cand = np.asarray(tree.query_ball_point(q, radius), dtype=np.int64)
        d = ((pts[cand] - q) ** 2).sum(axis=1)
        closer = d < dist[cand]
        cand = cand[closer]
        dist[cand] = d[closer]
        owner = cand // width
        stale = owner[block_arg[owner] == cand - owner * width]  # blocks whose maximising point moved
        if stale.size:
            block_arg[stale] = blocks[stale].argmax(axis=1)
            block_max[stale] = blocks[stale, block_arg[stale]]
    return out
