"""``laplacian`` and ``taubin``: umbrella-operator smoothing on the kNN graph of the input.

Umbrella (Taubin 1995; Desbrun et al. 1999): x_i ← x_i + λ (mean of the neighbours − x_i). It
shrinks and drifts tangentially; Taubin's λ|μ scheme alternates a shrinking step (λ > 0) and an
inflating one (μ < −λ) to cancel the shrinkage. The graph is the k-NN graph of the input (fixed, as
Open3D's ``use_fixed_neighborhoods``), so each step is one gather.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from sbdbench.errors import InputError
from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.classical._common import (check_float, check_int, diffusion_hops, knn_block_settings, knn_self, neighbourhood,
                                                  sample_centres)


def umbrella_step(x: np.ndarray, idx: np.ndarray, factor: float) -> np.ndarray:
    """One umbrella step x + factor · (mean of neighbours − x); idx is (N, k)."""
    return x + factor * (x[idx].mean(axis=1) - x)


@register
class Laplacian(Denoiser):
    """Umbrella (graph-Laplacian) smoothing with a uniform-weight kNN graph.

    Args:
        radius_scale: neighbourhood radius in units of sqrt(s̄² + σ²); sets k when ``k`` is None.
        k: explicit neighbour count.
        lam: step size λ ∈ (0, 1].
        iterations: number of steps.
    """

    name = "laplacian"
    paper = "Taubin: A signal processing approach to fair surface design, SIGGRAPH 1995 (umbrella operator)"
    summary = "move each point towards the mean of its neighbours"
    tuning_grid = {"radius_scale": [1.5, 2.0, 3.0], "lam": [0.25, 0.5], "iterations": [1, 2, 4]}
    block_merge = "own"

    def __init__(self, radius_scale: float = 2.0, k: Optional[int] = None, lam: float = 0.5, iterations: int = 2) -> None:
        self.radius_scale = radius_scale
        self.k = k
        self.lam = lam
        self.iterations = iterations

    def _check_params(self) -> None:
        check_float("radius_scale", self.radius_scale)
        check_int("k", self.k, minimum=1, allow_none=True)
        check_float("lam", self.lam, maximum=1.0)
        check_int("iterations", self.iterations, minimum=1)

    def _steps(self) -> Tuple[float, ...]:
        """The umbrella step sizes of one iteration (λ; Taubin: λ then μ)."""
        return (float(self.lam),)

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """k and σ of the whole cloud; every umbrella step reaches one k-neighbourhood further."""
        hops = diffusion_hops(int(self.iterations) * len(self._steps()))
        return knn_block_settings(self, unit_points, noise_level, hops=hops)

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        if len(points) < 2:
            return points
        k, _, _ = neighbourhood(points, noise_level, self.radius_scale, self.k, centres=sample_centres(len(points)))
        _, idx = knn_self(points, k)
        x = points
        for _ in range(self.iterations):
            for step in self._steps():
                x = umbrella_step(x, idx, step)
        return x


@register
class Taubin(Laplacian):
    """Taubin λ|μ smoothing: alternate umbrella steps with λ > 0 and μ < −λ (no shrinkage).

    Args:
        radius_scale: neighbourhood radius in units of sqrt(s̄² + σ²); sets k when ``k`` is None.
        k: explicit neighbour count.
        lam: shrinking step λ ∈ (0, 1].
        mu: inflating step μ, with μ < −λ (Open3D default −0.53 for λ = 0.5).
        iterations: number of λ|μ pairs.
    """

    name = "taubin"
    paper = "Taubin: A signal processing approach to fair surface design, SIGGRAPH 1995 (λ|μ smoothing)"
    summary = "alternating shrink/inflate umbrella steps (low-pass filter without shrinkage)"
    tuning_grid = {"radius_scale": [1.5, 2.0, 3.0], "iterations": [2, 5, 10, 20]}

    def __init__(self, radius_scale: float = 2.0, k: Optional[int] = None, lam: float = 0.5, mu: float = -0.53,
                 iterations: int = 10) -> None:
        self.radius_scale = radius_scale
        self.k = k
        self.lam = lam
        self.mu = mu
        self.iterations = iterations

    def _check_params(self) -> None:
        super()._check_params()
        check_float("mu", self.mu, minimum=-1.0, strict=False, maximum=0.0)
        if not self.mu < -self.lam:
            raise InputError(f"parameter mu must be < -lam (Taubin's condition), got lam={self.lam}, mu={self.mu}")

    def _steps(self) -> Tuple[float, ...]:
        return (float(self.lam), float(self.mu))
