"""How time and peak memory grow with N: seconds and peak RSS of ``denoise`` at 50K, 200K, 1M (and 5M for the fast
classical methods), and the fitted exponent b of time ≈ a · N^b.

The input is built here: a torus (a procedural shape) sampled uniformly at N points in its unit sphere, with the
scanner-ray noise model of :mod:`sbdbench.data.noise` (σ = 1 %). Each (method, N) runs in a fresh process that
loads the saved cloud and calls :func:`sbdbench.methods.blocks.denoise_in_blocks` with the method's frozen
settings for that cloud, so its peak RSS is that run's alone (interpreter and libraries included).

    OMP_NUM_THREADS=1 python benchmarks/scaling.py                        # the full grid (hours for score/sbd)
    python benchmarks/scaling.py --sizes 20000,50000 --methods pca,jet    # a smoke run
    python benchmarks/scaling.py --max-memory 2GB                         # under a cap (blocks when needed)

Learned methods need their weights (``score:weights=official`` under $SBDBENCH_HOME; sbd ships its own).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DEFAULT_METHODS = "pca,bilateral,jet,score:weights=official,sbd"
FAST = ("pca", "bilateral")
SIGMA = 0.01


def make_cloud(n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) noisy torus in its unit sphere: uniform samples plus scanner-ray noise at σ = 1 %."""
    import trimesh

    from sbdbench.data.noise import add_noise
    from sbdbench.data.sampling import sample_uniform
    from sbdbench.geometry import normalize_unit_sphere

    mesh = trimesh.creation.torus(0.7, 0.3, 256, 128)
    clean = normalize_unit_sphere(sample_uniform(mesh.vertices, mesh.faces, n, seed))[0]
    return add_noise(clean, SIGMA, kind="scanner_ray", seed=seed + 1)


def child(spec: str, path: str, max_memory_mb: float | None) -> None:
    """One measured run (in its own process): prints {"seconds", "rss_mb", "n_out"} as JSON."""
    import resource
    import time

    from sbdbench.bench.cell import _peak_rss_mb
    from sbdbench.methods import resolve_method
    from sbdbench.methods.blocks import denoise_in_blocks

    points = np.load(path)
    method = resolve_method(spec, len(points), SIGMA).method
    t0 = time.perf_counter()
    out = denoise_in_blocks(method, points, noise_level=SIGMA, max_memory_mb=max_memory_mb)
    seconds = time.perf_counter() - t0
    # VmHWM: the peak of this process's own memory since exec (ru_maxrss would carry the parent's RSS at fork)
    rss_mb = _peak_rss_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "n_out": len(out)}))


def measure(spec: str, path: Path, max_memory: str | None, timeout_s: float) -> dict:
    cmd = [sys.executable, __file__, "--child", spec, str(path)] + (["--max-memory", max_memory] if max_memory else [])
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout_s:.0f} s"}
    if res.returncode != 0:
        return {"error": (res.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def fitted_exponent(sizes, seconds) -> float:
    """b of the least-squares fit log t = log a + b log N (nan with fewer than two points)."""
    if len(sizes) < 2:
        return float("nan")
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50000,200000,1000000")
    parser.add_argument("--fast-sizes", default="5000000", help="extra sizes for pca and bilateral only")
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--max-memory", default=None, help="e.g. 2GB (denoise --max-memory)")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per run")
    parser.add_argument("--child", nargs=2, metavar=("SPEC", "NPY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from sbdbench.methods.blocks import parse_memory

        child(args.child[0], args.child[1], parse_memory(args.max_memory) if args.max_memory else None)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    extra = [int(s) for s in args.fast_sizes.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp:
        clouds = {}
        for n in sorted(set(sizes + extra)):
            clouds[n] = Path(tmp) / f"cloud_{n}.npy"
            np.save(clouds[n], make_cloud(n))
        print(f"{'method':28s} {'N':>9s} {'seconds':>9s} {'peak RSS MB':>12s} {'points/s':>10s}")
        for spec in [m for m in args.methods.split(",") if m]:
            grid = sizes + (extra if spec.split(":")[0] in FAST else [])
            done_n, done_t = [], []
            for n in grid:
                row = measure(spec, clouds[n], args.max_memory, args.timeout)
                if "error" in row:
                    print(f"{spec:28s} {n:9d}  {row['error']}")
                    continue
                done_n.append(n)
                done_t.append(row["seconds"])
                print(f"{spec:28s} {n:9d} {row['seconds']:9.2f} {row['rss_mb']:12.0f} {n / row['seconds']:10.0f}", flush=True)
            print(f"{spec:28s} fitted exponent of time vs N: {fitted_exponent(done_n, done_t):.2f}")


if __name__ == "__main__":
    main()
