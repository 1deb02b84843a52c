"""Do the no-reference figures rank denoisers as CD does? (docs/metrics.md, "No-reference figures")

For each synth test shape and noise level, a few methods (their frozen settings, as ``sbdbench run`` uses them)
denoise the same noisy input; CD against the clean cloud, ``plane_res`` (in the noisy input's frame) and
``spacing_cv`` are computed for every output and for the input itself ("noisy"). Per (shape, σ), Kendall's τ
compares the methods' order by CD with their order by each figure (τ = 1: the same order). Pooled over σ within
a shape, τ also asks whether the figure orders the noise levels as CD does.

    python benchmarks/noref_agreement.py                      # 6 shapes x 3 σ x 4 methods at 10K (~2 CPU-min)
    python benchmarks/noref_agreement.py --shapes sphere,cube --methods noisy,pca --n 2000   # a smoke run

The inputs are made in memory (the synth recipes, Poisson-disk sampling, Gaussian noise), nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from sbdbench.data.noise import add_noise  # noqa: E402
from sbdbench.data.sampling import sample_poisson  # noqa: E402
from sbdbench.data.shapes import build_recipe, get_test_spec  # noqa: E402
from sbdbench.geometry import normalize_unit_sphere  # noqa: E402
from sbdbench.methods import make_method  # noqa: E402
from sbdbench.metrics import chamfer, plane_residual, spacing_cv  # noqa: E402

SHAPES = "sphere,cube,torus,bumpy_sphere,thin_plate,trefoil_knot"
METHODS = "noisy,pca,bilateral,jet"
FIGURES = ("plane_res", "plane_res_k32", "quadric_res", "spacing_cv")


def clean_cloud(shape: str, n: int, seed: int) -> np.ndarray:
    """(n, 3) Poisson-disk sample of a synth test shape, in its unit sphere."""
    spec = get_test_spec(shape)
    verts, faces = build_recipe(spec.recipe, spec.params)
    verts = normalize_unit_sphere(verts)[0]
    return sample_poisson(verts, faces, n, seed)


def score_outputs(shape: str, n: int, sigma: float, methods, seed: int) -> list:
    """One row per method: CD, plane_res (noisy input's frame), spacing_cv, seconds."""
    clean = clean_cloud(shape, n, seed)
    noisy = add_noise(clean, sigma, seed=seed + 1)
    rows = []
    for name in methods:
        t0 = time.perf_counter()
        out = make_method(name, tuned_for=(n, sigma)).denoise(noisy, noise_level=sigma)
        rows.append({"shape": shape, "sigma": sigma, "method": name, "cd": chamfer(out, clean),
                     "plane_res": plane_residual(out, frame=noisy), "spacing_cv": spacing_cv(out),
                     "plane_res_k32": plane_residual(out, frame=noisy, k=32),
                     "quadric_res": plane_residual(out, frame=noisy, k=32, fit="quadric"),
                     "seconds": time.perf_counter() - t0})
    return rows


def agreement(frame: pd.DataFrame, by) -> pd.DataFrame:
    """Kendall's τ between the CD order and each figure's order, per group of ``by``."""
    rows = []
    for key, group in frame.groupby(by):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for fig in FIGURES:
            row[f"tau_{fig}"] = kendalltau(group["cd"], group[fig]).statistic
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default=SHAPES)
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--sigmas", default="0.01,0.02,0.03")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rows = []
    for shape in args.shapes.split(","):
        for sigma in map(float, args.sigmas.split(",")):
            rows += score_outputs(shape, args.n, sigma, args.methods.split(","), args.seed)
    frame = pd.DataFrame(rows)
    per_cell = agreement(frame, ["shape", "sigma"])
    per_shape = agreement(frame, ["shape"])
    with pd.option_context("display.float_format", "{:.4g}".format, "display.width", 140):
        shown = frame.assign(cd_1e4=frame["cd"] * 1e4, **{f"{f}_1e4": frame[f] * 1e4 for f in FIGURES if f != "spacing_cv"})
        cols = ["shape", "sigma", "method", "cd_1e4", *(f"{f}_1e4" for f in FIGURES if f != "spacing_cv"), "spacing_cv", "seconds"]
        print(shown[cols].to_string(index=False))
        print("\nKendall tau of each figure against CD, per (shape, sigma): order of the methods")
        print(per_cell.to_string(index=False))
        print("\nper shape, pooled over sigma (methods and noise levels):")
        print(per_shape.to_string(index=False))
    for fig in FIGURES:
        print(f"mean tau {fig}: per cell {per_cell[f'tau_{fig}'].mean():.3f}, per shape {per_shape[f'tau_{fig}'].mean():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
