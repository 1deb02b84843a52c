"""CD and P2M (×10⁴) of one method on a dataset's **val** shapes: full clouds, the tuning noise, the frozen settings.

    python scripts/val_scores.py --method sbd --sigma 3% [--param weights=official] [--n 10K] [--max-shapes 8]

The inputs are exactly what ``sbdbench tune --split val`` scores (:func:`sbdbench.methods.tuning.tuning_inputs`: the
same shapes, clouds and seeded noise), so a number here sits next to the tuning tables in docs/. Unlike ``tune`` it
also gives the exact point-to-mesh distance and the per-shape values, and it runs methods without a tuning grid
(``score:weights=official``). The val split is for choosing; report test results through ``sbdbench bench``.
Prints one JSON line: the means, the seconds per shape and each shape's [CD, P2M].
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sbdbench.cli_options import parse_count, parse_sigma
from sbdbench.data.dataset import open_dataset
from sbdbench.errors import SbdbenchError
from sbdbench.methods.resolve import resolve_method
from sbdbench.methods.tuning import tuning_inputs
from sbdbench.metrics.evaluate import evaluate_shape


def val_scores(method: str, sigma: float, params: dict, *, dataset: str = "synth", n_points: int = 10_000,
               max_shapes: int = 8) -> dict:
    ds = open_dataset(dataset)
    denoiser = resolve_method(method, n_points, sigma, overrides=params, frozen=True).method
    per_shape, raw, seconds = {}, [], []
    for shape, (clean_unit, noisy, verts, faces) in tuning_inputs(ds, n_points, sigma, max_shapes, split="val",
                                                                  meshes=True).items():
        start = time.perf_counter()
        out = denoiser.denoise(noisy, noise_level=sigma)
        seconds.append(time.perf_counter() - start)
        scores = evaluate_shape(out, clean_unit, verts, faces)
        raw.append((scores["cd"] * 1e4, scores["p2m"] * 1e4))
        per_shape[shape] = [round(v, 3) for v in raw[-1]]
    cd, p2m = np.mean(raw, axis=0)
    return {"method": method, "params": params, "settings": denoiser.get_params(), "dataset": dataset, "n_points": n_points,
            "sigma": sigma, "cd_1e4": round(float(cd), 4), "p2m_1e4": round(float(p2m), 4),
            "seconds_per_shape": round(float(np.mean(seconds)), 2), "per_shape": per_shape}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", required=True)
    parser.add_argument("--sigma", required=True, help="noise σ, e.g. 3%% or 0.03")
    parser.add_argument("--param", action="append", default=[], help="key=value over the frozen settings (repeatable)")
    parser.add_argument("--dataset", default="synth")
    parser.add_argument("--n", default="10K", help="points per cloud")
    parser.add_argument("--max-shapes", type=int, default=8)
    args = parser.parse_args()
    params = dict(p.split("=", 1) for p in args.param)
    print(json.dumps(val_scores(args.method, parse_sigma(args.sigma), params, dataset=args.dataset,
                                n_points=parse_count(args.n, "--n"), max_shapes=args.max_shapes), default=str))


if __name__ == "__main__":
    try:
        main()
    except SbdbenchError as exc:  # bad input or data: one line, no traceback
        raise SystemExit(f"error: {exc}") from None
