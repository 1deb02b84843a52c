"""Speed of ``iterativepfn`` inference: a reference-style path vs sbdbench's path, same input, same process.

    python benchmarks/iterativepfn_speed.py [--weights PATH|official] [--threads 1] [--n 10000]

* reference-style: the original's structure (models/feature.py, models/dynamic_edge_conv.py,
  models/denoise.py ``patch_based_denoise``) in plain torch, with no PyTorch3D/PyG: a flat edge list from a dense
  brute-force kNN (k + 1, self loops removed), per edge ``mlp(cat[x_i, x_j − x_i])`` with its BatchNorm layers,
  scatter-max into the targets, the plain FPS loop, ``int(N / (seed_k_alpha · 1000))`` patches per batch and
  the original's stitching (a dense S × N distance table and one mask per point).
* sbdbench: :class:`sbdbench.methods.learned.iterativepfn.IterativePFN` (first EdgeConv layer per point instead
  of per edge, BatchNorm folded, dense neighbour index, KD-tree kNN/FPS on CPU, vectorised stitching).

Without the released checkpoint (``official`` not fetched) the network gets deterministic random weights
(torch's default initialisation, seed 0, output layer × 0.05): the speed and the equality of the two paths do not
depend on the values. Prints both times, the ratio and CD(ours, reference-style) / CD(reference-style, clean).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from sbdbench.geometry import _fps_torch, normalize_unit_sphere
from sbdbench.methods import make_method
from sbdbench.methods.learned.iterativepfn.network import IterativePFNNet
from sbdbench.methods.learned.knn import knn_points
from speed_inputs import torus_input  # the shared input (benchmarks/ is on sys.path)




# --- the reference-style path ---------------------------------------------------------------------------
def _dense_knn(q, r, k):
    d = ((q.unsqueeze(2) - r.unsqueeze(1)) ** 2).sum(-1)  # brute force, as PyTorch3D's kernel
    return d.topk(k, dim=-1, largest=False)


def _edge_index(x, k):
    """get_edge_index: (B, P, C) → flat [source j; target i] with self loops removed."""
    b, p, _ = x.shape
    cols = _dense_knn(x, x, k + 1).indices + (p * torch.arange(b)).view(b, 1, 1)
    rows = (torch.arange(p).view(1, p, 1) + (p * torch.arange(b)).view(b, 1, 1)).expand(b, p, k + 1)
    edge = torch.stack([cols.reshape(-1), rows.reshape(-1)])
    return edge[:, edge[0] != edge[1]]


def _edge_conv(conv, x, edge):
    """EdgeConv.forward with MessagePassing(aggr='max'): per-edge MLP on cat[x_i, x_j − x_i], scatter max."""
    j, i = edge
    x_i = x[i]
    msg = conv.mlp(torch.cat([x_i, x[j] - x_i], dim=1))
    out = torch.zeros(x.shape[0], msg.shape[1]).scatter_reduce(0, i[:, None].expand_as(msg), msg, "amax", include_self=False)
    return out + conv.lin(x)


def _feature_extraction(m, x):
    b, p, _ = x.shape
    flat = lambda t: t.reshape(b * p, -1)  # noqa: E731
    x1 = _edge_conv(m.conv1, flat(x), _edge_index(x, m.k)).view(b, p, -1)
    x2 = _edge_conv(m.conv2, flat(x1), _edge_index(x1, m.k)).view(b, p, -1)
    x3 = _edge_conv(m.conv3, flat(x2), _edge_index(x2, m.k)).view(b, p, -1)
    x4 = _edge_conv(m.conv4, flat(torch.cat([x1, x2, x3], -1)), _edge_index(x3, m.k)).view(b, p, -1)
    return m.head(x4)


def reference_style_denoise(net, points, patch_size=1000, seed_k=6, seed_k_alpha=10):
    n = points.shape[0]
    s = int(seed_k * n / patch_size)
    seeds = points[_fps_torch(points, s, 0)]
    dists, idx = _dense_knn(seeds[None], points[None], patch_size)
    dists, idx = dists[0], idx[0]
    patches = points[idx] - seeds[:, None]
    dists = dists / dists[:, -1:]
    all_dists = torch.full((s, n), float("inf"))
    for row, (pi, pd) in enumerate(zip(idx, dists)):
        all_dists[row, pi] = pd
    best = torch.exp(-all_dists).max(dim=0).indices
    step = max(1, int(n / (seed_k_alpha * patch_size)))
    outs = []
    with torch.no_grad():
        for start in range(0, s, step):
            x = patches[start:start + step]
            for m in net.feature_nets:
                x = x + _feature_extraction(m, x)
            outs.append(x)
    out = torch.cat(outs) + seeds[:, None]
    return torch.cat([out[p][idx[p] == q] for q, p in enumerate(best.tolist())])


def _cd(a, b) -> float:
    ta, tb = (torch.as_tensor(np.asarray(x, np.float32))[None] for x in (a, b))
    return float(knn_points(ta, tb, 1)[0].mean() + knn_points(tb, ta, 1)[0].mean())


def _weights(spec: str, tmp: str) -> str:
    if spec != "official" or make_method("iterativepfn").unavailable_reason() is None:
        return spec
    torch.manual_seed(0)
    net = IterativePFNNet()
    with torch.no_grad():
        for m in net.feature_nets:
            m.linear3.weight.mul_(0.05)
            m.linear3.bias.mul_(0.05)
    torch.save({"state_dict": net.state_dict()}, tmp)
    print("official weights not fetched: deterministic random weights (speed and equality do not depend on them)")
    return tmp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="official")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=10000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    weights = _weights(args.weights, "/tmp/iterativepfn_speed_weights.pt")
    noisy, clean, what = torus_input(args.n)
    print(f"input: {what}, {len(noisy)} points; threads={args.threads}; load average {os.getloadavg()[0]:.2f}")
    method = make_method("iterativepfn", weights=weights)
    net, _ = method.load()
    unit, center, scale = normalize_unit_sphere(noisy)
    t = time.perf_counter()
    ours = method.denoise(noisy, noise_level=0.02)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    ref = reference_style_denoise(net, torch.as_tensor(unit, dtype=torch.float32)).double().numpy() * scale + center
    t_ref = time.perf_counter() - t
    _, c, sc = normalize_unit_sphere(clean)
    u = lambda p: (np.asarray(p) - c) / sc  # noqa: E731
    ratio = _cd(u(ours), u(ref)) / _cd(u(ref), u(clean))
    print(f"reference-style {t_ref:.1f} s | sbdbench {t_ours:.1f} s | speed-up {t_ref / t_ours:.2f}x | "
          f"CD(ours, ref) / CD(ref, clean) = {ratio:.2e} | load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
