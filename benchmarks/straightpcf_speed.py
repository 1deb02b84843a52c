"""Speed of ``straightpcf`` inference: reference-style path vs sbdbench's path, same input, same weights, one run.

    python benchmarks/straightpcf_speed.py [--weights PATH|official] [--threads 1] [--n 10000]

* reference-style: the original's structure in plain torch (no PyTorch3D / PyG here): the plain FPS loop,
  dense brute-force kNN (``((x_i − x_j)²).sum`` over all pairs, as PyTorch3D's kernel; the 1000-NN patches and
  every graph, feature space included), PyG-style EdgeConv on a flat edge list (``remove_self_loops``, the
  message MLP on ``[x_i, x_j − x_i]`` for every edge, ``scatter_reduce(amax)``), N/1000 patches per batch
  (seed_k_alpha 1), and utils/denoise.py's dense (S, N) weight table with its per-point stitching loop.
* sbdbench: :class:`sbdbench.methods.learned.straightpcf.StraightPCFDenoiser` (first message layer split into
  two per-point products, dense (B, N, K) neighbour tables, KD-tree / matrix-product kNN with exact re-ranking,
  KD-tree FPS, scatter-based stitching).

Without ``--weights`` the full architecture (2 velocity modules + the distance module) runs with seeded random
weights: the released ckpt_straightpcf.pt is not available here, and the cost does not depend on the values.
Prints both times, the ratio, and CD(ours, reference-style) relative to CD(reference-style, clean).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from sbdbench.geometry import _fps_torch, normalize_unit_sphere
from sbdbench.methods import make_method
from sbdbench.methods.learned.knn import knn_points
from sbdbench.methods.learned.straightpcf.network import StraightPCF
from speed_inputs import torus_input  # the shared input (benchmarks/ is on sys.path)




# --- the reference-style path (the original's algorithm, unoptimised) ------------------------------------
def _dense_knn(q, r, k, chunk=64):
    """(B, N, D), (B, M, D) → (squared distances, indices) (B, N, k): all pairs, stable sort."""
    ds, ids = [], []
    for s in range(0, q.shape[1], chunk):
        d = ((q[:, s:s + chunk, None] - r[:, None]) ** 2).sum(-1)
        order = d.argsort(dim=-1, stable=True)[..., :k]
        ds.append(torch.gather(d, 2, order))
        ids.append(order)
    return torch.cat(ds, 1), torch.cat(ids, 1)


def _edge_conv(conv, x, edge_index):
    src, dst = edge_index
    msg = conv.mlp(torch.cat([x[dst], x[src] - x[dst]], dim=1))
    out = torch.zeros(x.shape[0], msg.shape[1]).scatter_reduce_(0, dst[:, None].expand(-1, msg.shape[1]), msg, "amax", include_self=False)
    return out + conv.lin(x)


def _edges(x, k):
    b, n, _ = x.shape
    cols = (_dense_knn(x, x, k + 1)[1] + n * torch.arange(b).view(b, 1, 1)).reshape(1, -1)
    rows = (torch.arange(n).view(1, n, 1).repeat(b, 1, k + 1) + n * torch.arange(b).view(b, 1, 1)).reshape(1, -1)
    edge = torch.cat([cols, rows], 0)
    return edge[:, edge[0] != edge[1]]


def _encoder(enc, x):
    b, n, _ = x.shape
    if enc.distance_estimation:
        x = x / (x**2).sum(-1, keepdim=True).sqrt().max(-2, keepdim=True)[0]
    x1 = _edge_conv(enc.conv1, x.reshape(b * n, -1), _edges(x, enc.k)).reshape(b, n, -1)
    x2 = _edge_conv(enc.conv2, x1.reshape(b * n, -1), _edges(x1, enc.k)).reshape(b, n, -1)
    return _edge_conv(enc.conv3, torch.cat([x1, x2], -1).reshape(b * n, -1), _edges(x2, enc.k)).reshape(b, n, -1)


def _flow(net, x, tot_its):
    b, n, d = x.shape
    feat = _encoder(net.encoder, x)
    pred_d = net.decoder(feat.reshape(-1, feat.shape[2]), b, n).reshape(b, 1, 1)
    m = len(net.velocity_nets)
    for _ in range(tot_its):
        for vm in net.velocity_nets:
            f = _encoder(vm.encoder, x)
            x = x + (1 / tot_its) * (1 / m) * pred_d * vm.decoder(f.reshape(-1, f.shape[2])).reshape(b, n, d)
    return x


def reference_style_denoise(net, points: torch.Tensor, tot_its: int, patch_size=1000, seed_k=6) -> torch.Tensor:
    n = points.shape[0]
    s = int(seed_k * n / patch_size)
    seeds = points[_fps_torch(points, s, 0)]
    d2, idx = _dense_knn(seeds[None], points[None], patch_size)
    d2, idx = d2[0], idx[0]
    patches = points[idx] - seeds[:, None]
    d2 = d2 / d2[:, -1:]
    all_dists = torch.full((s, n), float("inf"))
    for row, pid, pd in zip(all_dists, idx, d2):
        row[pid] = pd
    best = torch.max(torch.exp(-all_dists), dim=0)[1]
    step = int(n / patch_size)
    with torch.no_grad():
        out = torch.cat([_flow(net, patches[i:i + step], tot_its) for i in range(0, s, step)]) + seeds[:, None]
    return torch.cat([out[p][idx[p] == i] for i, p in enumerate(best)])


def _cd(a, b) -> float:
    ta, tb = (torch.as_tensor(np.asarray(x, np.float32))[None] for x in (a, b))
    return float(knn_points(ta, tb, 1)[0].mean() + knn_points(tb, ta, 1)[0].mean())


def _random_weights(path) -> None:
    torch.manual_seed(0)
    net = StraightPCF(2)
    state = {k: (0.05 * v if "lin_3" in k else v) for k, v in net.state_dict().items()}
    torch.save({"state_dict": state}, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None, help="a full-model checkpoint (default: seeded random weights)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    weights = args.weights
    if weights is None:
        weights = f"/tmp/straightpcf_speed_random_{os.getpid()}.pt"
        _random_weights(weights)
    noisy, clean, source = torus_input(args.n)
    print(f"input: {source}, {len(noisy)} points, σ = 2 %, one pass; weights {args.weights or 'seeded random (full architecture)'}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    unit, center, scale = normalize_unit_sphere(noisy)
    clean_unit = (clean - center) / scale
    method = make_method("straightpcf", weights=weights, niters=1)
    kind, net, tot_its = method.load()
    if kind != "straightpcf":
        raise SystemExit(f"the benchmark needs a full StraightPCF checkpoint, got a {kind} file")

    t, c = time.perf_counter(), time.process_time()
    ours = method._denoise_unit(unit.copy(), 0.01)
    t_ours, c_ours = time.perf_counter() - t, time.process_time() - c
    print(f"sbdbench path:        {t_ours:7.2f} s wall, {c_ours:7.2f} s CPU  (CD to clean {_cd(ours, clean_unit) * 1e4:.3f}e-4, noisy {_cd(unit, clean_unit) * 1e4:.3f}e-4)")
    if not args.skip_reference:
        t, c = time.perf_counter(), time.process_time()
        ref = reference_style_denoise(net, torch.as_tensor(unit, dtype=torch.float32), tot_its).numpy()
        t_ref, c_ref = time.perf_counter() - t, time.process_time() - c
        rel = _cd(ours, ref) / _cd(ref, clean_unit)
        print(f"reference-style path: {t_ref:7.2f} s wall, {c_ref:7.2f} s CPU  → speed-up {t_ref / t_ours:.2f}x wall, {c_ref / c_ours:.2f}x CPU; "
              f"CD(ours, ref) = {rel * 100:.4f} % of CD(ref, clean); {len(ref)} reference points")


if __name__ == "__main__":
    main()
