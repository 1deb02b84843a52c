"""Time the build of the default dataset's test split: 18 shapes x {10K, 50K} x Gaussian σ {1, 2, 3} %.

Goal (issue 2): ≤ 60 s on 2 cores. Builds into a private temporary $SBDBENCH_HOME (force=True), so it
never touches your real cache. Usage: ``python benchmarks/build_synth.py [--workers 2] [--with-train]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--with-train", action="store_true", help="also build the 40 train + 6 val shapes")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="sbdbench_bench_")
    os.environ["SBDBENCH_HOME"] = tmp
    try:
        from sbdbench.data.splits import verify_dataset
        from sbdbench.data.synth import build_synth_dataset

        start = time.perf_counter()
        cpu0 = _cpu_seconds()
        ds = build_synth_dataset(include_train=args.with_train, progress=False, force=True, workers=args.workers)
        built = time.perf_counter() - start
        cpu = _cpu_seconds() - cpu0
        start = time.perf_counter()
        report = verify_dataset(ds)
        verified = time.perf_counter() - start
        start = time.perf_counter()
        build_synth_dataset(include_train=args.with_train, progress=False, workers=args.workers)
        cached = time.perf_counter() - start
        what = "18 test shapes + 46 train/val" if args.with_train else "18 test shapes"
        print(f"build_synth: {what} x {{10K, 50K}} x sigma {{1,2,3}}% (+ Laplace 10K 2%), {args.workers} worker(s), "
              f"{os.cpu_count()} CPU(s) visible")
        print(f"  build   {built:7.1f} s wall, {cpu:.1f} CPU-s (goal <= 60 s on 2 cores: {'met' if built <= 60 else 'NOT met'}; "
              f"CPU-s / {args.workers} = {cpu / max(args.workers, 1):.1f} s: the wall time on {args.workers} idle cores, "
              f"if the shapes split evenly)")
        print(f"  load average while building: {os.getloadavg()[0]:.1f} (the machine may be shared)")
        print(f"  verify  {verified:7.1f} s   ({report.checked} files, sha256)")
        print(f"  rebuild {cached:7.1f} s   (idempotent: existing verified build returned)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
