"""Why the kNN methods run in kd-tree leaf order and query in chunks: the same pass, three ways, one process.

    python benchmarks/classical_order.py [--n 1000000] [--methods pca,bilateral] [--sigma 0.01]

For each method (its frozen settings for the cloud, so k = 200 at 1M points) one pass is timed

* ``whole, input order``: the earlier path (:func:`reference_pass`): one (N, k) kNN query of the whole cloud (distances and indices
  held at once), then the per-chunk fits, in the points' own order (random for a sampled mesh or a scan
  stitched from several views);
* ``chunks, input order``: :func:`sbdbench.methods.classical._common.knn_pass`, the query made per chunk of 8192
  points (no (N, k) array is held) with the chunks on the CPUs' threads, and the covariances by batched matmul;
* ``chunks, tree order`` (what ships, :func:`sbdbench.methods.classical._common.in_spatial_order`): the
  same on the rows sorted into the leaf order of a kd tree, so that queries and neighbour gathers hit cache.

All three give the same points (max |Δ| printed). Each line gives seconds, the ratio to the first path
and the peak RSS growth of the step (``tracemalloc`` peak of numpy allocations).
The input is :func:`scaling.make_cloud` (a torus at N uniform samples, scanner-ray noise, σ = 1 %).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from sbdbench.geometry import normalize_unit_sphere
from sbdbench.methods import resolve_method
from sbdbench.methods.classical import _common
from scaling import SIGMA, make_cloud  # benchmarks/ is on sys.path


def reference_pass(name: str, x: np.ndarray, k: int, sigma_n: float | None, sigma_d_scale: float) -> np.ndarray:
    """The earlier path of one pca / bilateral pass: the whole (N, k) query held at once, covariances by einsum."""
    dist, idx = _common.knn_self(x, k)
    out = np.empty_like(x)
    for rows in _common.chunks(len(x)):
        nb = x[_common.with_self(idx, rows)]
        d = nb - nb.mean(axis=1)[:, None]
        n = np.linalg.eigh(np.einsum("mki,mkj->mij", d, d) / nb.shape[1])[1][:, :, 0]
        if name == "pca":
            out[rows] = x[rows] - np.einsum("mi,mi->m", d[:, 0], n)[:, None] * n
            continue
        off = np.einsum("mkd,md->mk", x[idx[rows]] - x[rows][:, None], n)
        sd = sigma_d_scale * dist[rows][:, -1:] + 1e-12
        sn = (off.std(axis=1, keepdims=True) if sigma_n is None else np.full((len(off), 1), sigma_n)) + 1e-12
        w = np.exp(-(dist[rows] ** 2) / (2 * sd ** 2) - off ** 2 / (2 * sn ** 2))
        out[rows] = x[rows] + ((w * off).sum(axis=1) / w.sum(axis=1))[:, None] * n
    return out


def timed(step):
    """(result, seconds, peak MB of numpy allocations) of ``step()``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    out = step()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return out, seconds, peak


def compare(name: str, unit: np.ndarray) -> None:
    method = resolve_method(name, len(unit), SIGMA).method
    k, sigma, spacing = _common.neighbourhood(unit, SIGMA, method.radius_scale, method.k, centres=_common.sample_centres(len(unit)))
    sigma_n = None
    if name == "bilateral":
        sigma_n = None if method.sigma_n_scale is None else method.sigma_n_scale * max(sigma, 0.05 * spacing)
        passes = lambda x: method._passes(x, k, sigma_n)  # noqa: E731
    else:
        passes = lambda x: method._passes(x, k)  # noqa: E731
    method.iterations = 1
    base, t_base, m_base = timed(lambda: reference_pass(name, unit, k, sigma_n, getattr(method, "sigma_d_scale", 0.0)))
    chunked, t_chunk, m_chunk = timed(lambda: passes(unit))
    ordered, t_order, m_order = timed(lambda: _common.in_spatial_order(passes, unit))
    print(f"{name} (k = {k}, one pass, N = {len(unit)})")
    for label, seconds, mb, out in (("whole, input order", t_base, m_base, base), ("chunks, input order", t_chunk, m_chunk, chunked),
                                    ("chunks, tree order", t_order, m_order, ordered)):
        print(f"  {label:<22} {seconds:8.2f} s  ×{t_base / seconds:5.2f}  peak {mb:7.0f} MB  max|Δ| {np.abs(out - base).max():.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--methods", default="pca,bilateral")
    args = parser.parse_args()
    unit = normalize_unit_sphere(make_cloud(args.n))[0]
    for name in args.methods.split(","):
        compare(name, unit)


if __name__ == "__main__":
    main()
