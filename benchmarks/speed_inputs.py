"""The input every speed benchmark of a learned method uses, so their figures compare: the synth test torus at N
points and σ when the dataset is built, else a procedural torus (benchmarks/ is on sys.path when a script runs)."""

from __future__ import annotations

import numpy as np


def torus_input(n: int, sigma: float = 0.02):
    """(noisy (n, 3), clean (n, 3), where it came from)."""
    try:
        from sbdbench.data.dataset import open_dataset

        ds = open_dataset("synth")
        return ds.load_noisy("torus", n, sigma), ds.load_clean("torus", n), "synth/torus"
    except Exception:  # the dataset is not built (or not at this N/σ): a procedural torus of the same shape
        rng = np.random.default_rng(0)
        u, v = rng.uniform(0, 2 * np.pi, (2, n))
        clean = np.stack([(1 + 0.35 * np.cos(v)) * np.cos(u), (1 + 0.35 * np.cos(v)) * np.sin(u), 0.35 * np.sin(v)], 1)
        return clean + rng.normal(0, sigma * 1.35, clean.shape), clean, "procedural torus"
