"""Which noise estimator to keep: the two σ̂ the project had, against the true σ, on the synth TRAIN and VAL shapes.

    SBDBENCH_HOME=... python benchmarks/noise_estimators.py [--resolutions 10000,50000] [--sigmas 0.005,0.01,0.02,0.03]

* ``classical``: the estimator the classical methods and ``denoise`` used (median over all points of the smallest
  principal spread of the 32-NN, no correction), kept here as the baseline (:func:`former_classical`);
* ``learned``: :func:`sbdbench.methods.noise_level.estimate_noise_level` (the same statistic with k = N/400 in
  [16, 128] on ≤ 4000 centres, × 1.25), the learned methods' estimator, now the project's only one.

Each clean cloud is normalised to the unit sphere (the protocol's frame) and given seeded Gaussian noise σ. Printed:
the median and the 90th percentile of |σ̂ − σ| / σ over the shapes, per (N, σ), and overall, with the seconds per
call. The test split is never read.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sbdbench.data.dataset import open_dataset
from sbdbench.geometry import normalize_unit_sphere
from sbdbench.methods.classical._common import chunks, knn_of, local_frames
from sbdbench.methods.noise_level import estimate_noise_level


def former_classical(points: np.ndarray, k: int = 32) -> float:
    """The former classical estimator: median over all points of sqrt(smallest eigenvalue of the 32-NN covariance)."""
    _, idx = knn_of(points, None, k)
    own = np.arange(len(points))
    out = np.empty(len(idx))
    for sl in chunks(len(idx)):
        _, evals, _ = local_frames(points, np.concatenate([own[sl, None], idx[sl]], axis=1))
        out[sl] = np.sqrt(np.clip(evals[:, 0], 0.0, None))
    return float(np.median(out))


ESTIMATORS = {"classical": former_classical, "learned": estimate_noise_level}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synth")
    parser.add_argument("--resolutions", default="10000,50000")
    parser.add_argument("--sigmas", default="0.005,0.01,0.02,0.03")
    parser.add_argument("--max-shapes", type=int, default=12)
    args = parser.parse_args()
    ds = open_dataset(args.dataset)
    shapes = [("val", s) for s in ds.shapes("val")] + [("train", s) for s in ds.shapes("train")]
    shapes = shapes[: args.max_shapes]
    errors = {name: [] for name in ESTIMATORS}
    seconds = {name: 0.0 for name in ESTIMATORS}
    print(f"{len(shapes)} shapes ({', '.join(f'{sp}/{s}' for sp, s in shapes[:4])}, ...)")
    print(f"{'N':>6} {'sigma':>6} " + " ".join(f"{n + ' med':>14} {n + ' p90':>14}" for n in ESTIMATORS))
    rng = np.random.default_rng(0)
    for n in (int(x) for x in args.resolutions.split(",")):
        clean = [normalize_unit_sphere(ds.load_clean(s, n, sp))[0] for sp, s in shapes]
        for sigma in (float(x) for x in args.sigmas.split(",")):
            cell = {name: [] for name in ESTIMATORS}
            for pts in clean:
                noisy = pts + rng.normal(0.0, sigma, pts.shape)
                for name, estimate in ESTIMATORS.items():
                    t0 = time.perf_counter()
                    value = estimate(noisy)
                    seconds[name] += time.perf_counter() - t0
                    cell[name].append(abs(value - sigma) / sigma)
            for name in ESTIMATORS:
                errors[name] += cell[name]
            print(f"{n:>6} {sigma:>6g} " + " ".join(f"{np.median(cell[k]):>14.3f} {np.percentile(cell[k], 90):>14.3f}" for k in ESTIMATORS))
    calls = len(errors["classical"])
    print("overall: " + "; ".join(f"{k}: median |err| {np.median(v):.3f}, p90 {np.percentile(v, 90):.3f}, "
                                  f"{seconds[k] / calls:.3f} s/call" for k, v in errors.items()))


if __name__ == "__main__":
    main()
