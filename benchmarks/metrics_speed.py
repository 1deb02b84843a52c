"""Speed and memory of the metric backends, measured in one process (ratios, not absolute claims).

Input (built here, deterministic): an icosphere(6) deformed radially and anisotropically
(81,920 faces), normalised to the unit sphere; 50,000 area-weighted surface samples + N(0, 0.02)
noise as the prediction, an independent 50,000-point clean sample as the GT cloud.

Prints, each the median of --repeats calls including tree/BVH builds:
  * P2M exact on the CPU backend (libigl P2F + KD-pruned F2P, float64)   target ≤ 0.5 s
  * P2M pytorch3d mode on the CPU backend (float64)
  * Chamfer 50K × 50K on the CPU backend (cKDTree)                     target ≤ 0.1 s
  * P2M exact with the torch brute force (float32, one pass), once     target ≥ 100× slower than the CPU backend
and the agreement of the two P2M values, plus memory: tracemalloc peak (numpy allocations) per
CPU stage and the process's peak RSS after each stage.

    python benchmarks/metrics_speed.py               # the full comparison (the brute force takes minutes)
    python benchmarks/metrics_speed.py --torch-points 5000   # brute force on a 10% slice, time scaled ×10 (labelled)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import tracemalloc

import numpy as np
import torch
import trimesh

from sbdbench.metrics import chamfer, p2m


def build_input(n_points: int, seed: int = 0):
    mesh = trimesh.creation.icosphere(6)
    v = mesh.vertices * np.array([1.3, 1.0, 0.8])
    v = v * (1 + 0.1 * np.sin(4 * v[:, :1]) * np.cos(3 * v[:, 1:2]))
    c = (v.max(0) + v.min(0)) / 2
    v = (v - c) / np.linalg.norm(v - c, axis=1).max()
    mesh = trimesh.Trimesh(v, mesh.faces, process=False)
    clean, _ = trimesh.sample.sample_surface(mesh, n_points, seed=seed)
    gt, _ = trimesh.sample.sample_surface(mesh, n_points, seed=seed + 1)
    pred = clean + np.random.default_rng(seed).normal(0, 0.02, clean.shape)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces), pred, gt


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def timed(fn, repeats: int):
    """(median wall seconds, median CPU seconds of this process, last value, tracemalloc peak MB).

    On a shared machine the wall time includes waiting for a core; the process CPU time (all
    threads) does not, so it shows what a quiet machine would take (upper bound with 1 core)."""
    times, cpu, value = [], [], None
    tracemalloc.start()
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        value = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), statistics.median(cpu), value, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--torch-points", type=int, default=None, help="time the brute force on the first K points only and scale linearly")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads for the brute force (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--device", default="cpu", help="device for the brute force (cuda to time the GPU backend)")
    args = ap.parse_args()

    verts, faces, pred, gt = build_input(args.points)
    print(f"input: {len(faces):,} faces, {len(pred):,} predicted points, {len(gt):,} GT points; "
          f"torch {torch.__version__}, {torch.get_num_threads()} default threads")
    p2m(pred[:100], verts, faces)  # import libigl etc. outside the timings

    t_exact, c_exact, v_exact, m_exact = timed(lambda: p2m(pred, verts, faces), args.repeats)
    print(f"P2M exact, CPU backend (fp64):        {t_exact:8.3f} s wall {c_exact:7.3f} s CPU   value {v_exact:.6e}   tracemalloc peak {m_exact:7.1f} MB   RSS peak {rss_mb():7.0f} MB")
    t_pt3d, c_pt3d, v_pt3d, m_pt3d = timed(lambda: p2m(pred, verts, faces, mode="pytorch3d"), args.repeats)
    print(f"P2M pytorch3d, CPU backend (fp64):    {t_pt3d:8.3f} s wall {c_pt3d:7.3f} s CPU   value {v_pt3d:.6e}   tracemalloc peak {m_pt3d:7.1f} MB   RSS peak {rss_mb():7.0f} MB")
    t_cd, c_cd, v_cd, m_cd = timed(lambda: chamfer(pred, gt), args.repeats)
    print(f"Chamfer {len(pred)//1000}K x {len(gt)//1000}K, CPU backend:        {t_cd:8.3f} s wall {c_cd:7.3f} s CPU   value {v_cd:.6e}   tracemalloc peak {m_cd:7.1f} MB   RSS peak {rss_mb():7.0f} MB")

    torch.set_num_threads(args.torch_threads)
    k = args.torch_points or len(pred)
    dev = torch.device(args.device)
    from sbdbench.metrics import point_mesh_terms

    t0, c0 = time.perf_counter(), time.process_time()

    if k == len(pred):
        v_torch = p2m(pred, verts, faces, device=dev, backend="torch")
        t_torch = time.perf_counter() - t0
        label = "measured"
    else:  # the brute force is linear in the number of points: every chunk of rows scans all faces
        p2f, _ = point_mesh_terms(pred[:k], verts, faces, device=dev, backend="torch")
        t_torch = (time.perf_counter() - t0) * len(pred) / k
        v_torch = float("nan")
        label = f"extrapolated from {k:,} points ×{len(pred) / k:.1f}"
    if dev.type == "cuda":
        torch.cuda.synchronize()
    c_torch = (time.process_time() - c0) * len(pred) / k
    print(f"P2M exact, torch brute force (fp32, {args.torch_threads} thread(s), {dev}): {t_torch:8.1f} s wall {c_torch:8.1f} s CPU ({label})   RSS peak {rss_mb():7.0f} MB")
    print()
    print(f"ratio torch brute force / CPU exact backend: {t_torch / t_exact:8.0f}x wall, {c_torch / c_exact:8.0f}x CPU time   (target ≥ 100x)")
    print(f"P2M exact CPU: {t_exact:.3f} s wall, {c_exact:.3f} s CPU (target ≤ 0.5 s); Chamfer: {t_cd:.3f} s wall, {c_cd:.3f} s CPU (target ≤ 0.1 s)")
    if np.isfinite(v_torch):
        print(f"agreement: |torch fp32 − CPU fp64| / CPU = {abs(v_torch - v_exact) / v_exact:.2e}")
    print(f"pytorch3d-mode / exact P2M on this input: {v_pt3d / v_exact:.4f}")


if __name__ == "__main__":
    main()
