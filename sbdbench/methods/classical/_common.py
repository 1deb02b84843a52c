"""Shared numpy/scipy kernels of the classical denoisers: kNN, PCA frames, scale estimates, chunking.

Every classical method works in the protocol's unit-sphere frame (the base class normalises), so
spacings, radii and σ below are in those units.

Neighbourhood scaling (docs/methods.md, "Classical baselines"): the same relative noise needs more neighbours at higher
resolution. With mean spacing s̄ ≈ sqrt(A / N) and noise σ, a neighbourhood of radius
``r = radius_scale · sqrt(s̄² + σ²)`` holds about ``k = π r² / s̄² = π · radius_scale² · (1 + σ²/s̄²)``
points. At 10K/1 % that is ≈ 3.5·c² neighbours, at 50K/3 % ≈ 18·c² (c = radius_scale), so one tuned
``radius_scale`` transfers across resolutions and noise levels where a fixed ``k`` does not.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
from scipy.spatial import cKDTree

from sbdbench.methods.meter import batch_done
from sbdbench.methods.noise_level import estimate_noise_level
from sbdbench.methods.param_checks import check_float, check_int  # noqa: F401  (re-exported for the classical filters)

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


def in_spatial_order(passes: Callable[[np.ndarray], np.ndarray], points: np.ndarray) -> np.ndarray:
    """``passes(points)`` run on the rows in the leaf order of a kd tree, the result put back in input order.

    A point-wise kNN method gives the same rows in any order (ties between equidistant neighbours aside), but in
    the tree's order the queries and the neighbour gathers walk memory that is already in the CPU cache: one pca
    pass at 1M random-order points and k = 200 takes 58.0 s in input order and 24.9 s in tree order
    (``benchmarks/classical_order.py``, docs/scaling.md). ``passes``: (N, 3) → (N, 3), output row i from input row i.
    """
    order = cKDTree(points).indices
    out = np.empty_like(points)
    out[order] = passes(np.ascontiguousarray(points[order]))
    return out


def worker_threads() -> int:
    """Threads a kNN pass runs its chunks on: the CPUs this process may use (``taskset``, cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def knn_pass(points: np.ndarray, k: int, move: Callable[[np.ndarray, slice, np.ndarray, np.ndarray], np.ndarray],
             size: int = CHUNK) -> np.ndarray:
    """One point-wise kNN pass: ``out[rows] = move(points, rows, dist, nb)`` for every chunk of ``size`` consecutive
    rows, their k nearest other points queried per chunk, so that no (N, k) array is ever held (bounded memory at 1M+);
    the rows of ``dist`` and ``nb`` equal :func:`knn_self`'s and :func:`with_self`'s.

    The chunks run on :func:`worker_threads` threads (the KD-tree query, the gathers and numpy's kernels release
    the GIL), each querying the shared tree itself; a row's result does not depend on the thread or the chunk it
    was in, so the output is the same for any thread count. ``move``: (N, 3) points, the chunk's row slice,
    (M, k) distances and (M, k + 1) neighbour rows (own row first) → (M, 3) new positions.
    """
    n = len(points)
    k = int(max(1, min(k, n - 1)))
    tree = cKDTree(points)
    out = np.empty_like(points)

    def run(rows: slice) -> None:
        dist, idx = tree.query(points[rows], k=k + 1, workers=1)
        nb = np.concatenate([np.arange(rows.start, rows.stop)[:, None], idx[:, 1:]], axis=1)
        out[rows] = move(points, rows, dist[:, 1:], nb)

    tasks = list(chunks(n, size))
    threads = min(worker_threads(), len(tasks))
    if threads == 1:
        for done, rows in enumerate(tasks, 1):
            run(rows)
            batch_done(done, len(tasks))
        return out
    with ThreadPoolExecutor(threads) as pool:  # results in order, here: the first error of a chunk is re-raised
        for done, _ in enumerate(pool.map(run, tasks), 1):
            batch_done(done, len(tasks))  # in this thread, where the caller's meter is
    return out


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
    return gathered_frames(points[neighbours], weights)


def gathered_frames(nb: np.ndarray, weights: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`local_frames` of neighbourhoods already gathered: ``nb`` (M, K, 3) their points (a caller that needs
    the points again gathers them once)."""
    if weights is None:
        c = nb.mean(axis=1)
        d = nb - c[:, None]
        cov = np.matmul(d.transpose(0, 2, 1), d) / nb.shape[1]  # = einsum("mki,mkj->mij"), 5× faster
    else:
        wsum = weights.sum(axis=1, keepdims=True)
        wsum = np.where(wsum > 0, wsum, 1.0)
        wn = weights / wsum
        c = np.einsum("mk,mki->mi", wn, nb)
        d = nb - c[:, None]
        cov = np.matmul((d * wn[:, :, None]).transpose(0, 2, 1), d)
    evals, evecs = np.linalg.eigh(cov)
    return c, evals, evecs


def with_self(idx: np.ndarray, rows: slice | np.ndarray | None = None) -> np.ndarray:
    """Prepend each point's own index to its neighbour list: (M, K) → (M, K + 1)."""
    own = np.arange(len(idx))[:, None] if rows is None else np.arange(len(idx))[rows][:, None]
    sub = idx if rows is None else idx[rows]
    return np.concatenate([own, sub], axis=1)


def sample_centres(n: int, max_centres: int = 100_000) -> np.ndarray:
    """Every ⌈n / max_centres⌉-th index: the centres cloud-wide statistics are measured at (all of them up to
    ``max_centres``, so the statistics of clouds that small are the exact ones)."""
    return np.arange(0, n, max(1, -(-n // max_centres)))


def knn_of(points: np.ndarray, centres: Optional[np.ndarray], k: int, tree: Optional[cKDTree] = None) -> Tuple[np.ndarray, np.ndarray]:
    """:func:`knn_self` of the ``centres`` rows only (all rows when None), against the whole cloud."""
    if centres is None:
        return knn_self(points, k, tree)
    k = int(max(1, min(k, len(points) - 1)))
    tree = tree if tree is not None else cKDTree(points)
    dist, idx = tree.query(points[centres], k=k + 1, workers=-1)
    return dist[:, 1:], idx[:, 1:]


def mean_spacing(points: np.ndarray, tree: Optional[cKDTree] = None, centres: Optional[np.ndarray] = None) -> float:
    """Mean surface spacing s̄ ≈ sqrt(A / N), from the median distance to the 16th neighbour.

    On a surface the 16 nearest points fill a disc of area π r16² ≈ 16 A / N, so
    s̄ = r16 · sqrt(π / 16). Noise thicker than s̄ biases it slightly upward; the tuned
    ``radius_scale`` absorbs that.
    """
    k = min(16, len(points) - 1)
    if k < 1:
        return 1.0
    dist, _ = knn_of(points, centres, k, tree)
    r = float(np.median(dist[:, -1]))
    return max(r * math.sqrt(math.pi / k), 1e-9)


def estimate_noise(points: np.ndarray, k: Optional[int] = None, tree: Optional[cKDTree] = None,
                   centres: Optional[np.ndarray] = None) -> float:
    """Noise σ̂ of a unit-sphere cloud: :func:`sbdbench.methods.noise_level.estimate_noise_level`, the project's one
    estimator (``tree`` and ``centres`` are accepted for the callers' convenience; it samples its own centres)."""
    return estimate_noise_level(points, k)


def neighbourhood(points: np.ndarray, noise_level: Optional[float], radius_scale: float, k: Optional[int] = None,
                  tree: Optional[cKDTree] = None, centres: Optional[np.ndarray] = None) -> Tuple[int, float, float]:
    """Resolve the neighbourhood of a method: returns (k, sigma, spacing).

    ``sigma`` is ``noise_level`` or the estimate :func:`estimate_noise`; ``k`` is the explicit value
    if given, else ``π · radius_scale² · (1 + σ²/s̄²)`` clipped to [K_MIN, K_MAX] (module docstring).
    Both are clipped to N - 1. ``centres``: measure s̄ and σ̂ at these rows only (:func:`sample_centres`).
    """
    spacing = mean_spacing(points, tree, centres)
    sigma = float(noise_level) if noise_level is not None else estimate_noise(points, tree=tree, centres=centres)
    if k is None:
        k = math.pi * radius_scale ** 2 * (1.0 + (sigma / spacing) ** 2)
        k = int(round(min(max(k, K_MIN), K_MAX)))
    return int(max(1, min(int(k), len(points) - 1))), sigma, spacing


# --- blocks (sbdbench.methods.blocks): the cloud-wide k and σ, and how far a point's output reaches -------------
#: the k-th-neighbour radius quantile that sizes the overlap, and the slack on it (points move between passes)
SUPPORT_QUANTILE, SUPPORT_SLACK = 0.999, 1.25


def knn_support(points: np.ndarray, k: int, tree: cKDTree, centres: np.ndarray) -> float:
    """The radius that holds the k nearest neighbours of nearly every point (quantile of the k-th distance; the
    centres are queried a chunk at a time, so 100K centres at k = 200 never hold a (100K, k) array)."""
    k = int(max(1, min(k, len(points) - 1)))
    kth = np.concatenate([tree.query(points[centres[rows]], k=k + 1, workers=-1)[0][:, -1] for rows in chunks(len(centres))])
    return float(np.quantile(kth, SUPPORT_QUANTILE)) * SUPPORT_SLACK


def knn_bytes_per_point(method, points: np.ndarray, k: Optional[int] = None) -> float:
    """Working bytes per point of a kNN pass with the neighbourhood ``method`` resolves on ``points`` (measured:
    docs/scaling.md): the (N, k) distances and indices (16 B each), the KD-tree and a few (N, 3) copies."""
    if k is None:
        k = getattr(method, "k", None) or int(K_MIN * max(1.0, float(getattr(method, "radius_scale", 2.0)) ** 2))
    return 16.0 * (int(k) + 1) + 400.0


#: a chunked kNN pass (:func:`knn_pass`): bytes per point (the KD-tree, the tree-order copy, the pass's input and
#: output) and bytes per neighbour entry of one chunk (query distances and indices, gathered and centred
#: coordinates, a method's (M, k) offsets and weights); measured in docs/scaling.md
CHUNKED_BYTES_PER_POINT, CHUNK_BYTES_PER_ENTRY = 200.0, 170.0


def chunked_knn_mb(k: int) -> float:
    """Working megabytes of the chunks of :func:`knn_pass` in flight at ``k`` neighbours (one per worker thread;
    independent of N)."""
    return worker_threads() * CHUNK * (int(k) + 1) * CHUNK_BYTES_PER_ENTRY / 2**20


def diffusion_hops(steps: int) -> int:
    """Neighbourhoods an averaging scheme of ``steps`` steps reaches to round-off: its kernel spreads like a random
    walk (√steps), measured on a 20K torus for taubin's 20 steps (4 hops: 2e-9 off, 6: 1e-16; docs/scaling.md)."""
    return int(min(steps, np.ceil(np.sqrt(steps)) + 1))


def knn_block_settings(method, points: np.ndarray, noise_level: Optional[float], hops: int, bytes_factor: float = 1.0,
                       chunked: bool = False):
    """:class:`~sbdbench.methods.base.BlockSettings` of a kNN method with ``radius_scale``/``k``: k and σ fixed from
    the whole cloud; the overlap is ``hops`` k-th-neighbour radii (each pass or step reaches one neighbourhood further);
    ``bytes_factor`` × :func:`knn_bytes_per_point` at that k is the working memory per point, or, for a method that
    queries per chunk (``chunked``), :data:`CHUNKED_BYTES_PER_POINT` plus :func:`chunked_knn_mb` fixed."""
    from sbdbench.methods.base import BlockSettings

    tree, centres = cKDTree(points), sample_centres(len(points))
    k, sigma, _ = neighbourhood(points, noise_level, method.radius_scale, method.k, tree, centres)
    fixed = type(method)(**{**method.get_params(), "k": k})
    margin = hops * knn_support(points, k, tree, centres)
    if chunked:
        return BlockSettings(fixed, margin, CHUNKED_BYTES_PER_POINT, sigma, fixed_mb=chunked_knn_mb(k))
    return BlockSettings(fixed, margin, bytes_factor * knn_bytes_per_point(fixed, points, k), sigma)


def too_small(points: np.ndarray, minimum: int, name: str) -> bool:
    """True when the cloud has fewer than ``minimum`` points (the method then returns it unchanged)."""
    return len(points) < minimum
