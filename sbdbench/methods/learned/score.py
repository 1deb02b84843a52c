"""``score``: ScoreDenoise (Luo & Hu, ICCV 2021) with its released or the project's own weights.

Per patch (1000 points): features once from the noisy patch, then 30 steps of gradient ascent with
step 0.2·0.95^t; at each step every original point i takes its 4 nearest *current* points x_j, scores
each offset x_j − x_i with its own feature, and the scores are summed onto those points. Patches are
merged by FPS back to N (or stitched 1:1, IterativePFN's variant). One pass at σ ≤ 2 %, two at 3 %.

Speed without changing the output: the feature part of every condition projection is computed once
per patch (:class:`~sbdbench.methods.learned.score_net.FoldedScoreNet`), BatchNorm is folded, layers
run channels-last, and kNN runs on the small patches by batched torch ops.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from sbdbench.errors import InputError
from sbdbench.methods.base import Denoiser, register
from sbdbench.methods.learned.checkpoint import WeightsDigestMixin, load_checkpoint, load_into, resolve_weights
from sbdbench.methods.learned.devices import torch_device
from sbdbench.methods.learned.feature_net import FeatureNet
from sbdbench.methods.learned.knn import knn_gather, knn_points
from sbdbench.methods.learned.model import ScoreDenoiseModel
from sbdbench.methods.learned.patches import patch_based_denoise, patch_block_settings, patches_per_batch
from sbdbench.methods.learned.score_net import FoldedScoreNet
from sbdbench.methods.meter import metered_steps
from sbdbench.methods.noise_level import estimate_noise_level  # noqa: F401  (the one estimator; re-exported)

#: working memory of one patch point during gradient ascent (4 neighbours × 5·128 floats × a few buffers).
_BYTES_PER_PATCH_POINT = 4 * 4 * 128 * 12


def gradient_ascent(
    feature_net: FeatureNet,
    score_net: FoldedScoreNet,
    patches: torch.Tensor,
    *,
    num_steps: int = 30,
    step_size: float = 0.2,
    step_decay: float = 0.95,
    denoise_knn: int = 4,
) -> torch.Tensor:
    """ScoreDenoise's per-patch denoising (``denoise_langevin_dynamics``, no noise injected).

    Args:
        feature_net: eval-mode feature network.
        score_net: the folded score network.
        patches: (B, P, 3) noisy patches.

    Returns:
        (B, P, 3) denoised patches.
    """
    b, p, d = patches.shape
    with torch.no_grad():
        feat = feature_net(patches)  # (B, P, F)
        cond = score_net.condition(feat.reshape(b * p, -1))  # (B·P, ·), fixed for all steps
        current = patches.clone()
        for step in range(num_steps):
            _, nn_idx = knn_points(patches, current, denoise_knn)  # (B, P, K)
            offsets = knn_gather(current, nn_idx) - patches.unsqueeze(2)  # (B, P, K, 3)
            scores = score_net(offsets.reshape(b * p, denoise_knn, d), cond).reshape(b, p * denoise_knn, d)
            grads = torch.zeros_like(current).scatter_add_(1, nn_idx.reshape(b, p * denoise_knn, 1).expand(-1, -1, d), scores)
            current.add_(grads, alpha=step_size * step_decay**step)
    return current


def passes_for_noise(noise_level: float) -> int:
    """The paper's settings: 1 pass at 1–2 % noise, 2 passes at 3 % (threshold 2.5 %)."""
    return 2 if noise_level > 0.025 else 1


@register
class ScoreDenoise(WeightsDigestMixin, Denoiser):
    """ScoreDenoise with official (``weights="official"``), project (``"project"``) or any compatible weights (a path)."""

    name = "score"
    paper = "Luo & Hu, Score-Based Point Cloud Denoising, ICCV 2021"
    paper_url = "https://arxiv.org/abs/2107.10981"
    code_url = "https://github.com/luost26/score-denoise"
    preserves_count = True
    uses_torch = True

    def __init__(
        self,
        weights: str = "project",
        device: str = "cpu",
        niters: Optional[int] = None,
        merge: str = "fps",
        num_steps: int = 30,
        step_size: Optional[float] = None,
        step_decay: float = 0.95,
        denoise_knn: int = 4,
        patch_size: int = 1000,
        seed_k: float = 3,
        memory_mb: float = 256,
    ):
        self.weights = weights
        self.device = device
        self.niters = niters
        self.merge = merge
        self.num_steps = num_steps
        self.step_size = step_size
        self.step_decay = step_decay
        self.denoise_knn = denoise_knn
        self.patch_size = patch_size
        self.seed_k = seed_k
        self.memory_mb = memory_mb

    @property
    def block_merge(self) -> str:
        """FPS merges pool the blocks and FPS back to N; stitching is 1:1, so each core point keeps its output."""
        return "own" if self.merge == "stitch" else "pool"

    def block_settings(self, unit_points: np.ndarray, noise_level: Optional[float]):
        """The passes fixed from the whole cloud's σ (given or estimated once); overlap two patch radii per pass."""
        sigma = noise_level if noise_level is not None else estimate_noise_level(unit_points)
        niters = int(self.niters) if self.niters is not None else passes_for_noise(sigma)
        fixed = ScoreDenoise(**{**self.get_params(), "niters": niters})
        return patch_block_settings(self, unit_points, sigma, niters, fixed)

    # --- model ------------------------------------------------------------------------------------
    def load(self) -> Tuple[ScoreDenoiseModel, FoldedScoreNet, float]:
        """(eval model on ``device``, its folded score net, the step size) — loaded once per weights/device."""
        key = (str(self.weights), str(self.device))
        cached = getattr(self, "_loaded", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        path = resolve_weights(self.weights, method="score")
        state, meta = load_checkpoint(path)
        model = load_into(ScoreDenoiseModel(), state, source=path).eval()
        model = model.to(torch_device(self.device, "score"))
        folded = FoldedScoreNet.from_score_net(model.score_net)
        step = self.step_size if self.step_size is not None else float(meta.get("args", {}).get("ld_step_size", meta.get("ld_step_size", 0.2)))
        loaded = (model, folded, step)
        self._loaded = (key, loaded)
        return loaded

    def _denoise_unit(self, points: np.ndarray, noise_level: Optional[float]) -> np.ndarray:
        if self.merge not in ("fps", "stitch"):
            raise InputError(f"score: merge must be 'fps' or 'stitch', got {self.merge!r}")
        if len(points) <= 16:
            raise InputError(f"score needs more than 16 points (its feature graph uses 16 neighbours), got {len(points)}")
        niters = self.niters
        if niters is None:
            sigma = noise_level if noise_level is not None else estimate_noise_level(points)
            niters = passes_for_noise(sigma)
        model, folded, step = self.load()
        device = next(model.parameters()).device
        x = torch.as_tensor(points, dtype=torch.float32, device=device)
        patch = min(self.patch_size, len(points))
        batch = patches_per_batch(patch, _BYTES_PER_PATCH_POINT, self.memory_mb)

        def routine(patches: torch.Tensor) -> torch.Tensor:
            return gradient_ascent(model.feature_net, folded, patches, num_steps=self.num_steps, step_size=step,
                                   step_decay=self.step_decay, denoise_knn=self.denoise_knn)

        with torch.no_grad():
            for _ in metered_steps(range(int(niters))):
                x = patch_based_denoise(x, routine, patch_size=patch, seed_k=self.seed_k, batch_size=batch, merge=self.merge)
        return x.double().cpu().numpy()
