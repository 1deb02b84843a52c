"""Point-to-mesh distance (P2M), exact or with PyTorch3D ≥ 0.6.2's semantics.

The cloud and the mesh are mapped into the **mesh vertices'** frame (bounding-box centre, max
radius), as ScoreDenoise's ``point_mesh_bidir_distance_single_unit_sphere`` does. Then

``P2M = mean_p d²(p, M) + mean_f min_p d²(p, f)``  (point→face plus face→point, squared, summed)

with ``d²`` the point–triangle squared distance:

* ``mode="exact"``: the Euclidean distance (what papers mean; PyTorch3D with
  ``min_triangle_area=0`` up to its 1e-8 epsilons).
* ``mode="pytorch3d"``: PyTorch3D's ``point_mesh_face_distance`` default behaviour since 0.6.2:
  faces with area < ``min_triangle_area`` (default 5e-3, in unit-sphere units — nearly every face
  of a dense mesh) count as their three edges. ``min_triangle_area=1e-5`` reproduces
  PyTorch3D 0.5–0.6.1 (ScoreDenoise's pinned 0.5.0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np

from sbdbench.geometry import check_mesh, check_points, frame_of, normalize_unit_sphere
from sbdbench.metrics.backend import check_in_frame, check_min_area, check_mode, finite_or_raise, resolve_backend, to_torch

if TYPE_CHECKING:  # torch is imported only by the torch backend (CPU metrics never load it)
    import torch

PT3D_DEFAULT_MIN_AREA = 5e-3


def normalized_inputs(pred, verts, faces) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and map (cloud, mesh) into the mesh vertices' unit-sphere frame (float64).

    Accepts numpy arrays or tensors on any device (copied to host float64: the frame is computed there)."""
    v, f = check_mesh(verts, faces, "GT mesh")
    p = check_points(pred, "prediction")
    center, scale = frame_of(v, "GT mesh", "vertices")
    v, _, _ = normalize_unit_sphere(v, center, scale)
    p = check_in_frame(normalize_unit_sphere(p, center, scale)[0], "prediction", "GT mesh")
    return p, v, f


def _terms_normalized(p, v, f, mode, min_triangle_area, device, backend, dtype):
    check_mode(mode)
    min_triangle_area = check_min_area(min_triangle_area)
    name, dev = resolve_backend(device, backend)
    if name == "cpu":
        from sbdbench.metrics.p2m_cpu import point_mesh_terms

        return point_mesh_terms(p, v, f, mode, min_triangle_area)
    import torch

    from sbdbench.metrics.p2m_torch import point_mesh_terms_torch

    dt = dtype or torch.float32
    a, b = point_mesh_terms_torch(
        to_torch(p, dev, dt), to_torch(v, dev, dt), torch.as_tensor(f, dtype=torch.long, device=dev), mode, min_triangle_area
    )
    return a.double().cpu().numpy(), b.double().cpu().numpy()


def point_mesh_terms(
    pred,
    verts,
    faces,
    *,
    mode: str = "exact",
    min_triangle_area: float = PT3D_DEFAULT_MIN_AREA,
    device="cpu",
    backend: Optional[str] = None,
    dtype: Optional[torch.dtype] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Per-point point→face (P,) and per-face face→point (F,) squared distances, mesh frame.

    Args:
        pred: (P, 3) cloud; verts: (V, 3); faces: (F, 3) integer indices.
        mode, min_triangle_area: see the module docstring (the area only matters for "pytorch3d").
        device / backend: "cpu" → exact float64 CPU code; CUDA or backend="torch" → torch brute force.
        dtype: torch backend only (default float32, like PyTorch3D).
    """
    p, v, f = normalized_inputs(pred, verts, faces)
    return _terms_normalized(p, v, f, mode, min_triangle_area, device, backend, dtype)


def p2m(
    pred,
    verts,
    faces,
    *,
    mode: str = "exact",
    min_triangle_area: float = PT3D_DEFAULT_MIN_AREA,
    device="cpu",
    backend: Optional[str] = None,
    dtype: Optional[torch.dtype] = None,
) -> float:
    """P2M = mean point→face + mean face→point squared distance in the mesh's frame (raw; papers ×10⁴)."""
    a, b = point_mesh_terms(
        pred, verts, faces, mode=mode, min_triangle_area=min_triangle_area, device=device, backend=backend, dtype=dtype
    )
    return finite_or_raise(a.mean() + b.mean(), f"P2M ({mode})")


def point_to_mesh_distances(
    pred, verts, faces, *, mode: str = "exact", min_triangle_area: float = PT3D_DEFAULT_MIN_AREA, device="cpu", backend=None
) -> np.ndarray:
    """(P,) squared distance of every predicted point to the mesh, in the mesh's unit-sphere frame
    (the per-point half of P2M; for plots and error maps). Multiply by the mesh scale² for world units."""
    p, v, f = normalized_inputs(pred, verts, faces)
    check_mode(mode)
    name, dev = resolve_backend(device, backend)
    if name == "cpu":
        from sbdbench.metrics import p2m_cpu

        if mode == "exact":
            return p2m_cpu.exact_point_to_face(p, v, f)
        return p2m_cpu.pytorch3d_point_to_face(p, v, f, check_min_area(min_triangle_area))
    return _terms_normalized(p, v, f, mode, min_triangle_area, device, backend, None)[0]
