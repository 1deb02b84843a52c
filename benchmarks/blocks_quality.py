"""Blocks vs the whole cloud: CD to the clean cloud of ``denoise`` run whole and in spatial blocks, per method.

The cloud: a torus sampled uniformly at N points (50K by default) in its unit sphere, Gaussian noise σ = 2 %.
Each method runs with its frozen settings for that cloud, once on the whole cloud and once through
:func:`sbdbench.methods.blocks.denoise_in_blocks` with at most ``--block-points`` points per block (core +
overlap). The goal (issue #21): CD within 2 %. A method whose overlap spans the cloud at this N cannot be split
(it would need blocks larger than the cloud) and is reported as such.

    OMP_NUM_THREADS=1 SBDBENCH_HOME=... python benchmarks/blocks_quality.py
    python benchmarks/blocks_quality.py --n 20000 --methods pca,jet --block-points 8000   # a smoke run
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.spatial import cKDTree

DEFAULT_METHODS = "noisy,pca,bilateral,jet,mls,laplacian,taubin,graph_lap,wlop,score:weights=official,sbd,pdflow"


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """The protocol's CD (mean squared nearest distances, both ways)."""
    return float((cKDTree(b).query(a)[0] ** 2).mean() + (cKDTree(a).query(b)[0] ** 2).mean())


def main(argv=None) -> None:
    import trimesh

    from sbdbench.data.noise import add_noise
    from sbdbench.data.sampling import sample_uniform
    from sbdbench.errors import SbdbenchError
    from sbdbench.geometry import normalize_unit_sphere
    from sbdbench.methods import resolve_method
    from sbdbench.methods.blocks import denoise_in_blocks, plan_blocks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50000)
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--block-points", type=int, default=25000)
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    args = parser.parse_args(argv)
    mesh = trimesh.creation.torus(0.7, 0.3, 128, 64)
    clean = normalize_unit_sphere(sample_uniform(mesh.vertices, mesh.faces, args.n, 0))[0]
    noisy = add_noise(clean, args.sigma, seed=1)
    print(f"{'method':24s} {'blocks':>6s} {'CD whole':>9s} {'CD blocks':>9s} {'ratio':>7s} {'s whole':>8s} {'s blocks':>8s}")
    for spec in [m for m in args.methods.split(",") if m]:
        try:
            method = resolve_method(spec, args.n, args.sigma).method
            t0 = time.perf_counter()
            whole = method.denoise(noisy, noise_level=args.sigma)
            t1 = time.perf_counter()
            split = denoise_in_blocks(method, noisy, noise_level=args.sigma, block_points=args.block_points)
            t2 = time.perf_counter()
        except SbdbenchError as exc:
            print(f"{spec:24s} not run: {str(exc)[:140]}")
            continue
        n_blocks = len(plan_blocks(noisy, method.block_settings(noisy, args.sigma).margin, args.block_points)) if method.block_merge else 1
        cd_w, cd_b = chamfer(whole, clean), chamfer(split, clean)
        print(f"{spec:24s} {n_blocks:6d} {cd_w * 1e4:9.4f} {cd_b * 1e4:9.4f} {cd_b / cd_w:7.4f} {t1 - t0:8.1f} {t2 - t1:8.1f}", flush=True)


if __name__ == "__main__":
    main()
