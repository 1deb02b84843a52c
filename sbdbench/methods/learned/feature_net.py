"""The ScoreDenoise feature network: 4 densely connected dynamic edge-convolution blocks (k = 16) → 60-d per point.

Same architecture and parameter names as ``FeatureExtraction`` in ScoreDenoise (Luo & Hu, ICCV 2021),
so the released ``feature_net.*`` weights load unchanged. Each block is

    transform (Linear → 24, ReLU except in block 0)
    → kNN graph in the transformed feature space (16 neighbours, the point itself excluded)
    → edge features (block 0: x_j − x_i; others: [x_i, x_j, x_j − x_i])
    → 3 densely connected layers of 12 channels (ReLU, ReLU, none) → max over the neighbours
    → [g2, g1, g0, x_i]  (12 + 12 + 12 + 24 = 60 channels).

Two exact rewrites keep it cheap (same numbers up to float round-off):
* a linear layer of [x_i, x_j, x_j − x_i] is (W_a − W_c)·x_i + (W_b + W_c)·x_j, so the first layer
  runs once per point and is then gathered per edge, instead of once per edge on 72 channels;
* the x_i part of the dense connections is constant over the neighbours, so it is projected once per
  point and its max over neighbours is x_i itself.
"""

from __future__ import annotations

import torch
from torch import nn

from sbdbench.methods.learned.knn import knn_gather, knn_points


class Dense(nn.Module):
    """``Linear`` followed by an optional ReLU (the checkpoint names the linear ``<name>.linear``)."""

    def __init__(self, in_features: int, out_features: int, relu: bool):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return torch.relu(y) if self.relu else y


class DenseEdgeConv(nn.Module):
    """One dynamic edge-convolution block with 3 densely connected layers.

    Args:
        in_channels: d, the width of the block input.
        growth_rate: c, channels added by each layer (12).
        knn: neighbours per point (16).
        relative_feat_only: edge feature x_j − x_i only (block 0) instead of [x_i, x_j, x_j − x_i].
    """

    def __init__(self, in_channels: int, growth_rate: int = 12, knn: int = 16, relative_feat_only: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.growth_rate = growth_rate
        self.knn = knn
        self.relative_feat_only = relative_feat_only
        edge_channels = in_channels if relative_feat_only else 3 * in_channels
        self.layer_first = Dense(edge_channels, growth_rate, relu=True)
        self.layers = nn.ModuleList([Dense(in_channels + growth_rate, growth_rate, relu=True)])
        self.layer_last = Dense(in_channels + 2 * growth_rate, growth_rate, relu=False)

    @property
    def out_channels(self) -> int:
        return self.in_channels + 3 * self.growth_rate

    def neighbours(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, d) → (B, N, knn) indices of each point's nearest others in feature space."""
        with torch.no_grad():  # indices only: no gradient flows through the graph construction
            _, idx = knn_points(x.detach(), x.detach(), self.knn + 1)
        return idx[:, :, 1:]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, d) features → (B, N, d + 36), with the kNN graph built on ``x`` itself."""
        d, c = self.in_channels, self.growth_rate
        idx = self.neighbours(x)
        w = self.layer_first.linear.weight  # (c, d) or (c, 3d)
        bias = self.layer_first.linear.bias
        if self.relative_feat_only:
            w_self, w_nb = -w, w
        else:
            w_a, w_b, w_c = w[:, :d], w[:, d:2 * d], w[:, 2 * d:]
            w_self, w_nb = w_a - w_c, w_b + w_c
        per_self = nn.functional.linear(x, w_self, bias)  # (B, N, c)
        per_nb = nn.functional.linear(x, w_nb)  # (B, N, c)
        g0 = torch.relu(per_self.unsqueeze(2) + knn_gather(per_nb, idx))  # (B, N, K, c)

        w1 = self.layers[0].linear.weight  # (c, c + d) acting on [g0, x]
        x_part1 = nn.functional.linear(x, w1[:, c:], self.layers[0].linear.bias).unsqueeze(2)
        g1 = torch.relu(nn.functional.linear(g0, w1[:, :c]) + x_part1)  # (B, N, K, c)

        w2 = self.layer_last.linear.weight  # (c, 2c + d) acting on [g1, g0, x]
        x_part2 = nn.functional.linear(x, w2[:, 2 * c:], self.layer_last.linear.bias).unsqueeze(2)
        g2 = nn.functional.linear(g1, w2[:, :c]) + nn.functional.linear(g0, w2[:, c:2 * c]) + x_part2  # (B, N, K, c)

        return torch.cat([g2.amax(dim=2), g1.amax(dim=2), g0.amax(dim=2), x], dim=-1)  # max over the neighbours


class FeatureNet(nn.Module):
    """Per-point features of a patch: (B, N, 3) → (B, N, 60). State-dict compatible with ScoreDenoise.

    Args:
        in_channels: 3 (xyz).
        conv_channels: width of each block's transform (24).
        num_convs: number of blocks (4).
        growth_rate: channels per dense layer (12).
        knn: neighbours of the dynamic graph (16).
    """

    def __init__(self, in_channels: int = 3, conv_channels: int = 24, num_convs: int = 4, growth_rate: int = 12, knn: int = 16):
        super().__init__()
        self.transforms = nn.ModuleList()
        self.convs = nn.ModuleList()
        for i in range(num_convs):
            self.transforms.append(Dense(in_channels, conv_channels, relu=i > 0))
            conv = DenseEdgeConv(conv_channels, growth_rate=growth_rate, knn=knn, relative_feat_only=i == 0)
            self.convs.append(conv)
            in_channels = conv.out_channels

    @property
    def out_channels(self) -> int:
        return self.convs[-1].out_channels

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3) with N > knn → features (B, N, 60)."""
        x = points
        for transform, conv in zip(self.transforms, self.convs):
            x = conv(transform(x))
        return x
