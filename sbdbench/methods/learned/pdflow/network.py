"""PD-Flow's network (Mao et al., ECCV 2022) with the original parameter names, channels-last, torch only.

The module tree mirrors ``models/deflow/deflow.py`` (``DenoiseFlow``) of github.com/unknownue/pdflow so that
the released ``pretrain/pdflow-score-LCC.pt`` loads with ``strict=True``:

* ``argument`` (augmentation, ``modules/augment.py``): ``shallow`` (kNN-12 feature net) and 3 ``steps``
  turning Gaussian noise ε (B, 32, N) into 32 extra channels in (0, 1);
* ``flow_assemblies`` (8 flows): ``permutate1`` (invertible 1×1, ``W``) → ``actnorm`` → ``coupling1`` →
  ``permutate2`` (channel reversal) → ``coupling2``; couplings are affine with a soft clamp 1.9·(2/π)·atan;
  flows 0–4 condition ``coupling1`` on kNN graphs of the noisy patch (k = 32, 16, 32, 16, 32);
* ``channel_mask`` (35, 35): the learned latent map of the LCC variant, z ↦ M z, before the inverse flow.

What differs from the original is only how the same numbers are computed: one sorted 32-NN search per patch
serves all graphs (the 16- and 12-NN are its prefixes), the first layer of each kNN unit is folded into two
per-point projections (``cat[f_i, f_j, f_j − f_i]·Wᵀ = f_i·(W_a − W_c)ᵀ + f_j·(W_b + W_c)ᵀ``), the scale and
bias nets run stacked (batched GEMMs, one row gather, max before the last ReLU), 1×1 convolutions run as matrix
products on (B, N, C).
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sbdbench.methods.learned.knn import knn_gather, knn_points

IN_CHANNEL, AUG_CHANNEL, N_FLOWS = 3, 32, 8
FULL = IN_CHANNEL + AUG_CHANNEL  # 35
H1, H2 = FULL - FULL // 2, FULL // 2  # 18 conditioning channels, 17 transformed
PRE_KS = (32, 16, 32, 16, 32)  # deflow.py: self.pre_ks, the kNN graph of flows 0-4
AUG_K = 12  # layer.py AugmentShallow: get_knn_idx(12, x)
CLAMP = 2.0 * 1.9 / math.pi  # modules/linear.py SoftClampling(clamp=1.9)


def _lin(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """A 1×1 ``Conv1d``/``Conv2d`` or ``Linear`` applied channels-last: (..., C_in) → (..., C_out)."""
    w = conv.weight.reshape(conv.weight.shape[0], -1)
    return F.linear(x, w, conv.bias)


# --- augmentation --------------------------------------------------------------------------------------------
class AugmentShallow(nn.Module):
    """Per-point context a (B, N, 64) from the 12 nearest points: trans1 → 2×(1×1 conv, ReLU) → mean → trans2."""

    def __init__(self, in_channel: int = 3, hidden_channel: int = 32, out_channel: int = 64, num_convs: int = 2):
        super().__init__()
        self.trans1 = nn.Linear(in_channel, hidden_channel)
        self.trans2 = nn.Linear(hidden_channel, out_channel)
        self.convs = nn.ModuleList(nn.Conv2d(hidden_channel, hidden_channel, kernel_size=(1, 1)) for _ in range(num_convs))

    def forward(self, xyz: torch.Tensor, knn_idx: torch.Tensor) -> torch.Tensor:
        """xyz (B, N, 3), knn_idx (B, N, 12) (self included) → (B, N, 64)."""
        x = knn_gather(self.trans1(xyz), knn_idx)  # a linear map commutes with the gather
        for conv in self.convs:
            x = F.relu(_lin(x, conv))
        return self.trans2(x.mean(dim=2))


class GatedConv1D(nn.Module):
    """``modules/linear.py`` GatedConv1D: x + gate(conv2(elu±(conv1(elu±(x)))) + conv3(elu±(a)))."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv1d(channels * 2, channels, kernel_size=1)
        self.conv2 = nn.Conv1d(channels * 2, channels * 2, kernel_size=1)
        self.conv3 = nn.Conv1d(channels * 2, channels * 2, kernel_size=1)

    @staticmethod
    def nonlinearity(x: torch.Tensor) -> torch.Tensor:
        return F.elu(torch.cat((x, -x), dim=-1))

    def forward(self, x: torch.Tensor, a_nl: torch.Tensor) -> torch.Tensor:
        """x (B, N, 64), a_nl = nonlinearity(a) (B, N, 128) → (B, N, 64)."""
        y = _lin(self.nonlinearity(_lin(self.nonlinearity(x), self.conv1)), self.conv2) + _lin(a_nl, self.conv3)
        g, b = y.chunk(2, dim=-1)
        return x + g * torch.sigmoid(b)


class Conv1DZeros(nn.Module):
    """``modules/linear.py`` Conv1DZeros: (conv1d(x) + bias) · exp(3 · logs)."""

    def __init__(self, in_channel: int, out_channel: int, log_scale: float = 3.0):
        super().__init__()
        self.logscale_factor = log_scale
        self.bias = nn.Parameter(torch.zeros(1, out_channel, 1))
        self.logs = nn.Parameter(torch.zeros(1, out_channel, 1))
        self.conv1d = nn.Conv1d(in_channel, out_channel, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (_lin(x, self.conv1d) + self.bias.reshape(-1)) * self.logs.reshape(-1).mul(self.logscale_factor).exp()


class AugmentStep(nn.Module):
    """One affine step on half of the 32 augmentation channels (``modules/augment.py`` AugmentStep.forward)."""

    def __init__(self, channel: int = AUG_CHANNEL, hidden_channel: int = 64, reverse: bool = False):
        super().__init__()
        self.is_reverse = reverse
        in_channel = channel - channel // 2 if reverse else channel // 2
        self.conv_in = nn.Conv1d(in_channel, hidden_channel, kernel_size=1)
        self.gated_conv = GatedConv1D(hidden_channel)
        self.layer_norm = nn.BatchNorm1d(hidden_channel)
        self.conv_out = Conv1DZeros(hidden_channel, (channel - in_channel) * 2)

    def forward(self, y: torch.Tensor, a_nl: torch.Tensor) -> torch.Tensor:
        """y (B, N, 32), a_nl (B, N, 128) → (B, N, 32)."""
        first, second = y.chunk(2, dim=-1)
        x2, x1 = (first, second) if self.is_reverse else (second, first)
        st = self.gated_conv(_lin(x2, self.conv_in), a_nl)
        bn = self.layer_norm  # eval mode: running statistics
        st = (st - bn.running_mean) * torch.rsqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        st = self.conv_out(st)
        x1 = (x1 + st[..., 0::2]) * torch.sigmoid(st[..., 1::2])
        return torch.cat([x2, x1] if self.is_reverse else [x1, x2], dim=-1)


class AugmentLayer(nn.Module):
    """ε (B, 32, N) standard normal → sigmoid(steps(ε | shallow(xyz))) (B, N, 32)."""

    def __init__(self):
        super().__init__()
        self.shallow = AugmentShallow()
        self.steps = nn.ModuleList([AugmentStep(reverse=False), AugmentStep(reverse=True), AugmentStep(reverse=False)])

    def forward(self, xyz: torch.Tensor, knn_idx: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a_nl = GatedConv1D.nonlinearity(self.shallow(xyz, knn_idx))
        y = eps.transpose(1, 2)
        for step in self.steps:
            y = step(y, a_nl)
        return torch.sigmoid(y)


# --- flows ----------------------------------------------------------------------------------------------------
class KnnConvUnit(nn.Module):
    """``models/deflow/layer.py`` KnnConvUnit: linear3(max_j relu(linear2(relu(linear1(cat[f_i, f_j, f_j − f_i])))))."""

    def __init__(self, in_channel: int = H1, hidden_channel: int = 64, out_channel: int = H2):
        super().__init__()
        self.linear1 = nn.Linear(in_channel * 3, hidden_channel)
        self.linear2 = nn.Linear(hidden_channel, hidden_channel)
        self.linear3 = nn.Linear(hidden_channel, out_channel)

    def folded_first_layer(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(W_self (h, C), W_nbr (h, C)) with linear1(cat[f_i, f_j, f_j − f_i]) = f_i·W_selfᵀ + f_j·W_nbrᵀ + b."""
        wa, wb, wc = self.linear1.weight.chunk(3, dim=1)
        return wa - wc, wb + wc


class LinearUnit(nn.Module):
    """``models/deflow/layer.py`` LinearUnit (no BatchNorm in the released model): 3×(1×1 conv, ReLU) → 1×1 conv."""

    def __init__(self, in_channel: int = H1, hidden_channel: int = 64, out_channel: int = H2, n_block: int = 3):
        super().__init__()
        layers: List[nn.Module] = []
        for _ in range(n_block):
            layers += [nn.Conv1d(in_channel, hidden_channel, kernel_size=1), nn.ReLU()]
            in_channel = hidden_channel
        layers.append(nn.Conv1d(hidden_channel, out_channel, kernel_size=1))
        self.linears = nn.Sequential(*layers)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """(B, N, C) → (B, N, out)."""
        convs = [m for m in self.linears if isinstance(m, nn.Conv1d)]
        for conv in convs[:-1]:
            f = F.relu(_lin(f, conv))
        return _lin(f, convs[-1])


class AffineCouplingLayer(nn.Module):
    """Affine coupling on the last axis: h2 ← (h2 − b(h1))·exp(−s(h1)) forward, h2·exp(s) + b inverse, s clamped."""

    def __init__(self, knn: bool):
        super().__init__()
        unit = KnnConvUnit if knn else LinearUnit
        self.bias_net = unit()
        self.scale_net = unit()
        self.knn = knn

    def scale_bias(self, h1: torch.Tensor, knn_idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(clamped scale, bias), each (B, N, 17), from the conditioning half h1 (B, N, 18)."""
        if not self.knn:
            return CLAMP * torch.atan(self.scale_net(h1)), self.bias_net(h1)
        return self._knn_scale_bias(h1, knn_idx)

    def _knn_scale_bias(self, h1: torch.Tensor, knn_idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Both kNN units at once, stacked on a leading axis of 2 (scale, bias): batched GEMMs, one row gather."""
        b, n, c = h1.shape
        k = knn_idx.shape[-1]
        nets = (self.scale_net, self.bias_net)
        folded = [u.folded_first_layer() for u in nets]
        f = h1.reshape(1, b * n, c).expand(2, -1, -1)
        own = torch.baddbmm(torch.stack([u.linear1.bias for u in nets]).unsqueeze(1), f,
                            torch.stack([w for w, _ in folded]).transpose(1, 2))  # (2, B·N, h)
        proj = torch.bmm(f, torch.stack([w for _, w in folded]).transpose(1, 2))  # (2, B·N, h)
        rows = (knn_idx + torch.arange(b, device=knn_idx.device).view(b, 1, 1) * n).reshape(-1)
        hid = own.shape[-1]
        h = proj.index_select(1, rows).view(2, b * n, k, hid).add_(own.unsqueeze(2)).relu_()
        h = torch.baddbmm(torch.stack([u.linear2.bias for u in nets]).unsqueeze(1), h.view(2, b * n * k, hid),
                          torch.stack([u.linear2.weight for u in nets]).transpose(1, 2))
        pooled = h.view(2, b * n, k, hid).amax(dim=2).relu_()  # max∘relu = relu∘max
        out = torch.baddbmm(torch.stack([u.linear3.bias for u in nets]).unsqueeze(1), pooled,
                            torch.stack([u.linear3.weight for u in nets]).transpose(1, 2)).view(2, b, n, -1)
        return CLAMP * torch.atan(out[0]), out[1]

    def forward(self, x: torch.Tensor, knn_idx: torch.Tensor) -> torch.Tensor:
        h1, h2 = x[..., :H1], x[..., H1:]
        scale, bias = self.scale_bias(h1, knn_idx)
        return torch.cat([h1, (h2 - bias) * torch.exp(-scale)], dim=-1)

    def inverse(self, z: torch.Tensor, knn_idx: torch.Tensor) -> torch.Tensor:
        h1, h2 = z[..., :H1], z[..., H1:]
        scale, bias = self.scale_bias(h1, knn_idx)
        return torch.cat([h1, h2 * torch.exp(scale) + bias], dim=-1)


class ActNorm(nn.Module):
    """Per-channel affine x·exp(logs) + bias (the trained state: no data-dependent initialisation)."""

    def __init__(self, channel: int = FULL):
        super().__init__()
        self.logs = nn.Parameter(torch.zeros(1, 1, channel))
        self.bias = nn.Parameter(torch.zeros(1, 1, channel))


class InvertibleConv1x1(nn.Module):
    def __init__(self, channel: int = FULL):
        super().__init__()
        self.W = nn.Parameter(torch.eye(channel))


class Reverse(nn.Module):
    def __init__(self, channel: int = FULL):
        super().__init__()
        self.register_buffer("direct_idx", torch.arange(channel - 1, -1, -1))
        self.register_buffer("inverse_idx", torch.arange(channel - 1, -1, -1))


class Permutation(nn.Module):
    def __init__(self, permutater: nn.Module):
        super().__init__()
        self.permutater = permutater


class FlowAssembly(nn.Module):
    """``deflow.py`` FlowAssembly: permutate1 (1×1) → actnorm → coupling1 → permutate2 (reverse) → coupling2."""

    def __init__(self, index: int):
        super().__init__()
        self.actnorm = ActNorm()
        self.permutate1 = Permutation(InvertibleConv1x1())
        self.permutate2 = Permutation(Reverse())
        self.coupling1 = AffineCouplingLayer(knn=index < len(PRE_KS))
        self.coupling2 = AffineCouplingLayer(knn=False)

    def forward(self, x: torch.Tensor, knn_idx: torch.Tensor) -> torch.Tensor:
        x = torch.matmul(x, self.permutate1.permutater.W.t()) * torch.exp(self.actnorm.logs) + self.actnorm.bias
        x = self.coupling1(x, knn_idx)
        return self.coupling2(x[..., self.permutate2.permutater.direct_idx], knn_idx)

    def inverse(self, z: torch.Tensor, knn_idx: torch.Tensor, w_inv: torch.Tensor) -> torch.Tensor:
        z = self.coupling2.inverse(z, knn_idx)[..., self.permutate2.permutater.inverse_idx]
        z = (self.coupling1.inverse(z, knn_idx) - self.actnorm.bias) * torch.exp(-self.actnorm.logs)
        return torch.matmul(z, w_inv.t())


class PDFlowNet(nn.Module):
    """``DenoiseFlow(Disentanglement.LCC, pc_channel=3)`` in inference: patches (B, P, 3) + ε (B, 32, P) → (B, P, 3)."""

    def __init__(self):
        super().__init__()
        self.argument = AugmentLayer()
        self.flow_assemblies = nn.ModuleList(FlowAssembly(i) for i in range(N_FLOWS))
        self.channel_mask = nn.Parameter(torch.eye(FULL))

    def graphs(self, xyz: torch.Tensor) -> List[torch.Tensor]:
        """The kNN graphs of the noisy patch: [12-NN (augmentation), then one per flow 0–4], each (B, P, k)."""
        _, idx = knn_points(xyz, xyz, max(PRE_KS))  # sorted, self first; smaller k are prefixes
        return [idx[..., :AUG_K]] + [idx[..., :k] for k in PRE_KS]

    def latent(self, xyz: torch.Tensor, eps: torch.Tensor, graphs: List[torch.Tensor]) -> torch.Tensor:
        """The forward flow f(cat[xyz, aug(ε)]) → z (B, P, 35)."""
        x = torch.cat([xyz, self.argument(xyz, graphs[0], eps)], dim=-1)
        for i, flow in enumerate(self.flow_assemblies):
            x = flow(x, graphs[1 + i] if i < len(PRE_KS) else None)
        return x

    def forward(self, xyz: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        graphs = self.graphs(xyz)
        z = torch.matmul(self.latent(xyz, eps, graphs), self.channel_mask.t())  # LCC: einsum('ij,bnj->bni')
        for i in reversed(range(N_FLOWS)):
            flow = self.flow_assemblies[i]
            z = flow.inverse(z, graphs[1 + i] if i < len(PRE_KS) else None, torch.inverse(flow.permutate1.permutater.W))
        return z[..., :IN_CHANNEL]
