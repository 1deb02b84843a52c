"""Denoise a large cloud in spatial blocks with overlap, under a memory cap: :func:`denoise_in_blocks`.

The cloud (in the protocol's unit-sphere frame of the *whole* cloud, so every block sees the same scale) is split
by a kd-tree of median cuts into cells of core points; each block is its core points plus every point within the
method's ``margin`` of them (its halo), and is denoised by the method's own ``_denoise_unit`` with the cloud-wide
settings of :meth:`~sbdbench.methods.base.Denoiser.block_settings` (k, σ and passes fixed once, so no block
estimates its own). The blocks are merged by the method's ``block_merge`` rule:

* ``"own"`` (output i is input i moved): each core point keeps its own output. Every core point saw all the
  points its output depends on (the margin is that reach, measured), so there are no seams and exactly N points.
* ``"pool"`` (N points, not 1:1: ScoreDenoise-style FPS merges): the outputs that fall in each block's cell
  (widened by a small overlap) are pooled and farthest-point sampled back to N, as the method merges its patches.

Choosing the block size, the overlap and the numbers behind them: docs/scaling.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from sbdbench.errors import InputError, SbdbenchError
from sbdbench.geometry import check_points, denormalize_unit_sphere, normalize_unit_sphere
from sbdbench.methods.base import BlockSettings, Denoiser
from sbdbench.methods.meter import metered, metered_steps

#: bytes per point the driver itself holds besides the method (input, unit copy, result, sort order, masks)
DRIVER_BYTES_PER_POINT = 110.0
#: a block's core is never cut below this many points (a smaller one means the cap is too small)
MIN_CORE_POINTS = 2000
#: the widening of a cell, as a fraction of the margin, inside which a ``pool`` block's outputs are kept
POOL_OVERLAP = 0.125

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Block:
    """One block: its core point indices (C,), halo indices (H,), and its kd cell (lo (3,), hi (3,))."""

    core: np.ndarray
    halo: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def size(self) -> int:
        return len(self.core) + len(self.halo)


def parse_memory(text) -> float:
    """'2GB', '512MB', '1.5G', '800' (MB) → megabytes; anything else is a one-line :class:`InputError`."""
    raw = str(text).strip().upper().replace(" ", "").removesuffix("B").removesuffix("I")
    scale = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 ** 2}
    unit = raw[-1:] if raw[-1:] in scale else "M"
    try:
        value = float(raw[:-1] if raw[-1:] in scale else raw) * scale[unit]
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"--max-memory: expected a size such as 2GB or 512MB, got {text!r}")
    return value


def whole_cloud_mb(settings: BlockSettings, n_points: int) -> float:
    """Working megabytes of one run of the method on ``n_points`` points (driver arrays included)."""
    return n_points * (settings.bytes_per_point + DRIVER_BYTES_PER_POINT) / 2**20 + _fixed_mb(settings)


def _batch_budget_mb(method: Denoiser) -> float:
    """A learned method's patch-batch budget (``memory_mb``), 0 for the others."""
    return float(getattr(method, "memory_mb", 0) or 0)


def _fixed_mb(settings: BlockSettings) -> float:
    """Memory that does not grow with N: the patch-batch budget plus a chunked kNN pass's chunk arrays."""
    return _batch_budget_mb(settings.method) + settings.fixed_mb


def block_limit(settings: BlockSettings, n_points: int, max_memory_mb: float) -> int:
    """The most points (core + halo) one block may have under ``max_memory_mb``; an :class:`InputError` when
    even the driver's own arrays do not fit."""
    free = max_memory_mb - n_points * DRIVER_BYTES_PER_POINT / 2**20 - _fixed_mb(settings)
    limit = int(free * 2**20 / settings.bytes_per_point) if free > 0 else 0
    if limit < MIN_CORE_POINTS:
        need = whole_cloud_mb(settings, 0) + (n_points * DRIVER_BYTES_PER_POINT + 4 * MIN_CORE_POINTS * settings.bytes_per_point) / 2**20
        raise InputError(f"{n_points} points do not fit --max-memory {max_memory_mb:.0f}MB with {settings.method.name}'s settings; "
                         f"use --max-memory {int(np.ceil(need / 64) * 64)}MB or more")
    return limit


def plan_blocks(unit: np.ndarray, margin: float, max_points: int) -> List[Block]:
    """Median-cut kd cells whose blocks (core + halo within ``margin``) hold at most ``max_points`` points.

    Args:
        unit: (N, 3) cloud. margin: the halo width. max_points: the block size limit.

    Raises:
        InputError: a cell of :data:`MIN_CORE_POINTS` still has too large a block (the margin dwarfs the cap).
    """
    order = np.argsort(unit[:, 0], kind="stable")
    xs = unit[order, 0]
    member = np.zeros(len(unit), dtype=bool)
    todo = [(np.arange(len(unit)), np.full(3, -np.inf), np.full(3, np.inf))]
    blocks: List[Block] = []
    while todo:
        core, lo, hi = todo.pop()
        halo = _halo(unit, order, xs, member, core, margin)
        if len(core) + len(halo) <= max_points:
            blocks.append(Block(core, halo, lo, hi))
            continue
        if len(core) < 2 * MIN_CORE_POINTS:
            raise InputError(f"a block of {len(core)} points needs {len(core) + len(halo)} with its overlap (margin "
                             f"{margin:.3g}), more than the {max_points} the memory cap allows; raise --max-memory")
        todo.extend(_split(unit, core, lo, hi))
    blocks.sort(key=lambda b: int(b.core[0]))
    return blocks


def _halo(unit, order, xs, member, core, margin) -> np.ndarray:
    """Indices of the points outside ``core`` within the core's bounding box widened by ``margin``."""
    lo, hi = unit[core].min(axis=0) - margin, unit[core].max(axis=0) + margin
    cand = order[np.searchsorted(xs, lo[0], "left"):np.searchsorted(xs, hi[0], "right")]
    inside = np.all((unit[cand, 1:] >= lo[1:]) & (unit[cand, 1:] <= hi[1:]), axis=1)
    cand = cand[inside]
    member[core] = True
    halo = np.sort(cand[~member[cand]])
    member[core] = False
    return halo


def _split(unit, core, lo, hi):
    """Two halves of a cell at the median of its core points along their longest extent."""
    pts = unit[core]
    axis = int(np.argmax(pts.max(axis=0) - pts.min(axis=0)))
    cut = float(np.median(pts[:, axis]))
    left = pts[:, axis] < cut
    if left.all() or not left.any():  # many equal coordinates: split by rank instead
        left = np.zeros(len(core), dtype=bool)
        left[np.argsort(pts[:, axis], kind="stable")[: len(core) // 2]] = True
    hi_left, lo_right = hi.copy(), lo.copy()
    hi_left[axis] = lo_right[axis] = cut
    return [(core[left], lo, hi_left), (core[~left], lo_right, hi)]


def denoise_in_blocks(method: Denoiser, points, *, noise_level: Optional[float] = None, max_memory_mb: Optional[float] = None,
                      block_points: Optional[int] = None, progress: Optional[Progress] = None) -> np.ndarray:
    """``method.denoise(points)`` in spatial blocks: (N, 3) in any frame → (M, 3) in the same frame.

    Args:
        method: any registered method; one without a ``block_merge`` rule runs on the whole cloud.
        noise_level: σ as for :meth:`~sbdbench.methods.base.Denoiser.denoise` (estimated once when None).
        max_memory_mb: cap on the working memory; the blocks are as large as it allows (the whole cloud when it fits).
        block_points: the most points (core + overlap) per block instead of a cap (tests, benchmarks).
        progress: ``progress(done_points, total_points)`` as the work goes: after each block, and inside a block
            (or a whole-cloud run) after each pass and patch batch of a method that reports them
            (:mod:`sbdbench.methods.meter`); ``(N, N)`` at the end.

    Raises:
        InputError: bad input, or a cloud that cannot fit ``max_memory_mb`` (the message names a cap that fits).
    """
    method._check_params()
    pts = check_points(points, name=f"{method.name} input")
    with metered(progress, len(pts)):
        return _denoise_metered(method, pts, noise_level, max_memory_mb, block_points)


def _denoise_metered(method: Denoiser, pts: np.ndarray, noise_level, max_memory_mb, block_points) -> np.ndarray:
    if not method.block_merge or (max_memory_mb is None and block_points is None):  # no cap: the whole cloud
        if not method.block_merge and max_memory_mb is not None and block_points is None:
            _check_unsplittable(method, len(pts), max_memory_mb)
        return method.denoise(pts, noise_level=noise_level)
    unit, center, scale = normalize_unit_sphere(pts)
    settings = method.block_settings(unit, noise_level)
    limit = block_points if block_points is not None else block_limit(settings, len(pts), max_memory_mb)
    if len(pts) <= limit:
        return method.denoise(pts, noise_level=noise_level)
    blocks = plan_blocks(unit, settings.margin, int(limit))
    merge = _merge_own if method.block_merge == "own" else _merge_pool
    return method._check_output(denormalize_unit_sphere(merge(settings, unit, blocks), center, scale), len(pts), "input")


def _check_unsplittable(method: Denoiser, n_points: int, max_memory_mb: float) -> None:
    """A method without a block rule must fit whole; its bytes per point are unknown, so only the driver's are checked."""
    if n_points * DRIVER_BYTES_PER_POINT / 2**20 + _batch_budget_mb(method) > max_memory_mb:
        raise InputError(f"{method.name} cannot run in blocks and {n_points} points exceed --max-memory {max_memory_mb:.0f}MB; raise it")


def _run_block(settings: BlockSettings, unit: np.ndarray, block: Block) -> np.ndarray:
    """The method on one block's points (core first, then halo) in the whole cloud's unit frame."""
    method = settings.method
    sub = unit[np.concatenate([block.core, block.halo])]
    return method._check_output(method._denoise_unit(sub.copy(), settings.noise_level), len(sub), "unit-sphere")


def _merge_own(settings, unit, blocks) -> np.ndarray:
    """Each core point keeps its own output (count- and order-preserving methods)."""
    out = np.empty_like(unit)
    for block in metered_steps(blocks):
        out[block.core] = _run_block(settings, unit, block)[: len(block.core)]
    return out


def _merge_pool(settings, unit, blocks) -> np.ndarray:
    """The outputs in each block's cell (widened by POOL_OVERLAP · margin), pooled and FPS-sampled to N."""
    import torch

    from sbdbench.geometry import farthest_point_sampling

    widen = POOL_OVERLAP * settings.margin
    kept = []
    for block in metered_steps(blocks):
        res = _run_block(settings, unit, block)
        kept.append(res[np.all((res >= block.lo - widen) & (res <= block.hi + widen), axis=1)])
    pool = np.concatenate(kept)
    if len(pool) < len(unit):
        raise SbdbenchError(f"{settings.method.name}: the blocks gave {len(pool)} points for {len(unit)}; raise --max-memory")
    return pool[farthest_point_sampling(torch.from_numpy(pool), len(unit), start=0).numpy()]
