"""Cloud-to-cloud metrics: Chamfer distance and ScoreDenoise's Hausdorff distance.

Both clouds are mapped into the **GT cloud's** frame (bounding-box centre, max radius: the
protocol's unit sphere), as ScoreDenoise's ``chamfer_distance_unit_sphere`` does. Distances are
**squared** Euclidean:

* ``CD = mean_x min_y |x − y|² + mean_y min_x |y − x|²`` (PyTorch3D ``chamfer_distance`` defaults:
  point_reduction="mean", the two directions summed).
* ``HD = max(max_x min_y |x − y|², max_y min_x |y − x|²)`` (ScoreDenoise's
  ``hausdorff_distance_unit_sphere``; squared, as there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

from sbdbench.geometry import check_points, frame_of, normalize_unit_sphere
from sbdbench.metrics.backend import check_in_frame, finite_or_raise, resolve_backend, to_torch

if TYPE_CHECKING:  # torch is imported only by the torch backend (CPU metrics never load it)
    import torch


def _cloud_nearest(x: np.ndarray, y: np.ndarray, device, backend, dtype) -> Tuple[np.ndarray, np.ndarray]:
    name, dev = resolve_backend(device, backend)
    if name == "cpu":
        from scipy.spatial import cKDTree

        dxy = cKDTree(y).query(x, k=1, workers=-1)[0]
        dyx = cKDTree(x).query(y, k=1, workers=-1)[0]
        return dxy**2, dyx**2
    import torch

    from sbdbench.metrics.p2m_torch import nearest_sqdists_torch

    dt = dtype or torch.float32
    a, b = nearest_sqdists_torch(to_torch(x, dev, dt), to_torch(y, dev, dt))
    return a.double().cpu().numpy(), b.double().cpu().numpy()


def nearest_sqdists(
    pred, gt, *, device="cpu", backend: Optional[str] = None, dtype: Optional[torch.dtype] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Per-point squared NN distances in the GT cloud's unit-sphere frame.

    Args:
        pred: (N, 3) cloud; gt: (M, 3) cloud (defines the frame).
        device / backend: see :func:`sbdbench.metrics.backend.resolve_backend`.
        dtype: torch backend only (default float32, like PyTorch3D).

    Returns:
        ``(pred→gt (N,), gt→pred (M,))`` float64 arrays.
    """
    x = check_points(pred, "prediction")
    y = check_points(gt, "GT cloud")
    center, scale = frame_of(y, "GT cloud")
    x = check_in_frame(normalize_unit_sphere(x, center, scale)[0], "prediction", "GT cloud")
    y, _, _ = normalize_unit_sphere(y, center, scale)
    return _cloud_nearest(x, y, device, backend, dtype)


def chamfer(pred, gt, *, device="cpu", backend: Optional[str] = None, dtype: Optional[torch.dtype] = None) -> float:
    """Chamfer distance (squared, per-direction mean, directions summed) in the GT cloud's frame.

    Raw value; papers print it ×10⁴.
    """
    a, b = nearest_sqdists(pred, gt, device=device, backend=backend, dtype=dtype)
    return finite_or_raise(a.mean() + b.mean(), "Chamfer distance")


def hausdorff(pred, gt, *, device="cpu", backend: Optional[str] = None, dtype: Optional[torch.dtype] = None) -> float:
    """ScoreDenoise's Hausdorff distance: max of the two directed max **squared** NN distances, GT frame."""
    a, b = nearest_sqdists(pred, gt, device=device, backend=backend, dtype=dtype)
    return finite_or_raise(max(a.max(), b.max()), "Hausdorff distance")
