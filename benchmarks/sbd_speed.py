"""Speed and memory of ``sbd`` against ``score`` with the same number of network evaluations.

    python benchmarks/sbd_speed.py [--n 10000] [--sigma 0.02] [--threads 1] [--repeats 3] [--frame-knn 4] [--defaults | --defaults-only]

* Inference: one 10K cloud at σ = 2 %. SBD runs t* reverse steps (t* from the schedule and σ); ``score``
  runs ``num_steps = t*`` gradient-ascent steps (one pass), so both evaluate the score network on the same
  number of (anchor, neighbour) offsets per patch; ``--frame-knn k`` sets how many current points each anchor
  scores per step in both (``frame_knn`` of sbd, ``denoise_knn`` of score). The weights do not change the cost:
  both use the same randomly initialised networks (saved to a temporary file). Times are the median of ``--repeats``
  alternating runs in this process; the ratio sbd / score is the figure (the machine may be shared).
* ``--defaults``: also times what a user runs — sbd at its frozen settings for (N, σ) from ``baselines/sbd.toml``
  (passes and ``frame_knn``) against score at ScoreDenoise's protocol (30 steps, 4 neighbours, its passes), each
  with its shipped weights (sbd's later passes start at the noise they re-estimate, which depends on the weights).
* Peak memory: each measurement runs alone in a child process; reported as the child's peak RSS minus
  that of a child that only loaded the same inputs and the model (the working memory of the step):
  inference of each method, and one training iteration (batch of 8 patches) of each recipe's loss.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _cloud(n: int, sigma: float) -> np.ndarray:
    """A synth test shape when the dataset is built, else a procedural torus; noisy at σ (seed 0)."""
    rng = np.random.default_rng(0)
    try:
        from sbdbench.data.dataset import open_dataset

        ds = open_dataset("synth")
        clean = ds.load_clean(ds.shapes("test")[0], n, "test")
    except Exception:
        u, v = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, 2 * np.pi, n)
        clean = np.c_[(1 + 0.35 * np.cos(v)) * np.cos(u), (1 + 0.35 * np.cos(v)) * np.sin(u), 0.35 * np.sin(v)]
    from sbdbench.geometry import normalize_unit_sphere

    clean = normalize_unit_sphere(clean)[0]
    return clean + sigma * rng.standard_normal(clean.shape)


def _methods(weights: str, sigma: float, frame_knn: int = 4):
    from sbdbench.methods import make_method

    sbd = make_method("sbd", weights=weights, frame_knn=frame_knn)
    t_star = sbd.make_schedule().start_step(sigma)
    score = make_method("score", weights=weights, num_steps=t_star, niters=1, denoise_knn=frame_knn)
    return sbd, score, t_star


def _default_methods(n: int, sigma: float):
    """sbd at its frozen settings for (n, σ) and score at its defaults (ScoreDenoise's protocol), each with its
    shipped project weights: a later sbd pass starts at the noise it re-estimates, so its cost depends on the weights."""
    from sbdbench.methods import make_method
    from sbdbench.methods.settings import frozen_params

    frozen = {k: v for k, v in frozen_params("sbd", n, sigma).items() if k not in ("weights", "device")}
    return make_method("sbd", **frozen), make_method("score"), frozen


def _median_times(pair, noisy: np.ndarray, sigma: float, repeats: int) -> dict:
    """Median seconds of each (name, method) over ``repeats`` alternating runs."""
    times = {name: [] for name, _ in pair}
    for _ in range(repeats):
        for name, method in pair:
            t0 = time.perf_counter()
            method.denoise(noisy, noise_level=sigma)
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def _train_batch_loss(method: str):
    from sbdbench.methods.learned.data_patches import PatchSampler
    from sbdbench.methods.learned.diffusion import make_schedule
    from sbdbench.methods.learned.model import ScoreDenoiseModel, supervised_score_loss
    from sbdbench.methods.learned.sbd_training import sbd_batch_loss

    torch.manual_seed(0)
    cloud = _cloud(10000, 0.0).astype(np.float32)
    batch = PatchSampler([cloud], seed=0).sample(8)
    model = ScoreDenoiseModel()
    if method == "sbd":
        return lambda: sbd_batch_loss(batch, model, schedule=make_schedule())
    return lambda: supervised_score_loss(model, batch["noisy"], batch["clean"])


def _worker(mode: str, weights: str, n: int, sigma: float, frame_knn: int) -> None:
    """One measurement in this (child) process; prints JSON with the peak RSS in MB."""
    torch.set_num_threads(1)
    noisy = _cloud(n, sigma)
    sbd, score, _ = _methods(weights, sigma, frame_knn)
    if mode in ("sbd", "score", "baseline"):
        sbd._networks(), score.load()  # weights loaded in every child, baseline included
        t0 = time.perf_counter()
        if mode != "baseline":
            (sbd if mode == "sbd" else score).denoise(noisy, noise_level=sigma)
        seconds = time.perf_counter() - t0
    else:  # train-sbd / train-score / train-baseline
        step = _train_batch_loss(mode.split("-")[1]) if mode != "train-baseline" else None
        t0 = time.perf_counter()
        if step is not None:
            step().backward()
        seconds = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _child(mode: str, weights: str, n: int, sigma: float, frame_knn: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", mode, "--weights", weights, "--n", str(n), "--sigma", str(sigma),
                          "--frame-knn", str(frame_knn)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--sigma", type=float, default=0.02)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frame-knn", type=int, default=4, help="current points scored per anchor and step, in both methods")
    ap.add_argument("--defaults", action="store_true", help="also time sbd at its frozen settings against score's defaults")
    ap.add_argument("--defaults-only", action="store_true",
                    help="only that comparison: no equal-work timing and no memory children (for 50K, where each run takes minutes)")
    ap.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker, args.weights, args.n, args.sigma, args.frame_knn)
        return
    from sbdbench.methods.learned.checkpoint import save_project_weights
    from sbdbench.methods.learned.model import ScoreDenoiseModel

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        weights = str(Path(tmp) / "random.pt")
        torch.manual_seed(0)
        save_project_weights(weights, ScoreDenoiseModel(), {"method": "benchmark"})
        noisy = _cloud(args.n, args.sigma)
        sbd, score, t_star = _methods(weights, args.sigma, args.frame_knn)
        if not args.defaults_only:
            sbd.denoise(noisy[:2000], noise_level=args.sigma), score.denoise(noisy[:2000], noise_level=args.sigma)  # warm-up
            med = _median_times((("sbd", sbd), ("score", score)), noisy, args.sigma, args.repeats)
            print(f"inference, N={args.n}, sigma={args.sigma}, {args.threads} thread(s), t*={t_star} network evaluations, "
                  f"{args.frame_knn} current points per anchor in both:")
            print(f"  sbd   {med['sbd']:.2f} s   score (num_steps={t_star}) {med['score']:.2f} s   ratio sbd/score {med['sbd'] / med['score']:.2f}")
        if args.defaults or args.defaults_only:
            sbd_d, score_d, frozen = _default_methods(args.n, args.sigma)
            sbd_d.denoise(noisy[:2000], noise_level=args.sigma), score_d.denoise(noisy[:2000], noise_level=args.sigma)  # loads the weights
            med = _median_times((("sbd", sbd_d), ("score", score_d)), noisy, args.sigma, args.repeats)
            print(f"defaults: sbd at its frozen settings {frozen} vs score at ScoreDenoise's protocol (30 steps, 4 neighbours):")
            print(f"  sbd   {med['sbd']:.2f} s   score {med['score']:.2f} s   ratio sbd/score {med['sbd'] / med['score']:.2f}")
        if args.defaults_only:
            return
        base = _child("baseline", weights, args.n, args.sigma, args.frame_knn)["peak_rss_mb"]
        tbase = _child("train-baseline", weights, args.n, args.sigma, args.frame_knn)["peak_rss_mb"]
        print("peak memory (child process peak RSS minus a child that only loaded inputs and weights):")
        for mode, ref in (("sbd", base), ("score", base), ("train-sbd", tbase), ("train-score", tbase)):
            r = _child(mode, weights, args.n, args.sigma, args.frame_knn)
            print(f"  {mode:12s} {r['peak_rss_mb'] - ref:8.1f} MB   ({r['peak_rss_mb']:.0f} MB total, {r['seconds']:.2f} s)")


if __name__ == "__main__":
    main()
