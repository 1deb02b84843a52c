"""The ScoreDenoise conditional score network, and its folded inference form.

:class:`ScoreNet` has the architecture and parameter names of ScoreDenoise's ``ScoreNet`` (a 1×1
``Conv1d`` to 128 channels, 4 conditional ResNet blocks BN-ReLU-Conv-BN-ReLU-Conv plus an injected
condition ``fc_c``, then BN-ReLU-Conv to 3), so the released ``score_net.*`` weights load unchanged.
It runs channels-last (a 1×1 convolution is a linear layer on the last axis), which gives the same
numbers as the channels-first original, BatchNorm statistics included.

The input of every block's condition is ``c_xyz = [x_j − x_i, feat_i]``. Its feature part does not
change during denoising, so :class:`FoldedScoreNet` (eval only) projects it **once** per point
(:meth:`FoldedScoreNet.condition`) and, at each step, only the 3-d offset is projected. It also folds
each eval-mode BatchNorm that follows a linear layer into that layer.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn
from torch.nn import functional as F


def _linear_of(conv: nn.Conv1d) -> Tuple[torch.Tensor, torch.Tensor]:
    """A 1×1 Conv1d as (weight (out, in), bias (out,))."""
    return conv.weight.squeeze(-1), conv.bias


class ResnetBlockConv1d(nn.Module):
    """BN → ReLU → fc_0 → BN → ReLU → fc_1, plus the input and the projected condition ``fc_c(c)``."""

    def __init__(self, c_dim: int, size: int):
        super().__init__()
        self.bn_0 = nn.BatchNorm1d(size)
        self.bn_1 = nn.BatchNorm1d(size)
        self.fc_0 = nn.Conv1d(size, size, 1)
        self.fc_1 = nn.Conv1d(size, size, 1)
        self.fc_c = nn.Conv1d(c_dim, size, 1)
        nn.init.zeros_(self.fc_1.weight)  # as the original: each block starts as the identity

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x (M, size), c (M, c_dim) → (M, size), channels-last."""
        h = F.linear(torch.relu(self.bn_0(x)), *_linear_of(self.fc_0))
        dx = F.linear(torch.relu(self.bn_1(h)), *_linear_of(self.fc_1))
        return x + dx + F.linear(c, *_linear_of(self.fc_c))


class ScoreNet(nn.Module):
    """Score of the points around a centre point, conditioned on the centre's feature.

    Args:
        z_dim: feature width (60).
        dim: point dimension (3).
        out_dim: score dimension (3).
        hidden_size: 128.
        num_blocks: 4.
    """

    def __init__(self, z_dim: int = 60, dim: int = 3, out_dim: int = 3, hidden_size: int = 128, num_blocks: int = 4):
        super().__init__()
        self.z_dim, self.dim, self.out_dim = z_dim, dim, out_dim
        self.hidden_size, self.num_blocks = hidden_size, num_blocks
        c_dim = z_dim + dim
        self.conv_p = nn.Conv1d(c_dim, hidden_size, 1)
        self.blocks = nn.ModuleList([ResnetBlockConv1d(c_dim, hidden_size) for _ in range(num_blocks)])
        self.bn_out = nn.BatchNorm1d(hidden_size)
        self.conv_out = nn.Conv1d(hidden_size, out_dim, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x (B, K, dim) offsets of K points from their centre, c (B, z_dim) the centre's feature → (B, K, out_dim)."""
        b, k, _ = x.shape
        c_xyz = torch.cat([x, c.unsqueeze(1).expand(b, k, c.shape[-1])], dim=-1).reshape(b * k, -1)
        net = F.linear(c_xyz, *_linear_of(self.conv_p))
        for block in self.blocks:
            net = block(net, c_xyz)
        out = F.linear(torch.relu(self.bn_out(net)), *_linear_of(self.conv_out))
        return out.reshape(b, k, self.out_dim)


def _linear_relu_mkldnn(x: torch.Tensor, w_in_out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """relu(x @ w + b) with bias and ReLU fused into oneDNN's GEMM (CPU; same numbers, two fewer passes)."""
    return torch.ops.mkldnn._linear_pointwise(x, w_in_out.t(), bias, "relu", [], "")


def _linear_relu(x: torch.Tensor, w_in_out: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """relu(x @ w + b), x (M, in), w (in, out): fused on CPU when oneDNN offers it, plain addmm otherwise."""
    if x.device.type == "cpu" and _FUSED_OK:
        return _linear_relu_mkldnn(x, w_in_out, bias)
    return torch.addmm(bias, x, w_in_out).relu_()


def _probe_fused() -> bool:
    try:
        x, w, b = torch.randn(8, 4), torch.randn(4, 3), torch.randn(3)
        return bool(torch.allclose(_linear_relu_mkldnn(x, w, b), torch.addmm(b, x, w).relu_(), atol=1e-6))
    except Exception:  # an older torch or a build without oneDNN
        return False


_FUSED_OK = _probe_fused()


def _bn_affine(bn: nn.BatchNorm1d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = x·scale + shift."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class FoldedScoreNet:
    """Inference form of an eval-mode :class:`ScoreNet`: same function, less work per step.

    * ``condition(feat)`` projects the per-point features through ``conv_p`` and every ``fc_c`` once:
      (P, z_dim) → (P, (num_blocks + 1)·hidden), biases included.
    * ``__call__(offsets, cond)`` then projects only the 3-d offsets and runs the blocks, with
      ``bn_1`` folded into ``fc_0``; ``bn_0``/``bn_out`` (they precede a ReLU and feed the residual) stay
      a fused multiply-add. All tensors are channels-last.

    Build it with :meth:`from_score_net`; it holds detached copies of the weights (no autograd).
    """

    def __init__(self, net: ScoreNet):
        with torch.no_grad():
            dim, h = net.dim, net.hidden_size
            xyz_w: List[torch.Tensor] = []
            feat_w: List[torch.Tensor] = []
            feat_b: List[torch.Tensor] = []
            for layer in [net.conv_p] + [blk.fc_c for blk in net.blocks]:
                w, b = _linear_of(layer)
                xyz_w.append(w[:, :dim])
                feat_w.append(w[:, dim:])
                feat_b.append(b)
            self.blocks = []
            for i, blk in enumerate(net.blocks):
                s0, t0 = _bn_affine(blk.bn_0)
                s1, t1 = _bn_affine(blk.bn_1)
                w0, b0 = _linear_of(blk.fc_0)
                w1, b1 = _linear_of(blk.fc_1)
                feat_b[i + 1] = feat_b[i + 1] + b1  # fc_1's bias joins the condition's
                self.blocks.append((s0.clone(), t0.clone(), (w0 * s1[:, None]).t().contiguous(), (b0 * s1 + t1).clone(), w1.t().contiguous()))
            self.xyz_weight = torch.cat(xyz_w, 0).t().contiguous()  # (dim, (nb+1)·h)
            self.feat_weight = torch.cat(feat_w, 0).t().contiguous()  # (z_dim, (nb+1)·h)
            self.feat_bias = torch.cat(feat_b, 0).contiguous()
            self.out_scale, self.out_shift = (t.clone() for t in _bn_affine(net.bn_out))
            w_out, b_out = _linear_of(net.conv_out)
            self.out_weight, self.out_bias = w_out.t().contiguous(), b_out.clone()
            self.hidden = h
            self.dim = dim

    @classmethod
    def from_score_net(cls, net: ScoreNet) -> "FoldedScoreNet":
        if net.training:
            raise ValueError("fold an eval-mode ScoreNet (call .eval() first): BatchNorm must use its running statistics")
        return cls(net)

    def condition(self, feat: torch.Tensor) -> torch.Tensor:
        """(P, z_dim) per-point features → (P, (num_blocks + 1)·hidden) precomputed condition."""
        return torch.addmm(self.feat_bias, feat, self.feat_weight)

    def __call__(self, offsets: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """offsets (P, K, dim) from each point, cond (P, ·) from :meth:`condition` → scores (P, K, out_dim).

        The residual stream is updated in place (``addmm_`` accumulates into it), so each block costs
        its two GEMMs plus a few passes over a (P·K, hidden) buffer.
        """
        p, k, _ = offsets.shape
        h, m = self.hidden, p * k
        flat = offsets.reshape(m, -1)
        net = torch.mm(flat, self.xyz_weight[:, :h])
        net.view(p, k, h).add_(cond[:, None, :h])
        for i, (s0, t0, w0, b0, w1) in enumerate(self.blocks):
            t = torch.addcmul(t0, net, s0).relu_()
            t = _linear_relu(t, w0, b0)
            net.addmm_(t, w1)  # + fc_1 (its bias is in the condition)
            lo, hi = (i + 1) * h, (i + 2) * h
            net.addmm_(flat, self.xyz_weight[:, lo:hi])  # + fc_c, offset part
            net.view(p, k, h).add_(cond[:, None, lo:hi])  # + fc_c, feature part (precomputed)
        t = torch.addcmul(self.out_shift, net, self.out_scale).relu_()
        return torch.addmm(self.out_bias, t, self.out_weight).reshape(p, k, -1)

    def to(self, device) -> "FoldedScoreNet":
        """Move every tensor to ``device`` (returns self)."""
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        self.blocks = [tuple(t.to(device) for t in blk) for blk in self.blocks]
        return self
