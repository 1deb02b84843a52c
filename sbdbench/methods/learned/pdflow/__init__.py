"""``pdflow``: PD-Flow (Mao, Du, Wen, Xuan & Liu, ECCV 2022) with its released weights, torch only.

A normalizing flow maps each noisy patch, augmented with 32 noise-driven channels, to a latent code; the
learned LCC map M (35×35) removes the noise part of the code and the inverse flow returns the clean patch.

The inference protocol is the authors' ``models/deflow/denoise.py`` (github.com/unknownue/pdflow, commit
3cd1bb2a) with the README's "Evaluation & Reproduce Paper Results" commands:

* patches: ``--patch_size=1024`` (README, every command) and ``seed_k`` 3 (``denoise.py`` argparse default):
  ``int(seed_k·N/1024)`` FPS seeds (``patch_denoise``: ``farthest_point_sampling``, start index 0), each
  with its 1024 nearest points (``knn_points(seed_pnts, pcl_noisy, K=patch_size)``); all patches go
  through the network in one call there, so ε is drawn once per pass as (S, 32, 1024) (here from a
  ``torch.Generator`` seeded by ``seed``; the original uses the unseeded global generator);
* merge: FPS of all patch points to N + 10, then the 10 points farthest from the pass's input are dropped
  (``patch_denoise``: ``download_sample_N = N + 10``; ``remove_outliers(..., num_outliers=10)``);
* passes (``--niters``, README): 1, 1, 2 at 10K for σ = 1/2/3 %, and 1, 2, 2 at 50K; at 50K with 2 % and 3 %
  ``--first_iter_partition``: the first pass runs on ``N // 10000`` FPS-interleaved subsets, each
  normalised to the unit sphere on its own (``denoise_partition_loop``), every later pass on the whole
  cloud, normalised again (``denoise_pcl``: ``denoise_loop(..., iters=None)`` per pass). With
  ``niters=None`` this choice is made from ``noise_level`` (σ ≤ 1.5 % → the 1 % row, ≤ 2.5 % → 2 %, else 3 %;
  :func:`sbdbench.methods.learned.score.estimate_noise_level` when no σ is given) and N (N ≥ 30,000 → the 50K
  row, else the 10K row).

Deviations, none of which changes a benchmark cloud (10K and 50K points): a cloud under 1024 points uses
patches of all its points (the original needs ≥ 1024); the original's FPS re-ordering of the partitioned
result (a permutation) is skipped; clouds over 50,000 points, which the original splits by scikit-learn
KMeans (``large_patch_denoise_v2``, one pass), run the ≤ 50K protocol here.

In spatial blocks (:func:`sbdbench.methods.blocks.denoise_in_blocks`, ``--max-memory``) the output is an FPS
of patch points, not input i moved, so the blocks' outputs are pooled and FPS'd back to N (``block_merge =
"pool"``). The pass count is the whole cloud's: :func:`schedule` of the whole N and σ (given, or estimated once
on the whole cloud), so no block chooses its own row. No block runs the partitioned first pass: every pass of
every block runs on all its points, in the whole cloud's frame (no renormalisation per block). The reason: the
partition deals the cloud into N // 10000 subsets of a 10K cloud's density, so a first-pass patch spans about
1024 · N / 10000 points of the cloud (a tenth of the surface at any N), and a block that reproduced it would
need an overlap of that size, i.e. most of the cloud, whatever the memory cap. The original's own route for
large clouds (``large_patch_denoise_v2``) does not partition either: one full-density pass per spatial part.
So where the whole cloud would partition (N ≥ 30,000 at σ > 1.5 %, or ``first_iter_partition=True``), the
blocks' first pass differs from the whole-cloud run; elsewhere they run the same protocol.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
import torch

from sbdbench.errors import InputError
from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.learned.checkpoint import (WeightsDigestMixin, load_checkpoint, load_into,
                                                 register_official, resolve_weights)
from sbdbench.methods.learned.devices import torch_device
from sbdbench.methods.learned.knn import knn_points
from sbdbench.methods.learned.patches import (PATCH_BYTES_PER_POINT, batch_slices, extract_patches, interleaved_subsets, merge_fps,
                                              patch_block_settings, patch_seeds, patches_per_batch)
from sbdbench.methods.learned.pdflow.network import AUG_CHANNEL, PDFlowNet
from sbdbench.methods.learned.score import estimate_noise_level
from sbdbench.methods.meter import metered_span, metered_steps
from sbdbench.methods.param_checks import check_float, check_int

register_official("pdflow", "pdflow-official", "pdflow-score-LCC.pt")

#: working memory of one patch point in a kNN coupling (32 neighbours × 128 hidden floats × ~4 buffers)
_BYTES_PER_PATCH_POINT = 32 * 128 * 4 * 4
#: README: 10K → 1, 1, 2 passes for σ = 1/2/3 %; 50K → 1, 2, 2 with --first_iter_partition at 2 and 3 %
_SCHEDULE = {("10K", 0): (1, False), ("10K", 1): (1, False), ("10K", 2): (2, False),
             ("50K", 0): (1, False), ("50K", 1): (2, True), ("50K", 2): (2, True)}
#: the original's minimum: its largest kNN graph has 32 neighbours inside a patch
_MIN_POINTS = 33
#: denoise.py: ``nsplit = N // 10000`` subsets, only when N > 10000
_PARTITION_SIZE = 10000


def schedule(n_points: int, sigma: float) -> Tuple[int, bool]:
    """(passes, first_iter_partition) of the README row nearest to (N, σ)."""
    row = "50K" if n_points >= 30000 else "10K"
    level = 0 if sigma <= 0.015 else (1 if sigma <= 0.025 else 2)
    return _SCHEDULE[(row, level)]


def unit_sphere(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``NormalizeUnitSphere.normalize`` (dataset/scoredenoise/transforms.py): bbox centre, max radius → (x', c, s)."""
    center = (x.max(dim=0, keepdim=True)[0] + x.min(dim=0, keepdim=True)[0]) / 2
    scale = (x - center).norm(dim=1).max().clamp_min(1e-12)
    return (x - center) / scale, center, scale


def remove_outliers(merged: torch.Tensor, reference: torch.Tensor, num_outliers: int = 10) -> torch.Tensor:
    """``score_utils.remove_outliers``: drop the ``num_outliers`` rows of (M, 3) farthest from (N, 3), keep the order."""
    dist, _ = knn_points(merged.unsqueeze(0), reference.unsqueeze(0), 1)
    drop = torch.argsort(dist[0, :, 0], descending=True, stable=True)[:num_outliers]
    keep = torch.ones(merged.shape[0], dtype=torch.bool, device=merged.device)
    keep[drop] = False
    return merged[keep]


def patch_denoise(net: PDFlowNet, x: torch.Tensor, generator: torch.Generator, *, patch_size: int = 1024,
                  seed_k: float = 3, batch_size: int = 4,
                  progress: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """One PD-Flow pass (``denoise.py`` ``patch_denoise``) of an (N, 3) cloud in the unit sphere → (N, 3).

    ε for all S patches is drawn at once, (S, 32, P) on the CPU, then moved: the same numbers on any device.
    """
    n = x.shape[0]
    p = min(int(patch_size), n)
    idx = extract_patches(x, patch_seeds(x, p, seed_k), p)  # (S, P)
    patches = x[idx]
    eps = torch.randn((patches.shape[0], AUG_CHANNEL, p), generator=generator, dtype=torch.float32).to(x.device)
    out = torch.empty_like(patches)
    for batch in batch_slices(patches.shape[0], batch_size, progress):
        out[batch] = net(patches[batch], eps[batch])
    return remove_outliers(merge_fps(out, n + 10), x, 10)


def renormalised_pass(net: PDFlowNet, x: torch.Tensor, generator: torch.Generator, **kw) -> torch.Tensor:
    """``denoise_loop(..., iters=None)``: normalise to the unit sphere, one pass, map back."""
    unit, center, scale = unit_sphere(x)
    return patch_denoise(net, unit, generator, **kw) * scale + center


def pdflow_denoise(net: PDFlowNet, x: torch.Tensor, *, niters: int, first_iter_partition: bool, seed: int = 0, **kw) -> torch.Tensor:
    """``denoise_pcl`` for N ≤ 50,000 on an (N, 3) cloud in the unit sphere → (N, 3)."""
    generator = torch.Generator().manual_seed(int(seed))
    if not first_iter_partition:
        for _ in metered_steps(range(niters)):
            x = patch_denoise(net, x, generator, **kw)
        return x
    m = x.shape[0] // _PARTITION_SIZE
    subsets = interleaved_subsets(x, x.shape[0] // m)  # FPS order of all points dealt round-robin: order[i::m]
    assert len(subsets) == m
    with metered_span(0.0, 1.0 / niters):  # the first pass, on the partition
        x = torch.cat([renormalised_pass(net, x[s], generator, **kw) for s in metered_steps(subsets)])
    with metered_span(1.0 / niters, 1.0):  # the others, on the whole cloud
        for _ in metered_steps(range(niters - 1)):
            x = renormalised_pass(net, x, generator, **kw)
    return x


@register
class PDFlow(WeightsDigestMixin, Denoiser):
    """PD-Flow with its released weights (``weights="official"``) or any compatible checkpoint (a path)."""

    name = "pdflow"
    paper = "Mao, Du, Wen, Xuan & Liu, PD-Flow: A Point Cloud Denoising Framework with Normalizing Flows, ECCV 2022"
    paper_url = "https://arxiv.org/abs/2203.05940"
    code_url = "https://github.com/unknownue/pdflow"
    preserves_count = True
    uses_torch = True
    summary = "normalizing flow on augmented patches; noise removed in latent space (released weights)"
    tuning_grid = {"niters": [1, 2]}

    def __init__(self, weights: str = "official", device: str = "cpu", niters: Optional[int] = None,
                 first_iter_partition: Optional[bool] = None, patch_size: int = 1024, seed_k: float = 3,
                 seed: int = 0, memory_mb: float = 256):
        self.weights = weights
        self.device = device
        self.niters = niters
        self.first_iter_partition = first_iter_partition
        self.patch_size = patch_size
        self.seed_k = seed_k
        self.seed = seed
        self.memory_mb = memory_mb

    def _check_params(self) -> None:
        if self.niters is not None:
            check_int("niters", self.niters, 1, method="pdflow")
        check_int("patch_size", self.patch_size, 1, method="pdflow")
        if self.patch_size < _MIN_POINTS:
            raise InputError(f"pdflow: patch_size must be ≥ {_MIN_POINTS} (its kNN graphs use 32 neighbours), got {self.patch_size}")
        if self.first_iter_partition not in (None, True, False):
            raise InputError(f"pdflow: first_iter_partition must be true, false or unset, got {self.first_iter_partition!r}")
        for name in ("seed_k", "memory_mb"):
            check_float(name, getattr(self, name), method="pdflow")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise InputError(f"pdflow: seed must be an integer, got {self.seed!r}")

    #: the output is an FPS of all patch points (N + 10, 10 outliers dropped), not input i moved: pooled blocks
    block_merge = "pool"

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """The whole cloud's pass count (:func:`schedule` of its N and σ, σ estimated once when not given), no
        partitioned first pass in any block (module docstring); overlap two patch radii per pass; bytes per
        point: the FPS-merging patch methods' plus ε, ``seed_k`` × 32 float32 per point."""
        sigma = noise_level
        if sigma is None and (self.niters is None or self.first_iter_partition is None):
            sigma = estimate_noise_level(unit_points)
        niters, _ = self._schedule(unit_points, sigma)
        fixed = type(self)(**{**self.get_params(), "niters": niters, "first_iter_partition": False})
        per_point = PATCH_BYTES_PER_POINT + float(self.seed_k) * AUG_CHANNEL * 4
        return patch_block_settings(self, unit_points, sigma, niters, fixed, bytes_per_point=per_point)

    def load(self) -> PDFlowNet:
        """The eval network on ``device`` (loaded once per weights/device)."""
        key = (str(self.weights), str(self.device))
        cached = getattr(self, "_loaded", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        path = resolve_weights(self.weights, method="pdflow")
        state, _ = load_checkpoint(path)
        net = load_into(PDFlowNet(), state, source=path).eval()
        net = net.to(torch_device(self.device, "pdflow"))
        self._loaded = (key, net)
        return net

    def _schedule(self, points: np.ndarray, noise_level: Optional[float]) -> Tuple[int, bool]:
        n = len(points)
        if self.niters is None or self.first_iter_partition is None:
            sigma = noise_level if noise_level is not None else estimate_noise_level(points)
            auto_niters, auto_partition = schedule(n, sigma)
        niters = int(self.niters) if self.niters is not None else auto_niters
        partition = bool(self.first_iter_partition) if self.first_iter_partition is not None else auto_partition
        if partition and n <= _PARTITION_SIZE:
            raise InputError(f"pdflow: first_iter_partition needs more than {_PARTITION_SIZE} points "
                             f"(the first pass runs on N // {_PARTITION_SIZE} subsets), got {n}")
        return niters, partition

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        if len(points) < _MIN_POINTS:
            raise InputError(f"pdflow needs at least {_MIN_POINTS} points (its kNN graphs use 32 neighbours), got {len(points)}")
        niters, partition = self._schedule(points, noise_level)
        net = self.load()
        device = next(net.parameters()).device
        x = torch.as_tensor(points, dtype=torch.float32, device=device)
        batch = patches_per_batch(min(int(self.patch_size), len(points)), _BYTES_PER_PATCH_POINT, self.memory_mb)
        with torch.no_grad():
            out = pdflow_denoise(net, x, niters=niters, first_iter_partition=partition, seed=self.seed,
                                 patch_size=int(self.patch_size), seed_k=float(self.seed_k), batch_size=batch)
        return out.double().cpu().numpy()
