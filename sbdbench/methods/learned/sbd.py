"""SBD: score-based diffusion denoising conditioned on the edge features of the noisy input.

The model of ``shared/design/sbd-model.md`` on ScoreDenoise's networks (:class:`ScoreDenoiseModel`):

1. ``F_T = FeatureNet(x^T)``: per-point features of each noisy patch, computed **once** per patch (and
   projected once through the score net's condition layers, :class:`FoldedScoreNet`).
2. Start step ``t*`` matched to the input's noise level σ (given, or estimated from the input):
   ``x_a^{t*} = y`` (data scale; ``x^{t*} = √ᾱ_{t*} y``).
3. For t = t*, …, 1: the score is evaluated at the data-scale points ``x_a^t = x^t/√ᾱ_t`` and the
   deterministic reverse step of the note is applied — in the data scale
   ``x_a^{t−1} = x_a^t + β_t/(1−ᾱ_t) · d̂`` (:func:`~sbdbench.methods.learned.diffusion.reverse_step_data`,
   equal to the note's scaled-space step with ŝ = d̂/√(1−ᾱ_t); see ``diffusion.py``).
4. Patches and merge as ScoreDenoise: FPS seeds (3N/1000), 1000-NN patches, merge of all patch points
   back to exactly N by FPS.

Score evaluation at one step (ScoreDenoise's ensemble layout, the same as training): every *anchor*
(an input point y_i with its feature F_T[i]) takes its ``frame_knn`` nearest current points x_a^t[j] and
the network predicts their displacements from the offsets ``x_a^t[j] − y_i``. A point's displacement
d̂_j is the **mean** over the anchors that chose it (ScoreDenoise sums, because its step size absorbs the
count; the diffusion step needs the displacement itself). A point no anchor chose in a step keeps its
place for that step.

The network predicts a displacement in the data scale (no time input), so it can run with any schedule,
and even with ScoreDenoise's own weights (``weights=PATH`` to a ScoreDenoise checkpoint).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch

from sbdbench.errors import InputError
from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.learned.checkpoint import WeightsDigestMixin
from sbdbench.methods.learned.devices import torch_device
from sbdbench.methods.learned.diffusion import SCHEDULE_KINDS, Schedule, make_schedule, reverse_step_data
from sbdbench.methods.learned.knn import knn_gather, knn_points
from sbdbench.methods.learned.model import ScoreDenoiseModel
from sbdbench.methods.learned.patches import interleaved_subsets, patch_based_denoise, patch_block_settings, patches_per_batch
from sbdbench.methods.learned.score import estimate_noise_level
from sbdbench.methods.learned.score_net import FoldedScoreNet
from sbdbench.methods.meter import metered_span, metered_steps

#: default schedule (chosen by experiment, see docs/methods/sbd.md).
DEFAULT_T = 10
DEFAULT_KIND = "geometric"
DEFAULT_SIGMA_MIN = 0.003
DEFAULT_SIGMA_MAX = 0.035

#: working memory of one patch point per step (4 neighbours × 5·128 floats × a few buffers), as ``score``.
_BYTES_PER_PATCH_POINT = 4 * 4 * 128 * 12

_SCHEDULE_KEYS = {"T": int, "schedule": str, "sigma_min": float, "sigma_max": float}


def schedule_from_params(params: Dict[str, Any]) -> Schedule:
    """A :class:`Schedule` from ``{"T", "schedule", "sigma_min", "sigma_max"}`` (missing keys: the defaults)."""
    unknown = set(params) - set(_SCHEDULE_KEYS)
    if unknown:
        raise InputError(f"unknown schedule parameter(s) {', '.join(sorted(unknown))} (known: {', '.join(_SCHEDULE_KEYS)})")
    return make_schedule(
        T=int(params.get("T", DEFAULT_T)),
        kind=str(params.get("schedule", DEFAULT_KIND)),
        sigma_min=float(params.get("sigma_min", DEFAULT_SIGMA_MIN)),
        sigma_max=float(params.get("sigma_max", DEFAULT_SIGMA_MAX)),
    )


def scatter_mean(values: torch.Tensor, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of ``values`` (P, A, K, 3) onto rows ``idx`` (P, A, K) of a (P, n, 3) tensor; rows nobody chose get 0."""
    p = idx.shape[0]
    flat_idx = idx.reshape(p, -1, 1)
    total = torch.zeros(p, n, values.shape[-1], dtype=values.dtype, device=values.device)
    total.scatter_add_(1, flat_idx.expand(-1, -1, values.shape[-1]), values.reshape(p, -1, values.shape[-1]))
    count = torch.zeros(p, n, 1, dtype=values.dtype, device=values.device)
    count.scatter_add_(1, flat_idx, torch.ones_like(flat_idx, dtype=values.dtype))
    return total / count.clamp(min=1.0)


@torch.no_grad()
def denoise_patches(
    model: ScoreDenoiseModel,
    patches: torch.Tensor,
    schedule: Schedule,
    t_star: int,
    *,
    frame_knn: int = 4,
    folded: Optional[FoldedScoreNet] = None,
) -> torch.Tensor:
    """Run SBD's reverse chain on a batch of noisy patches.

    Args:
        model: eval-mode networks (feature_net, score_net).
        patches: (P, n, 3) noisy patches in the data scale (the unit-sphere frame), n > 16.
        schedule: the variance schedule; t_star: start step (0 returns the input).
        frame_knn: current points each anchor scores per step (ScoreDenoise: 4).
        folded: a prebuilt :class:`FoldedScoreNet` of ``model.score_net`` (built here otherwise).

    Returns:
        (P, n, 3) denoised patches x_a^0.
    """
    if t_star <= 0:
        return patches.clone()
    folded = folded or FoldedScoreNet.from_score_net(model.score_net).to(patches.device)
    p, n, _ = patches.shape
    k = min(int(frame_knn), n)
    feat = model.feature_net(patches)  # F_T, once per patch: (P, n, 60)
    cond = folded.condition(feat.reshape(p * n, -1))  # projected once: (P·n, C)
    x_a = patches.clone()
    for t in range(int(t_star), 0, -1):
        _, idx = knn_points(patches, x_a, k)  # (P, n, k): each anchor's nearest current points
        offsets = knn_gather(x_a, idx) - patches.unsqueeze(2)  # (P, n, k, 3)
        d_hat = folded(offsets.reshape(p * n, k, 3), cond).reshape(p, n, k, 3)
        x_a = reverse_step_data(x_a, scatter_mean(d_hat, idx, n), t, schedule)
    return x_a


def load_sbd_model(weights: str = "project", device: str | torch.device = "cpu") -> tuple[ScoreDenoiseModel, Dict[str, Any]]:
    """Networks for SBD from ``project`` (``sbdbench/weights/sbd_project.pt``), ``official`` (ScoreDenoise's
    released networks run with SBD's sampler: an ablation of the sampler alone) or a checkpoint path.
    Returns the eval-mode model on ``device`` and the checkpoint metadata."""
    from sbdbench.methods.learned.checkpoint import load_checkpoint, load_into, resolve_weights

    path = resolve_weights(weights, method="sbd")
    state, meta = load_checkpoint(path)
    model = load_into(ScoreDenoiseModel(), state, source=path)
    return model.to(device).eval(), meta


@register
class SBD(WeightsDigestMixin, Denoiser):
    """Score-based diffusion denoiser conditioned on the edge features of the noisy input (see module doc).

    Args:
        weights: ``project`` (shipped), ``official`` (ScoreDenoise's networks, SBD sampler) or a path.
        T, schedule, sigma_min, sigma_max: the variance schedule (:func:`make_schedule`); the input's
            σ picks the start step t*, so the number of network evaluations is t* per patch point.
        frame_knn: current points scored per anchor and step (4, as ScoreDenoise).
        patch_size, seed_k: patches as ScoreDenoise (1000-NN around 3N/1000 FPS seeds).
        merge: ``fps`` (ScoreDenoise) or ``stitch`` (1:1, IterativePFN).
        memory_mb: working-memory budget that sizes the patch batches.
        niters: whole passes (the output of one is the input of the next, σ re-estimated).
        subset_passes: how many of the ``niters`` passes run first on FPS-interleaved subsets of about
            ``subset_size`` points, each subset denoised as a cloud of its own (PD-Flow's 50K protocol): the
            networks then see the point density of a ``subset_size`` cloud, where the edge features span a
            wider part of the surface. 0 (default) = off; no effect when N < 1.5 × ``subset_size``.
        subset_size: points per subset (10,000).
        device: torch device.
    """

    name = "sbd"
    paper = "SBD: score-based diffusion denoising conditioned on edge features (this project; docs/methods/sbd.md)"
    preserves_count = True
    uses_torch = True
    #: passes and anchors, tuned per (N, σ) on the val split (``sbdbench tune --method sbd --split val``): at 50K a
    #: 1000-point patch spans a smaller part of the surface than at 10K, so the pass count must be tuned per N;
    #: the networks were trained on 32 neighbours per anchor, and averaging more than ScoreDenoise's 4 predictions
    #: per point lowers the variance of each step (``--refine frame_knn``, the pass count held); at 50K the first
    #: passes can run on 10K-point subsets, at the density where a patch spans as much surface as at 10K
    #: (``--refine subset_passes``; a no-op at 10K).
    tuning_grid = {"niters": [1, 2, 3, 4], "frame_knn": [4, 8, 16], "subset_passes": [0, 1, 2]}

    def __init__(
        self,
        weights: str = "project",
        T: int = DEFAULT_T,
        schedule: str = DEFAULT_KIND,
        sigma_min: float = DEFAULT_SIGMA_MIN,
        sigma_max: float = DEFAULT_SIGMA_MAX,
        frame_knn: int = 4,
        patch_size: int = 1000,
        seed_k: float = 3,
        merge: str = "fps",
        memory_mb: float = 256,
        niters: int = 1,
        subset_passes: int = 0,
        subset_size: int = 10000,
        device: str = "cpu",
    ):
        self.weights = weights
        self.T = T
        self.schedule = schedule
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.frame_knn = frame_knn
        self.patch_size = patch_size
        self.seed_k = seed_k
        self.merge = merge
        self.memory_mb = memory_mb
        self.niters = niters
        self.subset_passes = subset_passes
        self.subset_size = subset_size
        self.device = device

    def make_schedule(self) -> Schedule:
        if self.schedule not in SCHEDULE_KINDS:
            raise InputError(f"sbd: unknown schedule {self.schedule!r} (choose from {', '.join(SCHEDULE_KINDS)})")
        return make_schedule(T=int(self.T), kind=self.schedule, sigma_min=float(self.sigma_min), sigma_max=float(self.sigma_max))

    @property
    def block_merge(self) -> str:
        """FPS merges pool the blocks and FPS back to N; stitching is 1:1, so each core point keeps its output."""
        return "own" if self.merge == "stitch" else "pool"

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """σ of the whole cloud for the first pass (later passes re-estimate it per block, as per cloud); overlap
        two patch radii per pass."""
        sigma = noise_level if noise_level is not None else estimate_noise_level(unit_points)
        return patch_block_settings(self, unit_points, sigma, int(self.niters), type(self)(**self.get_params()))

    def _networks(self):
        key = (str(self.weights), str(self.device))
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] != key:
            model, meta = load_sbd_model(self.weights, self.device)
            folded = FoldedScoreNet.from_score_net(model.score_net).to(self.device)
            self._cache = (key, model, folded, meta)
        return self._cache[1], self._cache[2]

    def use_networks(self, model: ScoreDenoiseModel) -> "SBD":
        """Run on these in-memory networks (eval mode, on ``device``) instead of loading ``weights``, until
        ``weights`` or ``device`` changes: training validates its current networks through the whole method."""
        folded = FoldedScoreNet.from_score_net(model.score_net).to(self.device)
        self._cache = ((str(self.weights), str(self.device)), model, folded, {"weights": "in memory"})
        return self

    def start_step(self, points: np.ndarray, noise_level: Optional[float], schedule: Schedule) -> int:
        sigma = estimate_noise_level(points) if noise_level is None else float(noise_level)
        return schedule.start_step(sigma)

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        if int(self.niters) < 1:
            raise InputError(f"sbd: niters must be ≥ 1, got {self.niters}")
        if int(self.frame_knn) < 1:
            raise InputError(f"sbd: frame_knn must be ≥ 1 (current points each anchor scores per step), got {self.frame_knn}")
        if int(self.subset_passes) < 0:
            raise InputError(f"sbd: subset_passes must be ≥ 0, got {self.subset_passes}")
        if int(self.subset_size) < 32:
            raise InputError(f"sbd: subset_size must be at least 32 points (so every subset keeps more than the feature net's 16), got {self.subset_size}")
        if len(points) <= 16:
            raise InputError(f"sbd needs more than 16 points (the feature net's neighbourhood), got {len(points)}")
        x = torch.as_tensor(points, dtype=torch.float32, device=torch_device(self.device, "sbd"))
        passes = int(self.niters)
        on_subsets = min(int(self.subset_passes), passes)
        subsets = interleaved_subsets(x, int(self.subset_size)) if on_subsets else []
        if len(subsets) > 1:
            # the first passes see each subset as a cloud of its own (σ given, then re-estimated per subset)
            merged = torch.empty_like(x)
            with metered_span(0.0, on_subsets / passes):
                for idx in metered_steps(subsets):
                    merged[idx] = self._passes(x[idx], noise_level, on_subsets)
            x, noise_level, passes, start = merged, None, passes - on_subsets, on_subsets / passes
        else:
            start = 0.0
        with metered_span(start, 1.0):
            x = self._passes(x, noise_level, passes)
        return x.detach().cpu().double().numpy()

    def _passes(self, x: torch.Tensor, noise_level: Optional[float], passes: int) -> torch.Tensor:
        """``passes`` whole passes over the (n, 3) cloud ``x``: σ = ``noise_level`` (or estimated) for the first,
        re-estimated for each further one; stops early when the start step falls to 0."""
        schedule = self.make_schedule()
        model, folded = self._networks()
        patch = min(int(self.patch_size), x.shape[0])
        batch = patches_per_batch(patch, _BYTES_PER_PATCH_POINT * max(1, int(self.frame_knn)) // 4, self.memory_mb)
        for it in metered_steps(range(passes)):
            t_star = self.start_step(x.cpu().numpy(), noise_level if it == 0 else None, schedule)
            if t_star == 0:
                break
            routine = lambda patches, t_star=t_star: denoise_patches(model, patches, schedule, t_star, frame_knn=self.frame_knn, folded=folded)
            x = patch_based_denoise(x, routine, patch_size=patch, seed_k=self.seed_k, batch_size=batch, merge=self.merge)
        return x

from sbdbench.methods.learned import sbd_training  # noqa: E402,F401  (registers `sbdbench train --method sbd`)
