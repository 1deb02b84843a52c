"""Torch backend: chunked brute force that runs unchanged on CPU or CUDA.

Both directions come out of **one pass** over the (P, T) pair matrix: the row minimum of a chunk is
the point→X term, the running column minimum is the X→point term. Only one chunk of rows is alive
at a time, so memory is ``O(chunk · T)`` — bounded by ``max_chunk_elems`` — never ``P × T``.

Arithmetic follows PyTorch3D where it matters: Chamfer uses ``Σ (x − y)²`` (as ``knn_points``
does, not the ``|x|² − 2x·y + |y|²`` expansion), and the PyTorch3D P2M mode uses the port in
:mod:`sbdbench.metrics.triangle`. Tensors are never moved between devices behind the caller's back:
inputs are created on ``device`` by :mod:`sbdbench.metrics.p2m` and :mod:`sbdbench.metrics.chamfer`.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from sbdbench.metrics.triangle import degenerate_triangles, edges_sqdist, ericson_vw, pytorch3d_sqdist


def default_chunk_elems(device: torch.device) -> int:
    """Pair-matrix elements per chunk: ~2¹⁸ keeps a CPU's cache warm; ~2²⁴ (≈ 2 GB of fp32
    temporaries for the PyTorch3D port) suits a GPU."""
    return (1 << 24) if torch.device(device).type == "cuda" else (1 << 18)


def _rows_per_chunk(n_cols: int, max_chunk_elems: Optional[int], device) -> int:
    budget = max_chunk_elems or default_chunk_elems(device)
    return max(1, budget // max(1, n_cols))


def nearest_sqdists_torch(x: torch.Tensor, y: torch.Tensor, max_chunk_elems: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Squared distance of each x to its nearest y, and of each y to its nearest x.

    Args:
        x: (N, 3), y: (M, 3) on the same device and dtype.
    Returns:
        (N,) and (M,) tensors.
    """
    n = x.shape[0]
    x_to_y = torch.empty(n, dtype=x.dtype, device=x.device)
    y_to_x = torch.full((y.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
    step = _rows_per_chunk(y.shape[0], max_chunk_elems, x.device)
    for i in range(0, n, step):
        xc = x[i : i + step]
        d = (xc[:, None, 0] - y[None, :, 0]) ** 2
        d += (xc[:, None, 1] - y[None, :, 1]) ** 2
        d += (xc[:, None, 2] - y[None, :, 2]) ** 2
        x_to_y[i : i + step] = d.min(dim=1).values
        torch.minimum(y_to_x, d.min(dim=0).values, out=y_to_x)
    return x_to_y, y_to_x


def _exact_chunk(pc, a, ab, ac, consts, degenerate):
    """(c, T) exact squared distances of the chunk ``pc`` to all triangles (Ericson, 2 matmuls).

    ``degenerate`` (D,) indices of zero-area triangles, measured as their edges instead."""
    ab_a, ac_a, ab_b, ac_b, ab_c, ac_c = consts
    pab, pac = pc @ ab.T, pc @ ac.T  # p·ab, p·ac give all six dot products after shifting
    v, w = ericson_vw(pab - ab_a, pac - ac_a, pab - ab_b, pac - ac_b, pab - ab_c, pac - ac_c, torch)
    d = None
    for k in range(3):
        r = (pc[:, None, k] - a[None, :, k]) - v * ab[None, :, k] - w * ac[None, :, k]
        d = r * r if d is None else d + r * r
    if len(degenerate):
        da, db, dc = a[degenerate], (a + ab)[degenerate], (a + ac)[degenerate]
        d[:, degenerate] = edges_sqdist(pc[:, None, :], da[None], db[None], dc[None])
    return d


def point_mesh_terms_torch(
    points: torch.Tensor,
    verts: torch.Tensor,
    faces: torch.Tensor,
    mode: str = "exact",
    min_triangle_area: float = 5e-3,
    max_chunk_elems: Optional[int] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-point P2F (P,) and per-face F2P (F,) squared distances in one brute-force pass.

    Args:
        points: (P, 3); verts: (V, 3); faces: (F, 3) long — all on one device.
        mode: ``"exact"`` (Euclidean) or ``"pytorch3d"`` (PyTorch3D ≥ 0.6.2 semantics).
    """
    tris = verts[faces]
    a, b, c = tris[:, 0], tris[:, 1], tris[:, 2]
    n_faces = faces.shape[0]
    p2f = torch.empty(points.shape[0], dtype=points.dtype, device=points.device)
    f2p = torch.full((n_faces,), float("inf"), dtype=points.dtype, device=points.device)
    if mode == "exact":
        ab, ac = b - a, c - a
        consts = [(u * q).sum(-1)[None, :] for q in (a, b, c) for u in (ab, ac)]
        degenerate = torch.nonzero(degenerate_triangles(a, b, c)).flatten()
        # order expected by _exact_chunk: ab·a, ac·a, ab·b, ac·b, ab·c, ac·c
        per_elem = 1  # the matmul form keeps ~20 (c, T) temporaries
    else:
        per_elem = 2  # the port keeps ~40
    step = max(1, _rows_per_chunk(n_faces, max_chunk_elems, points.device) // per_elem)
    for i in range(0, points.shape[0], step):
        pc = points[i : i + step]
        if mode == "exact":
            d = _exact_chunk(pc, a, ab, ac, consts, degenerate)
        else:
            d = pytorch3d_sqdist(pc[:, None, :], a[None], b[None], c[None], min_triangle_area)
        p2f[i : i + step] = d.min(dim=1).values
        torch.minimum(f2p, d.min(dim=0).values, out=f2p)
    return p2f, f2p
