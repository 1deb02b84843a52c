"""Speed and peak memory of every classical denoiser at 10K and 50K points, on at most 2 cores.

Target (issue 4): ≤ 5 s per 50K-point cloud (WLOP ≤ 15 s). Each method runs with its frozen settings
for σ = 2 % (``baselines/<method>.toml``, nearest cell). Timings on a shared machine vary, so each
line also prints the ratio to a baseline measured in the same process: one cKDTree build + 32-NN
query on the same cloud.

    python benchmarks/classical_speed.py [--sizes 10000,50000] [--sigma 0.02] [--methods jet,pca] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import numpy as np


def limit_to_two_cores() -> int:
    try:
        cpus = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, cpus)
        return len(cpus)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def test_cloud(n: int, sigma: float, seed: int = 0) -> np.ndarray:
    """A noisy unit sphere: the cost of these methods depends on N and k, not on the shape."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    return p + sigma * rng.normal(size=p.shape)


def baseline_seconds(points: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    t0 = time.perf_counter()
    cKDTree(points).query(points, k=33, workers=-1)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,50000")
    ap.add_argument("--sigma", type=float, default=0.02)
    ap.add_argument("--methods", default=None, help="comma-separated (default: every classical method)")
    ap.add_argument("--csv", default=None, help="also write the table as CSV")
    ap.add_argument("--separate-memory-run", action="store_true", help="time a second, untraced run")
    args = ap.parse_args()
    cores = limit_to_two_cores()
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    import sbdbench.methods.classical as classical  # noqa: F401  (registers them)
    from sbdbench.methods.base import available_methods, get_method_class, make_method
    from sbdbench.methods.settings import frozen_params

    names = args.methods.split(",") if args.methods else [
        n for n in available_methods() if get_method_class(n).__module__.startswith("sbdbench.methods.classical")]
    limits = {"wlop": 15.0}
    rows = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cores: {cores}; load average {load:.1f}; σ = {args.sigma:g}; frozen settings from baselines/ (nearest cell)")
    print(f"{'method':<10} {'N':>6} {'seconds':>8} {'x kNN':>7} {'peak MB':>8}  {'target':>7}  params")
    for n in [int(s) for s in args.sizes.split(",")]:
        pts = test_cloud(n, args.sigma)
        base = min(baseline_seconds(pts) for _ in range(3))
        print(f"{'kNN k=32':<10} {n:>6} {base:>8.3f} {1.0:>7.1f}")
        for name in names:
            params = frozen_params(name, n, args.sigma)
            method = make_method(name, **params)
            # one run, timed while tracemalloc records the peak (numpy arrays are single allocations,
            # so tracing costs little here; --separate-memory-run times an untraced run as well)
            tracemalloc.start()
            t0 = time.perf_counter()
            method.denoise(pts, noise_level=args.sigma)
            seconds = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            if args.separate_memory_run:
                t0 = time.perf_counter()
                method.denoise(pts, noise_level=args.sigma)
                seconds = time.perf_counter() - t0
            target = limits.get(name, 5.0) if n >= 50000 else None
            verdict = "" if target is None else ("ok" if seconds <= target else "SLOW")
            print(f"{name:<10} {n:>6} {seconds:>8.2f} {seconds / base:>7.1f} {peak / 2**20:>8.0f}  "
                  f"{(f'≤{target:g}s ' + verdict) if target else '':>7}  {params}")
            rows.append({"method": name, "n_points": n, "seconds": seconds, "ratio_to_knn": seconds / base,
                         "peak_mem_mb": peak / 2 ** 20, "target_s": target, "params": str(params)})
    if args.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
