"""Speed of ``score`` (ScoreDenoise) inference: reference-style path vs sbdbench's path, same input, one run.

    python benchmarks/score_speed.py [--weights PATH|official|project] [--threads 2] [--n 10000] [--n-large 50000]

* reference-style: the original's structure in plain torch (no PyTorch3D here): all patches in one
  batch, dense brute-force kNN at every step, the score network run channels-first (Conv1d) with its
  BatchNorm layers and the full 63-d condition recomputed at every one of the 30 steps, the plain FPS loop.
* sbdbench: :class:`sbdbench.methods.learned.score.ScoreDenoise` (conditioning precomputed once,
  BatchNorm folded, channels-last GEMMs with in-place accumulation, KD-tree kNN/FPS on CPU, batches
  of patches under a memory budget).

Prints both times, the ratio, and CD(ours, reference-style) relative to CD(reference-style, clean)
(the two must give the same cloud). Then the 50K run alone in a child process: seconds and peak RSS.
The machine may be shared: the ratio is meaningful, absolute times depend on the load (printed); the
process CPU time (all threads) is printed next to the wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from sbdbench.geometry import _fps_torch, normalize_unit_sphere
from sbdbench.methods import make_method
from sbdbench.methods.learned.knn import knn_gather, knn_points
from sbdbench.methods.learned.patches import num_seeds
from speed_inputs import torus_input  # the shared input (benchmarks/ is on sys.path)

REFERENCE_CKPT = Path(__file__).resolve().parents[2] / "shared" / "reference" / "score-denoise" / "ckpt.pt"




# --- the reference-style path (the original's algorithm, unoptimised) ------------------------------------
def _conv1x1(x, conv):
    return F.conv1d(x, conv.weight, conv.bias)


def _bn(x, bn):
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _score_channels_first(net, x, c):
    """ScoreNet.forward as the original computes it: (B, 3, K) channels-first, condition rebuilt each call."""
    p = x.transpose(1, 2)
    c_xyz = torch.cat([p, c.unsqueeze(2).expand(-1, -1, p.shape[2])], dim=1)
    h = _conv1x1(c_xyz, net.conv_p)
    for blk in net.blocks:
        dx = _conv1x1(torch.relu(_bn(_conv1x1(torch.relu(_bn(h, blk.bn_0)), blk.fc_0), blk.bn_1)), blk.fc_1)
        h = h + dx + _conv1x1(c_xyz, blk.fc_c)
    return _conv1x1(torch.relu(_bn(h, net.bn_out)), net.conv_out).transpose(1, 2)


def _dense_knn(q, r, k):
    d = ((q.unsqueeze(2) - r.unsqueeze(1)) ** 2).sum(-1)  # (B, N, M) brute force, as PyTorch3D's CPU kernel
    return d.topk(k, dim=-1, largest=False).indices


def reference_style_denoise(model, points: torch.Tensor, steps=30, step_size=0.2, decay=0.95) -> torch.Tensor:
    n = points.shape[0]
    seeds = points[_fps_torch(points, num_seeds(n), 0)]
    patches = points[_dense_knn(seeds[None], points[None], 1000)[0]]  # (S, 1000, 3), all in one batch
    with torch.no_grad():
        feat = model.feature_net(patches)
        b, p, _ = patches.shape
        cur = patches.clone()
        for t in range(steps):
            idx = _dense_knn(patches, cur, 4)
            frames = knn_gather(cur, idx) - patches.unsqueeze(2)
            grad = _score_channels_first(model.score_net, frames.reshape(-1, 4, 3), feat.reshape(b * p, -1)).reshape(b, -1, 3)
            acc = torch.zeros_like(cur).scatter_add_(1, idx.reshape(b, -1, 1).expand(-1, -1, 3), grad)
            cur = cur + step_size * decay**t * acc
    pool = cur.reshape(-1, 3)
    return pool[_fps_torch(pool, n, 0)]


def _cd(a, b) -> float:
    ta, tb = (torch.as_tensor(np.asarray(x, np.float32))[None] for x in (a, b))
    return float(knn_points(ta, tb, 1)[0].mean() + knn_points(tb, ta, 1)[0].mean())


def _large_child(args) -> None:
    """Run inside a child process: one 50K denoising; prints seconds; the parent reads the peak RSS."""
    noisy, _, _ = torus_input(args.n_large)
    method = make_method("score", weights=args.weights)
    method.load()
    t, c = time.perf_counter(), time.process_time()
    out = method.denoise(noisy, noise_level=0.02)
    print(f"{time.perf_counter() - t:.2f} {len(out)} {time.process_time() - c:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=str(REFERENCE_CKPT) if REFERENCE_CKPT.is_file() else "official")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--n-large", type=int, default=50000)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--large-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.large_child:
        return _large_child(args)

    noisy, clean, source = torus_input(args.n)
    print(f"input: {source}, {len(noisy)} points, σ = 2 %; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    unit, center, scale = normalize_unit_sphere(noisy)
    clean_unit = (clean - center) / scale
    method = make_method("score", weights=args.weights, niters=1)
    model, _, _ = method.load()

    t, c = time.perf_counter(), time.process_time()
    ours = method._denoise_unit(unit.copy(), 0.02)
    t_ours, c_ours = time.perf_counter() - t, time.process_time() - c
    print(f"sbdbench path:        {t_ours:7.2f} s wall, {c_ours:7.2f} s CPU  (CD to clean {_cd(ours, clean_unit) * 1e4:.3f}e-4, noisy {_cd(unit, clean_unit) * 1e4:.3f}e-4)")
    if not args.skip_reference:
        t, c = time.perf_counter(), time.process_time()
        ref = reference_style_denoise(model, torch.as_tensor(unit, dtype=torch.float32)).numpy()
        t_ref, c_ref = time.perf_counter() - t, time.process_time() - c
        rel = _cd(ours, ref) / _cd(ref, clean_unit)
        print(f"reference-style path: {t_ref:7.2f} s wall, {c_ref:7.2f} s CPU  → speed-up {t_ref / t_ours:.2f}x wall, {c_ref / c_ours:.2f}x CPU; CD(ours, ref) = {rel * 100:.3f} % of CD(ref, clean)")
    if not args.skip_large:
        cmd = [sys.executable, __file__, "--large-child", "--weights", args.weights, "--threads", str(args.threads), "--n-large", str(args.n_large)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"{args.n_large} points: {float(out[0]):.2f} s wall, {float(out[2]):.2f} s CPU, {out[1]} points out, peak RSS of the process {peak_mb:.0f} MB "
              f"(includes Python + torch, about 300 MB)")


if __name__ == "__main__":
    main()
