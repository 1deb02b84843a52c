"""``wlop``: weighted locally optimal projection (Huang et al. 2009), count-preserving.

Particles X start as the input P (select_percentage = 100 %, so N is kept and CD/P2M stay
comparable) and iterate

    x_i ← Σ_j θ(‖x_i − p_j‖) p_j / Σ_j θ(‖x_i − p_j‖)                     (attraction to the data)
          + μ Σ_i' w_i' θ(r)/r² (x_i − x_i') / Σ_i' w_i' θ(r)/r²           (repulsion between particles)

with θ(r) = exp(−4 r² / h²) and particle density weights w_i = 1 + Σ θ (CGAL's kernels, read in
``wlop_simplify_and_regularize_point_set``). Sums are truncated to the k nearest data points and
particles (a kNN port: θ is below 2 % beyond r = h, so the truncation barely matters).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.spatial import cKDTree

from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.classical._common import (check_float, check_int, diffusion_hops, estimate_noise, knn_bytes_per_point, knn_self, knn_support,
                                                  mean_spacing, sample_centres)


@register
class WLOP(Denoiser):
    """WLOP with 100 % of the points as particles (count-preserving).

    Args:
        radius_scale: support radius h in units of sqrt(s̄² + σ²).
        iterations: projection iterations (10 gives the same error as CGAL's default of 35).
        mu: repulsion strength μ ∈ [0, 0.5).
        k_attract: data points per particle in the attraction sum.
        k_repulse: particles per particle in the repulsion sum.
    """

    name = "wlop"
    paper = "Huang, Li, Zhang, Ascher, Cohen-Or: Consolidation of unorganized point clouds for surface reconstruction (WLOP), SIGGRAPH Asia 2009"
    summary = "locally optimal projection: attract particles to the data, repel them from each other"
    tuning_grid = {"radius_scale": [3.0, 4.0, 6.0]}
    block_merge = "own"

    def __init__(self, radius_scale: float = 4.0, iterations: int = 10, mu: float = 0.45, k_attract: int = 48,
                 k_repulse: int = 24) -> None:
        self.radius_scale = radius_scale
        self.iterations = iterations
        self.mu = mu
        self.k_attract = k_attract
        self.k_repulse = k_repulse

    def _check_params(self) -> None:
        check_float("radius_scale", self.radius_scale)
        check_int("iterations", self.iterations, minimum=1)
        check_float("mu", self.mu, minimum=0.0, strict=False, maximum=0.5)
        check_int("k_attract", self.k_attract, minimum=1)
        check_int("k_repulse", self.k_repulse, minimum=1)

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """σ of the whole cloud; each iteration reaches the k_attract-th data point and the k_repulse-th particle."""
        from sbdbench.methods.base import BlockSettings

        tree, centres = cKDTree(unit_points), sample_centres(len(unit_points))
        sigma = float(noise_level) if noise_level is not None else estimate_noise(unit_points, tree=tree, centres=centres)
        reach = knn_support(unit_points, max(int(self.k_attract), int(self.k_repulse)), tree, centres)
        k = int(self.k_attract) + int(self.k_repulse)
        fixed = WLOP(**self.get_params())
        fixed._block_spacing = mean_spacing(unit_points, tree, centres)  # h from the whole cloud, as without blocks
        return BlockSettings(fixed, diffusion_hops(int(self.iterations)) * reach, knn_bytes_per_point(self, unit_points, k), sigma)

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        n = len(points)
        if n < 4:
            return points
        data_tree = cKDTree(points)
        spacing = getattr(self, "_block_spacing", None) or mean_spacing(points, data_tree, sample_centres(n))
        sigma = float(noise_level) if noise_level is not None else estimate_noise(points, tree=data_tree, centres=sample_centres(n))
        h = self.radius_scale * np.sqrt(spacing ** 2 + sigma ** 2)
        inv_h2 = 4.0 / h ** 2
        k_att = int(min(self.k_attract, n))
        x = points.copy()
        for _ in range(self.iterations):
            # attraction: Gaussian-weighted mean of the nearby data points
            d_att, i_att = data_tree.query(x, k=k_att, workers=-1)
            if k_att == 1:
                d_att, i_att = d_att[:, None], i_att[:, None]
            theta = np.exp(-(d_att ** 2) * inv_h2)
            tsum = theta.sum(axis=1, keepdims=True)
            attract = np.einsum("nk,nkd->nd", theta / np.where(tsum > 0, tsum, 1.0), points[i_att])
            attract = np.where(tsum > 0, attract, x)
            # repulsion: density-weighted push away from nearby particles
            d_rep, i_rep = knn_self(x, self.k_repulse)
            theta_r = np.exp(-(d_rep ** 2) * inv_h2)
            density = 1.0 + theta_r.sum(axis=1)
            w = theta_r / np.maximum(d_rep, 1e-9 * h) ** 2 * density[i_rep]
            wsum = w.sum(axis=1, keepdims=True)
            diff = x[:, None, :] - x[i_rep]
            repulse = np.einsum("nk,nkd->nd", w / np.where(wsum > 0, wsum, 1.0), diff)
            x = attract + self.mu * repulse
        return x
