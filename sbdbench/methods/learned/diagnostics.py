"""Jarque–Bera diagnostics of SBD's training intermediates (the note's check, reproduced).

The note reports that the intermediates ``x_a^t`` drawn from the forward marginal q(x^t | x^0) pass a
Jarque–Bera normality test of ``x_a^t − x^0`` at every step, while the "Nearest" construction fails it.
:func:`jarque_bera_table` recomputes that per step and per strategy on clean clouds:

* the noisy input is ``y = x^0 + σ_in ε`` with σ_in = σ_{t_in} of the schedule (t_in = ``start_step``);
* ``marginal``: x_a^t = x^0 + σ_t ε' for t = 1..t_in (:func:`~sbdbench.methods.learned.diffusion.marginal_intermediate`);
* ``nearest``: x_a^t = n + (σ_t/σ_in)(y − n), n = nearest clean point of y
  (:func:`~sbdbench.methods.learned.diffusion.nearest_intermediate`); at t = t_in it is y itself.

The statistic is scipy's ``jarque_bera`` on the pooled x/y/z components of ``x_a^t − x^0`` (3·N values
per cloud, clouds pooled), with skewness and excess kurtosis to show *why* a step fails.
``passes`` uses a family-wise level α over the steps of one strategy (Bonferroni: p ≥ α / t_in): an
exactly Gaussian sample is rejected at a single-test level α = 0.05 one time in twenty, so testing
each of ~10 steps at 0.05 would "fail" the marginal by chance about 40 % of the time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from sbdbench.errors import InputError
from sbdbench.geometry import check_points, normalize_unit_sphere
from sbdbench.methods.learned.diffusion import INTERMEDIATES, Schedule, make_schedule, marginal_intermediate, nearest_intermediate
from sbdbench.paths import atomic_path, atomic_write_text

COLUMNS = ["strategy", "t", "sigma_t", "n_values", "jb_stat", "p_value", "skewness", "excess_kurtosis", "passes"]


def jarque_bera_table(
    clouds: Sequence[np.ndarray],
    *,
    schedule: Optional[Schedule] = None,
    noise_level: float = 0.02,
    strategies: Iterable[str] = INTERMEDIATES,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """JB statistics of x_a^t − x^0 for t = 1..t_in, for each strategy.

    Args:
        clouds: clean (N, 3) clouds; each is normalised to the unit sphere first (the protocol's frame).
        schedule: the diffusion schedule (default: :func:`make_schedule` defaults).
        noise_level: σ of the noisy input; the table runs t = 1..t_in with t_in = ``schedule.start_step(σ)``.
        strategies: subset of ``("marginal", "nearest")``.
        alpha: family-wise significance level for the ``passes`` column (p ≥ α / t_in, Bonferroni).
        seed: noise seed (the table is deterministic).

    Returns:
        a DataFrame with columns :data:`COLUMNS`, one row per (strategy, t).
    """
    schedule = schedule or make_schedule()
    strategies = list(strategies)
    for s in strategies:
        if s not in INTERMEDIATES:
            raise InputError(f"unknown intermediate strategy {s!r} (choose from {', '.join(INTERMEDIATES)})")
    if not clouds:
        raise InputError("jarque_bera_table needs at least one clean cloud")
    t_in = schedule.start_step(noise_level)
    if t_in < 1:
        raise InputError(f"noise level {noise_level} maps to step 0 of the schedule: nothing to test")
    gen = torch.Generator().manual_seed(int(seed))
    offsets: Dict[tuple, List[np.ndarray]] = {(s, t): [] for s in strategies for t in range(1, t_in + 1)}
    for i, cloud in enumerate(clouds):
        unit, _, _ = normalize_unit_sphere(check_points(cloud, name=f"cloud {i}"))
        x0 = torch.as_tensor(unit, dtype=torch.float64)
        noisy = x0 + schedule.sigmas[t_in] * torch.randn(x0.shape, generator=gen, dtype=torch.float64)
        for t in range(1, t_in + 1):
            if "marginal" in strategies:
                offsets[("marginal", t)].append((marginal_intermediate(x0, t, schedule, generator=gen) - x0).numpy())
            if "nearest" in strategies:
                offsets[("nearest", t)].append((nearest_intermediate(noisy, x0, t, t_in, schedule) - x0).numpy())
    rows = []
    for (strategy, t), parts in offsets.items():
        values = np.concatenate([p.reshape(-1) for p in parts])
        res = stats.jarque_bera(values)
        rows.append({
            "strategy": strategy,
            "t": t,
            "sigma_t": float(schedule.sigmas[t]),
            "n_values": int(values.size),
            "jb_stat": float(res.statistic),
            "p_value": float(res.pvalue),
            "skewness": float(stats.skew(values)),
            "excess_kurtosis": float(stats.kurtosis(values)),
            "passes": bool(res.pvalue >= alpha / t_in),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def summarize(table: pd.DataFrame) -> str:
    """One line per strategy: how many steps pass, and the worst statistic."""
    lines = []
    for strategy, group in table.groupby("strategy", sort=False):
        worst = group.loc[group["jb_stat"].idxmax()]
        lines.append(
            f"{strategy}: {int(group['passes'].sum())}/{len(group)} steps pass "
            f"(worst t={int(worst['t'])}: JB={worst['jb_stat']:.3g}, p={worst['p_value']:.3g}, "
            f"excess kurtosis={worst['excess_kurtosis']:.3g})"
        )
    return "\n".join(lines)


def plot_table(table: pd.DataFrame, path: str | Path, alpha: float = 0.05) -> Path:
    """Plot JB statistic per step (log scale) for each strategy, with the α critical value; PNG, atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_steps = int(table["t"].max())
    critical = float(stats.chi2.ppf(1 - alpha / n_steps, df=2))  # the Bonferroni threshold of ``passes``
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, group in table.groupby("strategy", sort=False):
        ax.plot(group["t"], group["jb_stat"], marker="o", label=strategy)
    ax.axhline(critical, color="k", linestyle="--", linewidth=1, label=f"critical value (α={alpha:g}/{n_steps} per step)")
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("Jarque–Bera statistic of $x_a^t - x^0$")
    ax.set_title("SBD intermediates: normality per step")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the table as CSV (atomic)."""
    path = Path(path)
    atomic_write_text(path, table.to_csv(index=False, float_format="%.6g"))
    return path


def load_clouds(
    *,
    dataset: str = "synth",
    split: str = "train",
    n_points: int = 10000,
    max_shapes: int = 4,
    cloud: Optional[str | Path] = None,
    mesh: Optional[str | Path] = None,
    seed: int = 0,
) -> List[np.ndarray]:
    """Clean clouds for :func:`jarque_bera_table`: a given cloud file, a mesh (Poisson-sampled to
    ``n_points``), or the first ``max_shapes`` shapes of a dataset split at resolution ``n_points``."""
    from sbdbench.io import read_mesh, read_points

    if cloud is not None:
        return [read_points(cloud)]
    if mesh is not None:
        from sbdbench.data.sampling import sample_poisson

        verts, faces = read_mesh(mesh)
        return [np.asarray(sample_poisson(verts, faces, int(n_points), seed=seed))]
    from sbdbench.data.dataset import open_dataset

    ds = open_dataset(dataset)
    shapes = ds.shapes(split)
    if not shapes:
        raise InputError(f"dataset {dataset!r} has no shapes in split {split!r}")
    return [ds.load_clean(s, n_points, split) for s in shapes[: max(1, int(max_shapes))]]


def diagnose_sbd(
    out_dir: str | Path,
    *,
    clouds: Sequence[np.ndarray],
    schedule: Optional[Schedule] = None,
    noise_level: float = 0.02,
    alpha: float = 0.05,
    seed: int = 0,
) -> Dict[str, object]:
    """Compute the JB table, write ``sbd_jb.csv`` and ``sbd_jb.png`` under ``out_dir``; returns
    ``{"table": DataFrame, "csv": Path, "png": Path, "summary": str}``."""
    table = jarque_bera_table(clouds, schedule=schedule, noise_level=noise_level, alpha=alpha, seed=seed)
    out_dir = Path(out_dir)
    csv = write_table(table, out_dir / "sbd_jb.csv")
    png = plot_table(table, out_dir / "sbd_jb.png", alpha=alpha)
    return {"table": table, "csv": csv, "png": png, "summary": summarize(table)}
