"""IterativePFN's network (de Silva Edirimuni et al., CVPR 2023): 4 IterationModules, each a dynamic-graph
EdgeConv feature extractor (3→16→48→144, concatenated 208→512, k = 32) and an MLP 512→256→128→3 with tanh.

The parameter names are the original's (``feature_nets.<i>.conv<j>.mlp.<l>``, ``.lin.<l>``, ``.linear<j>``;
models/denoise.py ``DenoiseNet.feature_nets``, models/feature.py ``FeatureExtraction``, models/dynamic_edge_conv.py
``EdgeConv``), so the released Lightning checkpoint's ``state_dict`` loads with ``strict=True``.

The graph, as the original builds it with PyTorch3D and PyG (models/feature.py ``get_edge_index``): each
layer takes the k + 1 = 33 nearest neighbours of every point *in that layer's input features* (the first
layer in xyz, the next ones in the previous layer's output, the fourth in the third's), drops the point
itself (``remove_self_loops``), and max-aggregates ``mlp([x_i, x_j − x_i])`` over the remaining ones; the
layer's output is that max plus ``lin(x_i)``. Here the graph is a dense (B, P, k + 1) neighbour index with a
mask, and kNN is the project's exact :func:`~sbdbench.methods.learned.knn.knn_points`. Torch only.

:class:`IterativePFNNet` runs the modules as written (one MLP call per edge; the reference-style path of
the golden tests); :class:`~sbdbench.methods.learned.iterativepfn.folded.FoldedIterativePFN` is the fast
equivalent used for inference.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import BatchNorm1d, Linear, ReLU, Sequential

from sbdbench.methods.learned.knn import knn_gather, knn_points

#: the checkpoint's training arguments (train.py: ``--frame_knn 32``, ``--num_modules 4``).
FRAME_KNN = 32
NUM_MODULES = 4
#: channels of the four EdgeConv layers (models/feature.py ``FeatureExtraction.__init__``).
CHANNELS = ((3, 16), (16, 48), (48, 144), (16 + 48 + 144, 512))


def neighbour_graph(x: torch.Tensor, k: int = FRAME_KNN) -> Tuple[torch.Tensor, torch.Tensor]:
    """The original's graph of one layer: the k + 1 nearest neighbours of each point, the point itself masked.

    Args:
        x: (B, P, C) point features (P ≥ k + 1).

    Returns:
        (idx (B, P, k + 1) long, valid (B, P, k + 1) bool): ``valid`` is False where ``idx`` is the point itself
        (the edges PyG's ``remove_self_loops`` drops).
    """
    _, idx = knn_points(x, x, k + 1)
    own = torch.arange(x.shape[1], device=x.device).view(1, -1, 1)
    return idx, idx != own


def masked_max(messages: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Max over the neighbour axis of (B, P, K, O) non-negative messages, masked edges excluded → (B, P, O).

    The messages end in a ReLU (≥ 0) and every point keeps at least k edges, so zeroing masked ones is exact.
    """
    return (messages * valid.unsqueeze(-1).to(messages.dtype)).amax(dim=2)


class EdgeConv(nn.Module):
    """models/dynamic_edge_conv.py ``EdgeConv``: ``max_j mlp([x_i, x_j − x_i]) + lin(x_i)`` (names as the original)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.mlp = Sequential(Linear(2 * in_channels, out_channels), BatchNorm1d(out_channels), ReLU(),
                              Linear(out_channels, out_channels), BatchNorm1d(out_channels), ReLU())
        self.lin = Sequential(Linear(in_channels, out_channels), BatchNorm1d(out_channels), ReLU())

    def forward(self, x: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x (B, P, C), graph (B, P, K) → (B, P, O); one MLP call per edge, as the original."""
        b, p, c = x.shape
        x_j = knn_gather(x, idx)  # (B, P, K, C)
        x_i = x.unsqueeze(2).expand_as(x_j)
        msg = self.mlp(torch.cat([x_i, x_j - x_i], dim=-1).reshape(-1, 2 * c)).reshape(b, p, idx.shape[2], -1)
        return masked_max(msg, valid) + self.lin(x.reshape(b * p, c)).reshape(b, p, -1)


class IterationModule(nn.Module):
    """models/feature.py ``FeatureExtraction`` with ``z_dim = 0``: (B, P, 3) → displacement (B, P, 3) in (−1, 1)."""

    def __init__(self, k: int = FRAME_KNN, embedding_dim: int = 512, output_dim: int = 3):
        super().__init__()
        self.k = k
        self.conv1, self.conv2, self.conv3 = (EdgeConv(i, o) for i, o in CHANNELS[:3])
        self.conv4 = EdgeConv(CHANNELS[3][0], embedding_dim)
        self.linear1 = Linear(embedding_dim, 256, bias=False)
        self.linear2 = Linear(256, 128)
        self.linear3 = Linear(128, output_dim)

    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The four EdgeConv outputs [(B, P, 16), (B, P, 48), (B, P, 144), (B, P, 512)] of a (B, P, 3) patch."""
        x1 = self.conv1(x, *neighbour_graph(x, self.k))
        x2 = self.conv2(x1, *neighbour_graph(x1, self.k))
        x3 = self.conv3(x2, *neighbour_graph(x2, self.k))
        x4 = self.conv4(torch.cat([x1, x2, x3], dim=-1), *neighbour_graph(x3, self.k))  # graph from x3, as the original
        return [x1, x2, x3, x4]

    def head(self, feat: torch.Tensor) -> torch.Tensor:
        """(B, P, 512) → (B, P, 3): ``tanh(linear3(relu(linear2(relu(linear1(·))))))``."""
        return torch.tanh(self.linear3(F.relu(self.linear2(F.relu(self.linear1(feat))))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[3])


class IterativePFNNet(nn.Module):
    """models/denoise.py ``DenoiseNet`` (its networks only): ``feature_nets`` = the IterationModules."""

    def __init__(self, num_modules: int = NUM_MODULES, k: int = FRAME_KNN):
        super().__init__()
        self.feature_nets = nn.ModuleList(IterationModule(k) for _ in range(num_modules))

    def forward(self, patches: torch.Tensor, num_modules: int | None = None) -> torch.Tensor:
        """``denoise_langevin_dynamics``: x ← x + module_i(x) for the first ``num_modules`` modules; (B, P, 3) → (B, P, 3)."""
        x = patches
        for module in list(self.feature_nets)[: num_modules or len(self.feature_nets)]:
            x = x + module(x)
        return x
