"""``check-noise``: does each noisy set hold the noise it claims? (Jarque–Bera normality test.)

For every noisy set of a dataset (``examples/<name>_<N>_poisson_[<kind>_]<σ>`` for test shapes,
``examples/<name>_val_...`` for val shapes) the residual ``noisy − clean`` is formed row by row
(row i of a noisy file is the noisy copy of row i of the clean file at the same N), pooled over all
shapes and the three coordinates, and tested with ``scipy.stats.jarque_bera``.

Verdicts: Gaussian sets must look normal (p ≥ α) with a residual std within 3 % of σ (or 4
standard errors, for sets of fewer than ~5,500 values); Laplace,
uniform-ball and outlier sets must look non-normal (p < α). Anisotropic and scanner-ray sets are
reported without a verdict (their pooled residual is a scale mixture of normals).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Optional

import numpy as np

from sbdbench.data.dataset import Dataset, open_dataset
from sbdbench.errors import DataError
from sbdbench.protocol import GAUSSIAN, parse_noisy_dir

EXPECT_NORMAL = {GAUSSIAN: True, "laplace": False, "uniform_ball": False, "outliers": False}
STD_TOLERANCE = 0.03


@dataclass
class NoiseCheck:
    split: str
    n_points: int
    noise: str
    sigma: float
    shapes: int
    samples: int
    std_ratio: float      # residual std / σ
    skew: float
    excess_kurtosis: float
    jb: float
    p_value: float
    expected: str         # 'normal', 'non-normal' or '-'
    ok: Optional[bool]    # None when no verdict applies

    def as_dict(self) -> dict:
        return asdict(self)


def _noisy_sets(ds: Dataset):
    """(split, N, kind, σ, folder) for every noisy folder of ``ds``."""
    out = []
    if not ds.examples_dir.is_dir():
        return out
    for sub in sorted(ds.examples_dir.iterdir()):
        found = parse_noisy_dir(sub.name, ds.name)
        if sub.is_dir() and found:
            out.append((found.split, found.n_points, found.noise, found.sigma, sub))
    return out


def check_noise(dataset: Dataset | str, *, alpha: float = 0.001, max_shapes: Optional[int] = None,
                progress: bool = False) -> List[NoiseCheck]:
    """One :class:`NoiseCheck` per noisy set (see the module doc). Raises :class:`DataError` if a noisy
    file has no clean partner or a different number of rows."""
    from scipy import stats

    from sbdbench.io import read_points

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    sets = _noisy_sets(ds)
    if not sets:
        raise DataError(f"dataset {ds.name!r} has no noisy inputs under {ds.examples_dir}")
    from sbdbench.progress import progress_iter

    rows = []
    for split, n, kind, sigma, folder in progress_iter(sets, len(sets), f"check-noise {ds.name}", "set", enabled=progress):
        residuals = []
        files = sorted(folder.glob("*.xyz"))[:max_shapes]
        for noisy_path in files:
            clean_path = ds.clean_path(noisy_path.stem, n, split)
            if not clean_path.is_file():
                raise DataError(f"{noisy_path}: no clean cloud {clean_path} to compare with")
            noisy, clean = read_points(noisy_path), read_points(clean_path)
            if noisy.shape != clean.shape:
                raise DataError(f"{noisy_path}: {len(noisy)} rows but the clean cloud has {len(clean)}")
            residuals.append((noisy - clean).ravel())
        if not residuals:
            continue
        r = np.concatenate(residuals)
        jb = stats.jarque_bera(r)
        std_ratio = float(r.std() / sigma) if sigma > 0 else float("nan")
        expect = EXPECT_NORMAL.get(kind)
        normal = bool(jb.pvalue >= alpha)
        if expect is None:
            ok = None
        elif expect:
            # 3 %, or 4 standard errors of a sample std (≈ 1/sqrt(2n)) for small sets
            ok = bool(normal and abs(std_ratio - 1.0) <= max(STD_TOLERANCE, 4.0 / np.sqrt(2.0 * r.size)))
        else:
            ok = not normal
        rows.append(NoiseCheck(split, n, kind, sigma, len(files), int(r.size), round(std_ratio, 4),
                               round(float(stats.skew(r)), 4), round(float(stats.kurtosis(r)), 4),
                               round(float(jb.statistic), 2), float(jb.pvalue),
                               "-" if expect is None else ("normal" if expect else "non-normal"), ok))
    return rows


def format_noise_table(rows: List[NoiseCheck], alpha: float) -> str:
    """A plain-text table of :func:`check_noise` results."""
    head = f"{'split':5} {'N':>6} {'noise':12} {'sigma':>6} {'shapes':>6} {'std/sigma':>9} {'kurt':>7} {'JB':>11} {'p':>9}  expect      verdict"
    lines = [head, "-" * len(head)]
    for r in rows:
        verdict = "-" if r.ok is None else ("PASS" if r.ok else "FAIL")
        lines.append(f"{r.split:5} {r.n_points:>6} {r.noise:12} {r.sigma:>6g} {r.shapes:>6} {r.std_ratio:>9.4f} "
                     f"{r.excess_kurtosis:>7.3f} {r.jb:>11.2f} {r.p_value:>9.3g}  {r.expected:11} {verdict}")
    lines.append(f"(Jarque-Bera on noisy - clean, pooled over shapes and coordinates; normal if p >= {alpha:g})")
    return "\n".join(lines)
