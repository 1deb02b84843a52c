"""IterativePFN's test-time pass: FPS seeds, kNN patches centred on their seeds, the network, 1:1 stitching.

From models/denoise.py ``DenoiseNet.patch_based_denoise`` (ddsediri/IterativePFN @ 8737f91):

* ``num_patches = int(seed_k · N / patch_size)`` FPS seeds (``farthest_point_sampling`` → ``torch_cluster.fps``,
  ``random_start=False``: start at index 0), each patch the ``patch_size`` nearest points of its seed
  (``pytorch3d.ops.knn_points``) minus the seed;
* stitching: ``patch_dists / patch_dists[:, -1]`` (squared seed distance over the patch's largest squared seed
  distance), ``weights = exp(−·)`` (∞ outside the patch), ``torch.max(weights, dim=0)``: each point takes its
  output from the patch where that ratio is smallest; ties go to the lowest patch index, as ``torch.max``.

This rule differs from :func:`sbdbench.methods.learned.patches.merge_stitch`, which compares plain seed
distances, not distances relative to each patch's radius; it is implemented here exactly. One deliberate
difference: a point in no patch (rare: an isolated outlier) is dropped by the original (the list
comprehension finds it in no patch); here it is kept unchanged so that the output has exactly N points.
Batching (``seed_k_alpha`` in the original) does not change the output; here the batch follows a memory budget.
"""

from __future__ import annotations

from typing import Callable, Tuple

import torch

from sbdbench.methods.learned.knn import knn_points
from sbdbench.methods.learned.patches import map_patches, patch_seeds

PatchNet = Callable[[torch.Tensor], torch.Tensor]


def seed_patches(points: torch.Tensor, patch_size: int, seed_k: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeds and patches of an (N, 3) cloud.

    Returns:
        (seed indices (S,), patch indices (S, P) nearest first, squared seed distances (S, P) ascending).
    """
    seeds = patch_seeds(points, patch_size, seed_k)  # int(seed_k·N/P) FPS samples from index 0 (at least 1)
    dists, idx = knn_points(points[seeds].unsqueeze(0), points.unsqueeze(0), min(int(patch_size), points.shape[0]))
    return seeds, idx[0], dists[0]


def stitch_choice(patch_idx: torch.Tensor, patch_dists: torch.Tensor, n_points: int) -> torch.Tensor:
    """For each of the N points, the flat (S·P) entry it takes its output from, or S·P when no patch holds it.

    Args:
        patch_idx: (S, P) point indices; patch_dists: (S, P) squared seed distances, ascending per row.
    """
    s, p = patch_idx.shape
    radius = patch_dists[:, -1:].clamp_min(torch.finfo(patch_dists.dtype).tiny)  # a patch of identical points: 0/tiny = 0
    weight = torch.exp(-(patch_dists / radius)).reshape(-1)  # (S·P,), as the original's exp(−d/d_max)
    flat_idx = patch_idx.reshape(-1)
    best = torch.full((n_points,), -1.0, dtype=weight.dtype, device=weight.device)
    best.scatter_reduce_(0, flat_idx, weight, reduce="amax")
    is_best = weight == best[flat_idx]
    entry = torch.full((n_points,), s * p, dtype=torch.long, device=weight.device)
    # entries are patch-major, so the smallest entry index among the maxima is the lowest patch index (torch.max)
    entry.scatter_reduce_(0, flat_idx[is_best], torch.nonzero(is_best).squeeze(1), reduce="amin")
    return entry


def denoise_pass(points: torch.Tensor, net: PatchNet, *, patch_size: int = 1000, seed_k: float = 6, batch_size: int = 1) -> torch.Tensor:
    """One IterativePFN pass of an (N, 3) cloud in the unit sphere → (N, 3), row i the output of point i.

    ``net`` maps (b, P, 3) seed-centred patches to (b, P, 3); ``batch_size`` patches go through it at a time.
    """
    seeds, idx, dists = seed_patches(points, patch_size, seed_k)
    centres = points[seeds].unsqueeze(1)  # (S, 1, 3)
    out = map_patches(points[idx] - centres, net, batch_size) + centres  # (S, P, 3)
    entry = stitch_choice(idx, dists, points.shape[0])
    merged = points.clone()
    covered = entry < idx.numel()
    merged[covered] = out.reshape(-1, 3)[entry[covered]]
    return merged
