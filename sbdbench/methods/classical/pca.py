"""``pca``: projection onto the local PCA plane (Hoppe et al. 1992), the "degree-1 MLS" baseline."""

from __future__ import annotations

from typing import Optional

import numpy as np

from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.classical._common import (check_float, check_int, in_spatial_order, knn_block_settings, knn_pass,
                                                  local_frames, neighbourhood, sample_centres)
from sbdbench.methods.meter import metered_steps


@register
class PCAProjection(Denoiser):
    """Move each point onto the least-squares plane of its k nearest neighbours (itself included).

    p' = p − ⟨p − c, n⟩ n with c the neighbourhood centroid and n its smallest-eigenvalue direction.
    Rounds edges and shrinks curved parts by about κr²/8; iterating (recomputing neighbours) removes
    more noise.

    Args:
        radius_scale: neighbourhood radius in units of sqrt(s̄² + σ²) (see ``_common``); sets k when ``k`` is None.
        k: explicit neighbour count (overrides ``radius_scale``).
        iterations: number of projection passes.
    """

    name = "pca"
    paper = "Hoppe, DeRose, Duchamp, McDonald, Stuetzle: Surface reconstruction from unorganized points, SIGGRAPH 1992"
    summary = "project each point onto its local PCA plane"
    tuning_grid = {"radius_scale": [1.5, 2.0, 3.0, 4.0], "iterations": [1, 2, 3]}
    block_merge = "own"

    def __init__(self, radius_scale: float = 2.0, k: Optional[int] = None, iterations: int = 2) -> None:
        self.radius_scale = radius_scale
        self.k = k
        self.iterations = iterations

    def _check_params(self) -> None:
        check_float("radius_scale", self.radius_scale)
        check_int("k", self.k, minimum=3, allow_none=True)
        check_int("iterations", self.iterations, minimum=1)

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """k and σ of the whole cloud; each of the ``iterations`` passes reaches one k-neighbourhood further."""
        return knn_block_settings(self, unit_points, noise_level, hops=int(self.iterations), chunked=True)

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        if len(points) < 4:
            return points
        k, _, _ = neighbourhood(points, noise_level, self.radius_scale, self.k, centres=sample_centres(len(points)))
        return in_spatial_order(lambda x: self._passes(x, k), points)

    def _passes(self, x: np.ndarray, k: int) -> np.ndarray:
        for _ in metered_steps(range(self.iterations)):
            x = knn_pass(x, k, _project_onto_plane)
        return x


def _project_onto_plane(x: np.ndarray, rows: slice, dist: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """The chunk's points projected onto their neighbourhoods' PCA planes (:func:`knn_pass`'s ``move``)."""
    c, _, v = local_frames(x, nb)
    n = v[:, :, 0]
    return x[rows] - np.einsum("mi,mi->m", x[rows] - c, n)[:, None] * n
