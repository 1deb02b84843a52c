"""Exact k-nearest neighbours between small batched point sets (any device).

On CPU, 3-d points use scipy's KD-tree (exact, O(N log M)). Everywhere else:

PyTorch3D's ``knn_points`` is replaced by a two-stage search that returns the same neighbours:
candidates are ranked by the fast ``|x|² + |y|² − 2·x·y`` form (one batched matrix product), then a few
extra candidates are re-ranked with the exact ``Σ (x − y)²`` so that float round-off of the fast form
never swaps two near-tied neighbours. Queries are processed in chunks so memory stays bounded: the
distance block is (B, chunk, M), never (N, N) for a whole cloud.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from scipy.spatial import cKDTree

#: extra candidates re-ranked exactly (guards against round-off in the fast distance form).
_EXACT_MARGIN = 8


def knn_points(
    query: torch.Tensor,
    reference: torch.Tensor,
    k: int,
    *,
    chunk_size: int = 4096,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """k nearest neighbours of every query point, sorted by increasing distance.

    Args:
        query: (B, N, D) tensor.
        reference: (B, M, D) tensor on the same device, M ≥ k.
        k: number of neighbours.
        chunk_size: queries per distance block (bounds memory to B·chunk·M floats).

    Returns:
        (squared distances (B, N, k), indices into ``reference`` (B, N, k) long), like
        ``pytorch3d.ops.knn_points(query, reference, K=k)``.
    """
    if query.dim() != 3 or reference.dim() != 3 or query.shape[0] != reference.shape[0] or query.shape[2] != reference.shape[2]:
        raise ValueError(f"knn_points expects (B, N, D) and (B, M, D), got {tuple(query.shape)} and {tuple(reference.shape)}")
    m = reference.shape[1]
    if not 0 < k <= m:
        raise ValueError(f"k must be in [1, {m}], got {k}")
    if query.device.type == "cpu" and query.shape[2] <= 3 and not (query.requires_grad or reference.requires_grad):
        return _knn_kdtree(query, reference, k)
    n_cand = min(m, k + _EXACT_MARGIN)
    ref_sq = (reference * reference).sum(-1)  # (B, M)
    dists, idxs = [], []
    for start in range(0, query.shape[1], chunk_size):
        q = query[:, start:start + chunk_size]
        fast = torch.baddbmm(ref_sq.unsqueeze(1), q, reference.transpose(1, 2), alpha=-2.0)  # (B, n, M) = |y|² − 2x·y
        cand = fast.topk(n_cand, dim=-1, largest=False, sorted=False).indices  # (B, n, C)
        d, i = _exact_rerank(q, reference, cand, k)
        dists.append(d)
        idxs.append(i)
    return torch.cat(dists, dim=1), torch.cat(idxs, dim=1)


def _knn_kdtree(query: torch.Tensor, reference: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Low-dimensional CPU case: one scipy KD-tree per batch item (O(N log M) instead of a dense block)."""
    q_np, r_np = query.detach().numpy(), reference.detach().numpy()
    idx = np.empty((query.shape[0], query.shape[1], k), dtype=np.int64)
    for i in range(query.shape[0]):
        _, nn = cKDTree(r_np[i]).query(q_np[i], k=k)
        idx[i] = nn.reshape(query.shape[1], k)
    idx_t = torch.from_numpy(idx)
    dist = ((knn_gather(reference, idx_t) - query.unsqueeze(2)) ** 2).sum(-1)
    return dist, idx_t


def _exact_rerank(q: torch.Tensor, reference: torch.Tensor, cand: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact squared distances to the candidates (B, n, C); keep the k smallest, sorted (ties → lower index)."""
    b, n, c = cand.shape
    d_dim = reference.shape[2]
    # sort candidates by index first so that a stable sort on distance breaks ties by index, as PyTorch3D does
    cand, _ = cand.sort(dim=-1)
    pts = torch.gather(reference, 1, cand.reshape(b, n * c, 1).expand(-1, -1, d_dim)).reshape(b, n, c, d_dim)
    exact = ((pts - q.unsqueeze(2)) ** 2).sum(-1)  # (B, n, C)
    order = exact.argsort(dim=-1, stable=True)[..., :k]
    return torch.gather(exact, 2, order), torch.gather(cand, 2, order)


def knn_gather(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather neighbour rows: values (B, M, F), idx (B, N, K) → (B, N, K, F)."""
    b, n, k = idx.shape
    f = values.shape[-1]
    return torch.gather(values, 1, idx.reshape(b, n * k, 1).expand(-1, -1, f)).reshape(b, n, k, f)
