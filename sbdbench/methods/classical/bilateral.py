"""``bilateral``: the point bilateral filter of Digne & de Franchis (IPOL 2017), after Fleishman et al.

This is the "Bilateral" baseline of ScoreDenoise and DMRDenoise: each point moves along its PCA
normal by a bilateral-weighted mean of its neighbours' normal offsets (Jacobi update, all points use
the previous positions). Not CGAL's edge-aware ``bilateral_smooth_point_set`` and not Open3D's
``smooth_bilateral`` (which averages full positions).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.classical._common import (check_float, check_int, gathered_frames, in_spatial_order, knn_block_settings,
                                                  knn_pass, neighbourhood, sample_centres)
from sbdbench.methods.meter import metered_steps


@register
class Bilateral(Denoiser):
    """Point bilateral filter, moving along the normal.

    For each p with PCA normal n and neighbours q: d_d = ‖q − p‖, d_n = ⟨n, q − p⟩,
    w = exp(−d_d² / 2σ_d²) · exp(−d_n² / 2σ_n²), p' = p + (Σ w d_n / Σ w) n.

    Args:
        radius_scale: neighbourhood radius in units of sqrt(s̄² + σ²); sets k when ``k`` is None.
        k: explicit neighbour count.
        iterations: filter passes (neighbours and normals recomputed each pass).
        sigma_d_scale: σ_d as a fraction of the point's k-th neighbour distance.
        sigma_n_scale: σ_n as a multiple of the noise level σ; None uses the standard deviation of
            the offsets d_n in each neighbourhood (Fleishman's choice).
    """

    name = "bilateral"
    paper = "Digne & de Franchis: The bilateral filter for point clouds, IPOL 7 (2017); after Fleishman et al., SIGGRAPH 2003"
    paper_url = "https://doi.org/10.5201/ipol.2017.179"  # the IPOL article page carries the authors' code
    summary = "move each point along its normal by a bilateral-weighted mean of neighbour offsets"
    tuning_grid = {"radius_scale": [2.0, 3.0, 4.0], "iterations": [1, 3], "sigma_n_scale": [1.0, 2.0]}
    block_merge = "own"

    def __init__(self, radius_scale: float = 3.0, k: Optional[int] = None, iterations: int = 2,
                 sigma_d_scale: float = 0.5, sigma_n_scale: Optional[float] = 2.0) -> None:
        self.radius_scale = radius_scale
        self.k = k
        self.iterations = iterations
        self.sigma_d_scale = sigma_d_scale
        self.sigma_n_scale = sigma_n_scale

    def _check_params(self) -> None:
        check_float("radius_scale", self.radius_scale)
        check_int("k", self.k, minimum=3, allow_none=True)
        check_int("iterations", self.iterations, minimum=1)
        check_float("sigma_d_scale", self.sigma_d_scale)
        check_float("sigma_n_scale", self.sigma_n_scale, allow_none=True)

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """k and σ of the whole cloud; each of the ``iterations`` passes reaches one k-neighbourhood further."""
        return knn_block_settings(self, unit_points, noise_level, hops=int(self.iterations), chunked=True)

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        if len(points) < 4:
            return points
        k, sigma, spacing = neighbourhood(points, noise_level, self.radius_scale, self.k, centres=sample_centres(len(points)))
        # σ_n from the noise level: never below a fraction of the spacing (σ = 0 would divide by zero).
        sigma_n = None if self.sigma_n_scale is None else self.sigma_n_scale * max(sigma, 0.05 * spacing)
        return in_spatial_order(lambda x: self._passes(x, k, sigma_n), points)

    def _passes(self, x: np.ndarray, k: int, sigma_n: Optional[float]) -> np.ndarray:
        for _ in metered_steps(range(self.iterations)):
            x = knn_pass(x, k, lambda p, rows, d, nb: self._move(p, rows, d, nb, sigma_n))
        return x

    def _move(self, x: np.ndarray, rows: slice, d: np.ndarray, nb: np.ndarray, sigma_n: Optional[float]) -> np.ndarray:
        """The chunk's points moved along their normals (:func:`knn_pass`'s ``move``)."""
        nb_points = x[nb]  # (M, k + 1, 3), gathered once for the frame and the offsets
        _, _, frame = gathered_frames(nb_points)
        n = frame[:, :, 0]
        off = np.matmul(nb_points[:, 1:] - x[rows][:, None], n[:, :, None])[..., 0]  # (M, k): ⟨n, q − p⟩
        sd = self.sigma_d_scale * d[:, -1:] + 1e-12
        sn = (off.std(axis=1, keepdims=True) if sigma_n is None else np.full((len(off), 1), sigma_n)) + 1e-12
        w = np.exp(-(d ** 2) / (2 * sd ** 2) - off ** 2 / (2 * sn ** 2))
        wsum = w.sum(axis=1)
        move = np.where(wsum > 0, (w * off).sum(axis=1) / np.where(wsum > 0, wsum, 1.0), 0.0)
        return x[rows] + move[:, None] * n
