"""StraightPCF's networks in plain torch, with the original parameter names (``ddsediri/StraightPCF``).

* :class:`EdgeConv` — ``models/dynamic_edge_conv.py``: a PyG ``MessagePassing`` with max aggregation,
  message ``mlp([x_i, x_j − x_i])`` plus ``lin(x_i)``. Here it runs on a dense (B, N, K) neighbour table, and
  the first message layer is split as ``(W_a − W_b)·x_i + W_b·x_j`` (two per-point products instead of one
  per-edge product: the same sum up to round-off).
* :class:`FeatureExtraction` — ``models/feature.py``: three EdgeConvs on a kNN graph (k = ``frame_knn`` + 1
  points, self-loops removed as ``remove_self_loops`` does), rebuilt in feature space before conv2 and conv3
  (the conv3 graph comes from conv2's output, the input is [x1, x2]); optional patch normalisation
  (``distance_estimation``).
* :class:`Decoder` — ``models/decoder.py``: Linear–BN–ReLU ×2, then Linear; ``out_dim = 1`` max-pools over the
  patch and applies a sigmoid (the distance module).
* :class:`VelocityModule`, :class:`CoupledVMArch`, :class:`StraightPCF` — ``models/vm.py``, ``models/cvm.py``,
  ``models/straightpcf.py``: the parameters only; the flows are in :mod:`.flow`.
"""

from __future__ import annotations

import torch
from torch import nn

from sbdbench.methods.learned.knn import knn_points


def neighbour_table(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, N, D) → (B, N, k + 1) indices of the k + 1 nearest points (self included, nearest first), as
    ``pytorch3d.ops.knn_points(x, x, K=k+1)`` (ties → lower index)."""
    return knn_points(x, x, k + 1)[1]


def gather_rows(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """values (B, N, F), idx (B, N, K) → (B, N, K, F)."""
    b, n, k = idx.shape
    return torch.gather(values, 1, idx.reshape(b, n * k, 1).expand(-1, -1, values.shape[-1])).reshape(b, n, k, -1)


def drop_self(idx: torch.Tensor) -> tuple:
    """(neighbour indices, mask or None): PyG's ``remove_self_loops`` on a (B, N, K) table. When every row
    starts with the point itself (no duplicate points), the first column is dropped; otherwise a (B, N, K)
    boolean mask marks the self entries."""
    own = torch.arange(idx.shape[1], device=idx.device).view(1, -1, 1)
    if bool((idx[:, :, :1] == own).all()):
        return idx[:, :, 1:], None
    return idx, idx == own


class EdgeConv(nn.Module):
    """``EdgeConv(in_channels, out_channels, activation)``: max over neighbours j ≠ i of
    ``mlp([x_i, x_j − x_i])``, plus ``lin(x_i)``; ``activation=None`` drops the final ReLUs."""

    def __init__(self, in_channels: int, out_channels: int, activation: str | None = "ReLU"):
        super().__init__()
        self.activation = activation
        if activation == "ReLU":
            self.mlp = nn.Sequential(nn.Linear(2 * in_channels, out_channels), nn.ReLU(),
                                     nn.Linear(out_channels, out_channels), nn.ReLU())
            self.lin = nn.Sequential(nn.Linear(in_channels, out_channels), nn.ReLU())
        else:
            self.mlp = nn.Sequential(nn.Linear(2 * in_channels, out_channels), nn.ReLU(), nn.Linear(out_channels, out_channels))
            self.lin = nn.Linear(in_channels, out_channels)

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """x (B, N, C), idx (B, N, K) neighbour table incl. self → (B, N, out_channels)."""
        first, second = self.mlp[0], self.mlp[2]
        c = x.shape[-1]
        w_i, w_d = first.weight[:, :c], first.weight[:, c:]
        centre = torch.addmm(first.bias, x.reshape(-1, c), (w_i - w_d).t()).view(*x.shape[:2], -1)  # (B, N, C')
        other = (x.reshape(-1, c) @ w_d.t()).view(*x.shape[:2], -1)
        nbr, mask = drop_self(idx)
        hidden = torch.relu_(gather_rows(other, nbr) + centre.unsqueeze(2))  # (B, N, K, C')
        msg = torch.nn.functional.linear(hidden, second.weight, second.bias)
        if mask is not None:
            msg = msg.masked_fill(mask.unsqueeze(-1), float("-inf"))
        out = msg.amax(dim=2)  # max(ReLU(·)) = ReLU(max(·)): the final ReLU is applied after the max
        if self.activation == "ReLU":
            out = torch.relu_(out)
        return out + self.lin(x)


class FeatureExtraction(nn.Module):
    """Dynamic-graph feature extractor: (B, N, 3) → (B, N, embedding_dim)."""

    def __init__(self, k: int = 32, input_dim: int = 3, embedding_dim: int = 512, distance_estimation: bool = False):
        super().__init__()
        self.k = k
        self.embedding_dim = embedding_dim
        self.distance_estimation = distance_estimation
        e8, e4 = int(embedding_dim / 8), int(embedding_dim / 4)
        self.conv1 = EdgeConv(input_dim, e8)
        self.conv2 = EdgeConv(e8, e4)
        self.conv3 = EdgeConv(e8 + e4, embedding_dim, activation=None)

    def forward(self, x: torch.Tensor, xyz_table: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, 3); ``xyz_table``: the (B, N, k+1) kNN table of x when already known."""
        if self.distance_estimation:
            x = x / (x**2).sum(dim=-1, keepdim=True).sqrt().max(dim=-2, keepdim=True)[0]
        x1 = self.conv1(x, neighbour_table(x, self.k) if xyz_table is None else xyz_table)
        x2 = self.conv2(x1, neighbour_table(x1, self.k))
        return self.conv3(torch.cat((x1, x2), dim=-1), neighbour_table(x2, self.k))


class Decoder(nn.Module):
    """Per-point MLP head (B·N, z_dim) → (B·N, out_dim), or with ``out_dim = 1`` a max-pooled (B, 1, 1) in (0, 1)."""

    def __init__(self, z_dim: int, dim: int, out_dim: int, hidden_size: int):
        super().__init__()
        self.out_dim = out_dim
        self.lin_1 = nn.Linear(z_dim, z_dim)
        self.bn_1_out = nn.BatchNorm1d(z_dim)
        self.lin_2 = nn.Linear(z_dim, hidden_size)
        self.bn_2_out = nn.BatchNorm1d(hidden_size)
        self.lin_3 = nn.Linear(hidden_size, out_dim)

    def forward(self, c: torch.Tensor, b: int | None = None, n: int | None = None) -> torch.Tensor:
        net = torch.relu(self.bn_1_out(self.lin_1(c)))  # dropout(0.1) is the identity in eval mode
        net = torch.relu(self.bn_2_out(self.lin_2(net)))
        if self.out_dim == 1:
            return torch.sigmoid(self.lin_3(net.reshape(b, n, -1).max(dim=1, keepdim=True)[0]))
        return self.lin_3(net)


class VelocityModule(nn.Module):
    """``encoder`` (FeatureExtraction) + ``decoder`` (3-d velocity per point)."""

    def __init__(self, k: int = 32, embedding_dim: int = 256, hidden_dim: int = 64):
        super().__init__()
        self.encoder = FeatureExtraction(k=k, input_dim=3, embedding_dim=embedding_dim)
        self.decoder = Decoder(z_dim=embedding_dim, dim=3, out_dim=3, hidden_size=hidden_dim)

    def velocity(self, x: torch.Tensor, xyz_table: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, 3) → (B, N, 3) predicted displacement direction."""
        feat = self.encoder(x, xyz_table)
        return self.decoder(feat.reshape(-1, feat.shape[-1])).reshape(x.shape)


class CoupledVMArch(nn.Module):
    """``velocity_nets``: the coupled stack of velocity modules."""

    def __init__(self, num_modules: int = 2, k: int = 32, embedding_dim: int = 256, hidden_dim: int = 64):
        super().__init__()
        self.velocity_nets = nn.ModuleList(VelocityModule(k, embedding_dim, hidden_dim) for _ in range(num_modules))


class StraightPCF(CoupledVMArch):
    """The coupled velocity modules plus the distance module (``encoder`` with patch normalisation, ``decoder``
    with one sigmoid output per patch)."""

    def __init__(self, num_modules: int = 2, k: int = 32, embedding_dim: int = 256, hidden_dim: int = 64,
                 distance_k: int = 32, distance_embedding_dim: int = 128, distance_hidden_dim: int = 64,
                 distance_estimation: bool = True):
        super().__init__(num_modules, k, embedding_dim, hidden_dim)
        self.encoder = FeatureExtraction(k=distance_k, input_dim=3, embedding_dim=distance_embedding_dim,
                                         distance_estimation=distance_estimation)
        self.decoder = Decoder(z_dim=distance_embedding_dim, dim=3, out_dim=1, hidden_size=distance_hidden_dim)

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) patches → (B, 1, 1) predicted fraction of the way to the surface."""
        feat = self.encoder(x)
        return self.decoder(feat.reshape(-1, feat.shape[-1]), x.shape[0], x.shape[1]).reshape(-1, 1, 1)
