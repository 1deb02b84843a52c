"""Patch machinery of patch-based denoisers: seeds, patches, batching, and merging back to N points.

Reusable with any per-patch routine (ScoreDenoise's gradient ascent, SBD's reverse diffusion):

    seeds   = patch_seeds(points, patch_size=1000, seed_k=3)         # FPS, 3N/1000 seeds, start at index 0
    idx     = extract_patches(points, seeds, patch_size=1000)        # (S, P) indices of each seed's 1000-NN
    out     = map_patches(points[idx], routine, batch_size=B)        # (S, P, 3) denoised patches
    merged  = merge_fps(out, len(points))                            # FPS back to exactly N (ScoreDenoise)
    merged  = merge_stitch(out, idx, points, seeds)                  # or 1:1 stitching (IterativePFN)

:func:`patch_based_denoise` chains them. All functions take (N, 3) tensors on any device, and keep
memory bounded: no (N, N) matrix, patches processed in batches.
"""

from __future__ import annotations

from typing import Callable, Iterator, List, Optional

import torch

from sbdbench.errors import InputError
from sbdbench.geometry import farthest_point_sampling
from sbdbench.methods.learned.knn import knn_points
from sbdbench.methods.meter import batch_done

#: what a per-patch routine looks like: (b, P, 3) noisy patches → (b, P, 3) denoised patches.
PatchRoutine = Callable[[torch.Tensor], torch.Tensor]


def num_seeds(n_points: int, patch_size: int = 1000, seed_k: float = 3) -> int:
    """ScoreDenoise's seed count ``int(seed_k · N / patch_size)``, at least 1 (30 for 10K, 150 for 50K)."""
    return max(1, int(seed_k * n_points / patch_size))


def patch_seeds(points: torch.Tensor, patch_size: int = 1000, seed_k: float = 3) -> torch.Tensor:
    """Indices (S,) of the patch centres: farthest-point samples of the (N, 3) cloud, starting at index 0."""
    return farthest_point_sampling(points, num_seeds(points.shape[0], patch_size, seed_k), start=0)


def extract_patches(points: torch.Tensor, seed_idx: torch.Tensor, patch_size: int = 1000, chunk_size: int = 64) -> torch.Tensor:
    """Indices (S, P) of the P = min(patch_size, N) nearest points of each seed, nearest first (seed included)."""
    p = min(int(patch_size), points.shape[0])
    _, idx = knn_points(points[seed_idx].unsqueeze(0), points.unsqueeze(0), p, chunk_size=chunk_size)
    return idx[0]


def interleaved_subsets(points: torch.Tensor, subset_size: int) -> List[torch.Tensor]:
    """Split an (N, 3) cloud into m = round(N / subset_size) (≥ 1) disjoint subsets of ≈ N/m points that each
    cover the whole surface: the FPS order of all N points, dealt round-robin (subset i = order[i::m]).

    Each subset has the point density of an ``subset_size``-point cloud of the same shape, which is how PD-Flow
    runs its first 50K pass on 10K-point subsets. Returns a list of m index tensors (on the input's device)
    that partition ``range(N)``; m = 1 returns all indices in their order.
    """
    n = points.shape[0]
    if int(subset_size) < 1:
        raise InputError(f"subset_size must be ≥ 1, got {subset_size}")
    m = max(1, int(round(n / int(subset_size))))
    if m == 1:
        return [torch.arange(n, device=points.device)]
    # the full FPS order on the CPU (KD-tree pruned, O(N log N)); on a GPU the plain loop would take N steps
    order = farthest_point_sampling(points.detach().cpu(), n, start=0).to(points.device)
    return [order[i::m] for i in range(m)]


def patches_per_batch(patch_size: int, bytes_per_point: int, memory_budget_mb: float) -> int:
    """How many patches fit a memory budget, given the working bytes one patch point needs (≥ 1)."""
    return max(1, int(memory_budget_mb * 2**20 // max(1, patch_size * bytes_per_point)))


def map_patches(patches: torch.Tensor, routine: PatchRoutine, batch_size: int,
                progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """Apply ``routine`` to (S, P, 3) patches, ``batch_size`` patches at a time → (S, P, 3).

    ``progress(done, total)`` is called after each batch when given; an open meter hears of it too
    (:func:`sbdbench.methods.meter.batch_done`).
    """
    out = torch.empty_like(patches)
    for batch in batch_slices(patches.shape[0], batch_size, progress):
        out[batch] = routine(patches[batch])
    return out


def batch_slices(total: int, batch_size: int, progress: Optional[Callable[[int, int], None]] = None) -> Iterator[slice]:
    """Slices of ``range(total)``, ``batch_size`` at a time; once the caller is done with a batch, it is reported
    as ``progress(done, total)`` when given and to an open meter (:func:`sbdbench.methods.meter.batch_done`)."""
    step = max(1, int(batch_size))
    for start in range(0, total, step):
        stop = min(start + step, total)
        yield slice(start, stop)
        batch_done(stop, total)
        if progress is not None:
            progress(stop, total)


def merge_fps(denoised_patches: torch.Tensor, n_points: int) -> torch.Tensor:
    """ScoreDenoise's merge: pool all patch points (≈ 3N) and keep exactly ``n_points`` by FPS (start 0)."""
    pool = denoised_patches.reshape(-1, denoised_patches.shape[-1])
    if pool.shape[0] < n_points:
        raise InputError(f"cannot merge {pool.shape[0]} patch points into {n_points} points")
    return pool[farthest_point_sampling(pool, n_points, start=0)]


def merge_stitch(denoised_patches: torch.Tensor, patch_idx: torch.Tensor, points: torch.Tensor, seed_idx: torch.Tensor) -> torch.Tensor:
    """IterativePFN's 1:1 stitching: each input point takes its denoised copy from the patch, among those
    containing it, whose centre is nearest to it. A point that no patch contains (rare) is kept as it is.

    Args:
        denoised_patches: (S, P, 3); patch_idx: (S, P) input indices; points: (N, 3); seed_idx: (S,).

    Returns:
        (N, 3), row i the denoised point i.
    """
    s, p = patch_idx.shape
    flat_idx = patch_idx.reshape(-1)
    centre_dist = ((points[flat_idx] - points[seed_idx].repeat_interleave(p, dim=0)) ** 2).sum(-1)  # (S·P,)
    best = torch.full((points.shape[0],), float("inf"), dtype=centre_dist.dtype, device=points.device)
    best.scatter_reduce_(0, flat_idx, centre_dist, reduce="amin")
    # the patch entry that achieved each point's minimum (ties → the first patch)
    is_best = centre_dist == best[flat_idx]
    entry = torch.full((points.shape[0],), s * p, dtype=torch.long, device=points.device)
    entry.scatter_reduce_(0, flat_idx[is_best], torch.nonzero(is_best).squeeze(1), reduce="amin")
    out = points.clone()
    covered = entry < s * p
    out[covered] = denoised_patches.reshape(-1, denoised_patches.shape[-1])[entry[covered]]
    return out


#: working bytes per input point of a whole-cloud patch pass (3 seeds per point: indices, patches, outputs, the
#: FPS pool and its KD-tree; docs/scaling.md), besides the method's ``memory_mb`` patch batches
PATCH_BYTES_PER_POINT = 400.0


def patch_block_settings(method, unit_points, noise_level: Optional[float], passes: int, fixed,
                         bytes_per_point: float = PATCH_BYTES_PER_POINT):
    """:class:`~sbdbench.methods.base.BlockSettings` of a patch method: a point's output depends on the patches
    that contain it, whose points lie within two patch radii (the 99.9 % quantile of the distance to the
    ``patch_size``-th neighbour, × 1.25), once per pass. ``bytes_per_point``: the method's working bytes per
    input point (:data:`PATCH_BYTES_PER_POINT` for 3 seeds per point and an FPS merge)."""
    import numpy as np
    from scipy.spatial import cKDTree

    from sbdbench.methods.base import BlockSettings

    patch = min(int(method.patch_size), len(unit_points))
    centres = unit_points[:: max(1, len(unit_points) // 2000)]
    dist, _ = cKDTree(unit_points).query(centres, k=patch, workers=-1)
    radius = float(np.quantile(np.asarray(dist).reshape(len(centres), -1)[:, -1], 0.999)) * 1.25
    return BlockSettings(fixed, 2.0 * int(passes) * radius, float(bytes_per_point), noise_level)


def patch_based_denoise(
    points: torch.Tensor,
    routine: PatchRoutine,
    *,
    patch_size: int = 1000,
    seed_k: float = 3,
    batch_size: int = 8,
    merge: str = "fps",
    progress: Optional[Callable[[int, int], None]] = None,
) -> torch.Tensor:
    """One pass of patch-based denoising of an (N, 3) cloud (in the unit sphere) → (N, 3).

    Args:
        routine: the per-patch denoiser, (b, P, 3) → (b, P, 3).
        patch_size, seed_k: 1000 and 3 as ScoreDenoise (3N/1000 FPS seeds, 1000-NN patches).
        batch_size: patches per call of ``routine`` (bounds memory).
        merge: ``"fps"`` (ScoreDenoise: FPS of all patch points back to N) or ``"stitch"`` (IterativePFN, 1:1).
        progress: optional callback(done_patches, total_patches).
    """
    if merge not in ("fps", "stitch"):
        raise InputError(f"merge must be 'fps' or 'stitch', got {merge!r}")
    seeds = patch_seeds(points, patch_size, seed_k)
    idx = extract_patches(points, seeds, patch_size)
    out = map_patches(points[idx], routine, batch_size, progress)
    if merge == "fps":
        return merge_fps(out, points.shape[0])
    return merge_stitch(out, idx, points, seeds)
