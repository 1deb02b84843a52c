"""GPU figures of the learned denoisers: seconds and peak GPU memory at 10K and 50K, against the CPU in one run.

    python benchmarks/learned_gpu.py [--device cuda] [--n 10000] [--n-large 50000] [--sigma 0.02] [--repeats 3] [--json FILE]

For ``score`` (official weights when fetched, and project weights) and ``sbd`` (project weights), each with
its frozen benchmark settings (``baselines/*.toml``: passes per noise level), on the synth ``torus`` test
input at σ (a procedural torus when the dataset is not built):

* GPU at N: median of ``--repeats`` runs after one warm-up (CUDA context, cuBLAS), synchronised; peak
  GPU memory is ``torch.cuda.max_memory_allocated`` over the call.
* CPU at N in the same process, with every core of the machine (the baseline): the ratio CPU / GPU, and
  the two outputs compared as sets: CD(GPU, CPU) / CD(CPU, clean) (float noise only, so ≪ 1 %).
* GPU at ``--n-large``: one run, seconds and peak GPU memory.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from scipy.spatial import cKDTree

from sbdbench.bench.grid import method_params
from sbdbench.methods import make_method
from speed_inputs import torus_input as _input  # same input as the CPU speed benchmarks (benchmarks/ is on sys.path)

METHODS = ("score:weights=official", "score", "sbd")


def _cd(a: np.ndarray, b: np.ndarray) -> float:
    """Raw Chamfer distance in the frame given (``sbdbench.metrics.chamfer`` rescales into its second argument's
    frame, which differs between the two terms of the GPU-vs-CPU ratio below)."""
    return float((cKDTree(b).query(a)[0] ** 2).mean() + (cKDTree(a).query(b)[0] ** 2).mean())


def _make(spec: str, n: int, sigma: float, device: str):
    return make_method(spec.split(":", 1)[0], **method_params(spec, n, sigma, device))


def _timed(method, points: np.ndarray, sigma: float, device: str):
    """(output, seconds, peak GPU MiB or None)."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    out = method.denoise(points, noise_level=sigma)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return out, seconds, (torch.cuda.max_memory_allocated(device) / 2 ** 20 if cuda else None)


def _mib(value) -> str:
    return "   n/a MiB" if value is None else f"{value:6.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--n-large", type=int, default=50000)
    ap.add_argument("--sigma", type=float, default=0.02)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: this benchmark reports GPU figures (run it on a GPU machine)")
    torch.set_num_threads(os.cpu_count() or 1)
    noisy, clean, what = _input(args.n, args.sigma)
    noisy_l, _, _ = _input(args.n_large, args.sigma)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else args.device
    print(f"device {name}; CPU baseline {torch.get_num_threads()} threads; input {what} at σ={args.sigma:g}; torch {torch.__version__}")
    rows = []
    for spec in args.methods.split(","):
        try:
            gpu_m = _make(spec, args.n, args.sigma, args.device)
            _timed(gpu_m, noisy, args.sigma, args.device)  # warm-up
        except Exception as exc:  # e.g. official weights not fetched
            print(f"{spec}: skipped ({type(exc).__name__}: {exc})")
            continue
        runs = [_timed(gpu_m, noisy, args.sigma, args.device) for _ in range(args.repeats)]
        gpu_out, gpu_peak = runs[-1][0], runs[-1][2]
        gpu_s = float(np.median([r[1] for r in runs]))
        cpu_out, cpu_s, _ = _timed(_make(spec, args.n, args.sigma, "cpu"), noisy, args.sigma, "cpu")
        rel = _cd(gpu_out, cpu_out) / _cd(cpu_out, clean)
        big_m = _make(spec, args.n_large, args.sigma, args.device)
        big_out, big_s, big_peak = _timed(big_m, noisy_l, args.sigma, args.device)
        assert len(big_out) == len(noisy_l) and len(gpu_out) == len(noisy)
        row = {"method": spec, "n": args.n, "gpu_s": gpu_s, "gpu_peak_mb": gpu_peak, "cpu_s": cpu_s, "cpu_over_gpu": cpu_s / gpu_s,
               "cd_gpu_cpu_rel": rel, "n_large": args.n_large, "gpu_large_s": big_s, "gpu_large_peak_mb": big_peak}
        rows.append(row)
        print(f"{spec:24s} {args.n // 1000}K: GPU {gpu_s:6.2f} s ({_mib(gpu_peak)}) | CPU {cpu_s:6.2f} s | CPU/GPU {cpu_s / gpu_s:5.1f}x "
              f"| CD(GPU,CPU)/CD(CPU,clean) {rel:.2e} || {args.n_large // 1000}K: GPU {big_s:6.2f} s ({_mib(big_peak)})", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": name, "torch": torch.__version__, "input": what, "sigma": args.sigma, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
