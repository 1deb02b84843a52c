"""The datasets of a bench run: opened as they are, built only when asked (``bench --build``).

A bench never replaces or extends a dataset: a missing ``synth`` is built with ``--build`` (exactly
what ``sbdbench build`` would build for the grid's resolutions and noise levels; ``--quick`` leaves out
the train/val family), and otherwise the error names the command that builds it. A dataset that lacks
some of the grid's cells is an error naming the cells (build_grid), never a rebuild.
"""

from __future__ import annotations

from typing import Callable, Sequence

from sbdbench.errors import DataError
from sbdbench.protocol import GAUSSIAN

SYNTH = "synth"


def build_command(resolutions: Sequence[int], noise_levels: Sequence[float], quick: bool) -> str:
    """The ``sbdbench build`` command that builds synth for these cells (what ``bench --build`` runs)."""
    from sbdbench.bench.grid import DEFAULT_NOISE_LEVELS, DEFAULT_RESOLUTIONS

    parts = ["sbdbench build"]
    if quick:
        parts.append("--no-train")
    if sorted(map(int, resolutions)) != sorted(DEFAULT_RESOLUTIONS):
        parts.append("--resolutions " + ",".join(str(int(n)) for n in sorted(resolutions)))
    if sorted(map(float, noise_levels)) != sorted(DEFAULT_NOISE_LEVELS):
        parts.append("--sigmas " + ",".join(f"{s:g}" for s in sorted(noise_levels)))
    return " ".join(parts)


def open_for_bench(name: str, resolutions: Sequence[int], noise_levels: Sequence[float], noise: str, *,
                   quick: bool, build: bool, log: Callable[[str], None]):
    """Open dataset ``name``; an absent ``synth`` is built only with ``build`` (else a one-line DataError)."""
    from sbdbench.data.dataset import open_dataset

    try:
        ds = open_dataset(name)
    except DataError:
        if name != SYNTH:
            raise
    else:
        ds.require_reference("the bench (a grid of N × σ cells scored by CD/P2M)")
        return ds
    command = build_command(resolutions, noise_levels, quick)
    if not build:
        raise DataError(f"dataset {SYNTH!r} is absent: build it with `{command}` (or run the bench with --build)")
    if noise != GAUSSIAN:
        raise DataError(f"dataset {SYNTH!r} is absent and --build makes Gaussian inputs only: run `{command}` first")
    from sbdbench.data.synth import build_synth_dataset

    log(f"building the synth dataset (= `{command}`; {'about a CPU-minute' if quick else 'several CPU-minutes'}, once)")
    build_synth_dataset(resolutions=sorted(map(int, resolutions)), noise_levels=sorted(map(float, noise_levels)),
                        include_train=not quick, progress=False)
    return open_dataset(name)


def missing_hint(ds, resolutions: Sequence[int], noise_levels: Sequence[float]) -> str:
    """What to run when ``ds`` lacks cells of the grid (the bench never rebuilds a dataset itself)."""
    from pathlib import Path

    from sbdbench.paths import data_root

    if ds.name != SYNTH or Path(ds.root).resolve() != data_root().resolve():
        return ""
    res = sorted(set(ds.resolutions("test")) | set(map(int, resolutions)))
    levels = sorted({round(float(s), 9) for n in ds.resolutions("test") for s in ds.noise_levels(n)} | set(map(float, noise_levels)))
    command = build_command(res, levels, quick=not ds.shapes("train"))
    return f"; it was left as is: `{command}` rebuilds it with them (replacing the current build)"
