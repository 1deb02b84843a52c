"""Start-up time of a classical command: ``sbdbench denoise --method pca`` on a small cloud.

Each run is a fresh interpreter that calls the CLI in-process (``sbdbench.cli.main``), so the time
is dominated by imports. The baseline is the same command with ``import torch`` forced first in the
same interpreter: what every classical command paid while torch was imported eagerly (issue 19,
item 6). Prints the median of ``--repeat`` runs of each, the ratio, and whether torch was imported.

    python benchmarks/startup.py [--points 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RUN = """
import sys, time
t0 = time.perf_counter()
{pre}
from sbdbench.cli import main
try:
    main(["denoise", sys.argv[1], sys.argv[2], "--method", "pca"], standalone_mode=False)
finally:
    print("SECONDS", time.perf_counter() - t0, "TORCH", "torch" in sys.modules, file=sys.stderr)
"""


def one_run(cloud: Path, out: Path, force_torch: bool) -> tuple:
    """(seconds, torch imported?) of one fresh-interpreter denoise."""
    out.unlink(missing_ok=True)
    code = RUN.format(pre="import torch" if force_torch else "")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, "-c", code, str(cloud), str(out)], capture_output=True, text=True, env=env)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("SECONDS")]
    if proc.returncode != 0 or not line:
        raise SystemExit(f"denoise failed:\n{proc.stderr}")
    _, seconds, _, torch_flag = line[-1].split()
    return float(seconds), torch_flag == "True"


def median_run(cloud: Path, out: Path, force_torch: bool, repeat: int) -> tuple:
    runs = [one_run(cloud, out, force_torch) for _ in range(repeat)]
    return statistics.median(s for s, _ in runs), any(t for _, t in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cloud, out = Path(tmp) / "cloud.xyz", Path(tmp) / "out.xyz"
        np.savetxt(cloud, np.random.default_rng(0).normal(size=(args.points, 3)), fmt="%.8f")
        one_run(cloud, out, False)  # warm the file cache (.pyc, shared libraries)
        before, _ = median_run(cloud, out, True, args.repeat)
        after, imported = median_run(cloud, out, False, args.repeat)
    print(f"sbdbench denoise --method pca, {args.points} points, median of {args.repeat} fresh interpreters")
    print(f"before (torch imported first): {before:.3f} s")
    print(f"after  (as the CLI runs now):  {after:.3f} s   torch imported: {imported}")
    print(f"ratio before/after: {before / after:.2f}x")


if __name__ == "__main__":
    main()
