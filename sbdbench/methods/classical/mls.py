"""``mls``: polynomial moving-least-squares projection (Levin 2003; Alexa et al. 2003), as in PCL.

For each point: a Gaussian-weighted PCA plane of its neighbourhood (weights θ(d) = exp(−d²/h²)),
the foot q of the point on that plane, a weighted least-squares height polynomial g(u, v) over the
plane centred at q, and the projection p' = q + g(0, 0) n. Degree 1 is the weighted-plane MLS;
degree 2 is PCL's ``MovingLeastSquares`` with ``polynomial_order = 2`` (no upsampling, count kept).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from sbdbench.methods.base import register
from sbdbench.methods.classical._common import check_float, check_int, local_frames
from sbdbench.methods.classical.jet import HeightFitSmoother, project_onto_height_fit


@register
class MLS(HeightFitSmoother):
    """Polynomial MLS projection with Gaussian weights.

    Args:
        radius_scale: neighbourhood radius in units of sqrt(s̄² + σ²); sets k when ``k`` is None.
        k: explicit neighbour count.
        bandwidth: Gaussian width h as a fraction of each point's k-th neighbour distance.
        degree: 1 (weighted plane) or 2 (quadric, PCL-style).
        iterations: projection passes.
    """

    name = "mls"
    paper = "Alexa et al.: Computing and rendering point set surfaces, TVCG 2003 (MLS of Levin 2003; PCL MovingLeastSquares)"
    summary = "Gaussian-weighted local plane + polynomial height fit, project the point onto it"
    tuning_grid = {"radius_scale": [2.0, 3.0, 4.0, 5.0], "bandwidth": [0.6, 1.0]}
    block_merge = "own"

    def __init__(self, radius_scale: float = 3.0, k: Optional[int] = None, bandwidth: float = 0.6, degree: int = 2,
                 iterations: int = 1) -> None:
        self.radius_scale = radius_scale
        self.k = k
        self.bandwidth = bandwidth
        self.degree = degree
        self.iterations = iterations

    def _check_params(self) -> None:
        check_float("radius_scale", self.radius_scale)
        check_int("k", self.k, minimum=6, allow_none=True)
        check_float("bandwidth", self.bandwidth)
        check_int("degree", self.degree, minimum=1)
        if self.degree > 3:
            from sbdbench.errors import InputError

            raise InputError(f"parameter degree must be 1, 2 or 3, got {self.degree}")
        check_int("iterations", self.iterations, minimum=1)

    def _move(self, x: np.ndarray, rows: slice, dist: np.ndarray, nb_idx: np.ndarray) -> np.ndarray:
        """The chunk's points moved onto their weighted height fits (:func:`knn_pass`'s ``move``)."""
        d = np.concatenate([np.zeros((len(nb_idx), 1)), dist], axis=1)
        h = self.bandwidth * d[:, -1:] + 1e-12
        w = np.exp(-(d ** 2) / h ** 2)
        c, _, frame = local_frames(x, nb_idx, w)
        n = frame[:, :, 0]
        q = x[rows] - np.einsum("mi,mi->m", x[rows] - c, n)[:, None] * n  # the point on the weighted plane
        return project_onto_height_fit(x, nb_idx, q, frame, self.degree, weights=w)
