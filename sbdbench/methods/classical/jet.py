"""``jet``: jet smoothing, a vectorised port of CGAL's ``jet_smooth_point_set``.

Cazals & Pouget fit an osculating jet (a degree-d height polynomial over the local PCA plane) to each
neighbourhood and move the point onto it: p' = p + J(0, 0) · n.
"""

from __future__ import annotations

import abc
from typing import Optional

import numpy as np

from sbdbench.errors import InputError
from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.classical._common import (check_float, check_int, in_spatial_order, knn_block_settings, knn_pass,
                                                  local_frames, neighbourhood, sample_centres)
from sbdbench.methods.meter import metered_steps


def monomials(u: np.ndarray, v: np.ndarray, degree: int) -> np.ndarray:
    """All monomials u^a v^b with a + b ≤ degree, constant first: (..., (d+1)(d+2)/2)."""
    return np.stack([u ** a * v ** (d - a) for d in range(degree + 1) for a in range(d, -1, -1)], axis=-1)


def fit_height_at_origin(u: np.ndarray, v: np.ndarray, w: np.ndarray, degree: int, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Least-squares fit of w ≈ Σ c_ab u^a v^b per row; returns the constant term c_00, shape (M,).

    u, v, w, weights: (M, K). u and v should be pre-scaled to about [-1, 1] for conditioning
    (c_00 does not depend on that scaling). A tiny ridge keeps degenerate rows solvable.
    """
    a = monomials(u, v, degree)  # (M, K, P)
    aw = a if weights is None else a * weights[..., None]
    ata = np.einsum("mki,mkj->mij", aw, a)
    atb = np.einsum("mki,mk->mi", aw, w)
    n_coef = a.shape[-1]
    ridge = 1e-10 * np.trace(ata, axis1=1, axis2=2) + 1e-12
    ata += ridge[:, None, None] * np.eye(n_coef)
    return np.linalg.solve(ata, atb[..., None])[:, 0, 0]


def project_onto_height_fit(x: np.ndarray, nb_idx: np.ndarray, origin: np.ndarray, frame: np.ndarray, degree: int,
                            weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Move each ``origin`` along its frame normal onto the polynomial height field fitted to its neighbours.

    x: (N, 3) cloud; nb_idx: (M, K) neighbour rows; origin: (M, 3) frame origins; frame: (M, 3, 3) with
    the normal in column 0 (:func:`~sbdbench.methods.classical._common.local_frames`); weights: (M, K)
    or None. Shared by jet (origin = the point) and MLS (origin = the point projected on the local plane).
    """
    local = np.einsum("mkd,mde->mke", x[nb_idx] - origin[:, None], frame)  # (M, K, 3): height, u, v
    height, u, v = local[..., 0], local[..., 1], local[..., 2]
    scale = np.sqrt((u ** 2 + v ** 2).max(axis=1, keepdims=True))
    scale = np.where(scale > 0, scale, 1.0)
    c00 = fit_height_at_origin(u / scale, v / scale, height, degree, weights=weights)
    return origin + c00[:, None] * frame[:, :, 0]


class HeightFitSmoother(Denoiser, abc.ABC):
    """What jet and MLS share: ``iterations`` k-NN passes (k from ``radius_scale``/``k``, at least the polynomial's
    coefficient count) in which ``_move`` puts each point onto a degree-``degree`` height fit of its neighbours.
    A subclass sets the parameters and ``_move`` (:func:`knn_pass`'s ``move``). Not a registered method."""

    radius_scale: float
    k: Optional[int]
    degree: int
    iterations: int

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """k and σ of the whole cloud; each of the ``iterations`` passes reaches one k-neighbourhood further."""
        return knn_block_settings(self, unit_points, noise_level, hops=int(self.iterations), chunked=True)

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        n_coef = (self.degree + 1) * (self.degree + 2) // 2
        if len(points) < n_coef + 1:
            return points
        k, _, _ = neighbourhood(points, noise_level, self.radius_scale, self.k, centres=sample_centres(len(points)))
        return in_spatial_order(lambda x: self._passes(x, max(k, n_coef)), points)

    def _passes(self, x: np.ndarray, k: int) -> np.ndarray:
        for _ in metered_steps(range(self.iterations)):
            x = knn_pass(x, k, self._move)
        return x

    @abc.abstractmethod
    def _move(self, x: np.ndarray, rows: slice, dist: np.ndarray, nb_idx: np.ndarray) -> np.ndarray:
        """New positions of ``x[rows]``, (M, 3): :func:`knn_pass`'s ``move`` (``dist`` (M, k), ``nb_idx`` (M, k + 1), own row first)."""


@register
class Jet(HeightFitSmoother):
    """Jet smoothing: fit a degree-``degree`` height polynomial in the PCA frame of each k-NN
    neighbourhood (the point included, frame origin at the point) and move the point to the
    polynomial's value above it. Matches CGAL's ``jet_smooth_point_set`` (degree_fitting = degree,
    degree_monge = 2) up to floating point.

    Args:
        radius_scale: neighbourhood radius in units of sqrt(s̄² + σ²); sets k when ``k`` is None.
        k: explicit neighbour count (CGAL's default for real data is 24).
        degree: polynomial degree (2 = CGAL default; needs k ≥ (d+1)(d+2)/2).
        iterations: passes, recomputing neighbours each time.
    """

    name = "jet"
    paper = "Cazals & Pouget: Estimating differential quantities using polynomial fitting of osculating jets, CAGD 22(2) 2005"
    paper_url = "https://hal.inria.fr/inria-00097582"
    summary = "fit a local quadric height field (osculating jet) and move the point onto it"
    tuning_grid = {"radius_scale": [2.0, 2.5, 3.0, 4.0, 5.0], "iterations": [1, 2]}
    block_merge = "own"

    def __init__(self, radius_scale: float = 3.0, k: Optional[int] = None, degree: int = 2, iterations: int = 1) -> None:
        self.radius_scale = radius_scale
        self.k = k
        self.degree = degree
        self.iterations = iterations

    def _check_params(self) -> None:
        check_float("radius_scale", self.radius_scale)
        check_int("degree", self.degree, minimum=1)
        if self.degree > 4:
            raise InputError(f"parameter degree must be ≤ 4, got {self.degree}")
        n_coef = (self.degree + 1) * (self.degree + 2) // 2
        check_int("k", self.k, minimum=n_coef, allow_none=True)
        check_int("iterations", self.iterations, minimum=1)

    def _move(self, x: np.ndarray, rows: slice, dist: np.ndarray, nb_idx: np.ndarray) -> np.ndarray:
        """The chunk's points moved onto their jets (:func:`knn_pass`'s ``move``)."""
        _, _, frame = local_frames(x, nb_idx)
        return project_onto_height_fit(x, nb_idx, x[rows], frame, self.degree)
