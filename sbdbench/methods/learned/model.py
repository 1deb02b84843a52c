"""ScoreDenoise's network pair (``feature_net`` + ``score_net``) and its supervised training loss.

The module names are those of ScoreDenoise's ``DenoiseNet``, so the released checkpoint's
``state_dict`` loads with ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import torch
from torch import nn

from sbdbench.methods.learned.feature_net import FeatureNet
from sbdbench.methods.learned.knn import knn_gather, knn_points
from sbdbench.methods.learned.score_net import ScoreNet


class ScoreDenoiseModel(nn.Module):
    """Feature network + conditional score network (hidden width and block count as in the checkpoint args)."""

    def __init__(self, hidden_size: int = 128, num_blocks: int = 4):
        super().__init__()
        self.feature_net = FeatureNet()
        self.score_net = ScoreNet(z_dim=self.feature_net.out_channels, dim=3, out_dim=3, hidden_size=hidden_size, num_blocks=num_blocks)

    def output_parameters(self) -> list:
        """The score network's output layer: the trainer may give it a smaller learning rate."""
        return list(self.score_net.conv_out.parameters())

    def zero_output(self) -> "ScoreDenoiseModel":
        """Start training from the zero displacement (output layer zeroed), not from random outputs
        ~50× larger than the targets, which the first hundreds of iterations would spend undoing."""
        torch.nn.init.zeros_(self.score_net.conv_out.weight)
        torch.nn.init.zeros_(self.score_net.conv_out.bias)
        return self


def initial_model(seed: int, zero_output: bool = True) -> ScoreDenoiseModel:
    """The starting point of every training recipe: seeded initial weights (the same for ``score`` and
    ``sbd``, so equal-budget runs start equal), optionally with the output layer zeroed."""
    torch.manual_seed(seed)
    model = ScoreDenoiseModel()
    return model.zero_output() if zero_output else model


def supervised_score_loss(
    model: ScoreDenoiseModel,
    noisy: torch.Tensor,
    clean: torch.Tensor,
    *,
    num_train_points: int = 128,
    frame_knn: int = 32,
    num_clean_nbs: int = 4,
    dsm_sigma: float = 0.01,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ScoreDenoise's supervised denoising-score-matching loss on a batch of patches.

    Args:
        noisy: (B, N, 3) noisy patches (N = 1000).
        clean: (B, M, 3) clean patches around the same seeds (M = 1200).
        num_train_points: centres drawn per patch (128; the same indices for the whole batch, as the original).
        frame_knn: offsets per centre (32-NN frame).
        num_clean_nbs: the target of a frame point x is −(x − mean of its 4 nearest clean points).
        dsm_sigma: the constant 1/σ weight of the loss (0.01).

    Returns:
        0.5 · mean over frame points of ‖target − score‖² / dsm_sigma (a scalar with grad).
    """
    b, n, d = noisy.shape
    pick = torch.randperm(n, generator=generator)[:num_train_points].to(noisy.device)
    feat = model.feature_net(noisy)[:, pick]  # (B, n, F)
    centres = noisy[:, pick]  # (B, n, 3)
    _, frame_idx = knn_points(centres, noisy, frame_knn)
    frames = knn_gather(noisy, frame_idx)  # (B, n, K, 3)
    with torch.no_grad():
        flat = frames.reshape(b, -1, d)
        _, clean_idx = knn_points(flat, clean, num_clean_nbs)
        clean_mean = knn_gather(clean, clean_idx).mean(dim=2)  # (B, n·K, 3)
        target = -(flat - clean_mean).reshape(b, num_train_points, frame_knn, d)
    pred = model.score_net((frames - centres.unsqueeze(2)).reshape(-1, frame_knn, d), feat.reshape(-1, feat.shape[-1]))
    pred = pred.reshape(b, num_train_points, frame_knn, d)
    return 0.5 * (((target - pred) ** 2) / dsm_sigma).sum(dim=-1).mean()
