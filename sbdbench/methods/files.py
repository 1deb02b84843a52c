"""``sbdbench denoise``: one point-cloud file in, one out — in the input's frame, with the method's frozen settings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from sbdbench.errors import InputError


def denoise_file(in_path, out_path, method_name: str, *, params: Optional[Dict[str, Any]] = None, noise_level: Optional[float] = None,
                 use_frozen: bool = True, max_memory_mb: Optional[float] = None, drop_invalid: bool = False,
                 progress: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """Denoise one cloud file (text, .ply, .npy, .pcd, .las/.laz; any frame and size) and write the result.

    The output keeps the input's frame and coordinate precision; its format follows ``out_path``'s suffix,
    which must be a known one (a path without a suffix is refused, never extended). A count-preserving
    method's output point i keeps input point i's attributes (normals, colours, intensity, …); any other
    method's output is x y z only, and ``attributes_note`` says so (docs/io-formats.md). Parameters: the frozen settings nearest to the cloud's size and
    noise level (σ given, or estimated in the unit-sphere frame), updated with ``params``.

    ``max_memory_mb`` caps the working memory: the cloud is denoised in spatial blocks as large as the cap allows
    (:func:`sbdbench.methods.blocks.denoise_in_blocks`; a cloud that cannot fit is a one-line error naming a cap
    that does). ``drop_invalid`` drops points with NaN/Inf coordinates (else they are an error); ``progress(done,
    total)`` is called with the points done. The output file is written atomically (never left half-written).

    Returns:
        ``{"n_in", "n_out", "seconds", "params", "out", "noise_level", "sigma", "sigma_source", "cell", "defaults",
        "warning"}``: ``sigma`` is the σ the settings were chosen for (``sigma_source`` "given" or "estimated";
        None with ``use_frozen=False`` and no σ given), ``cell`` the frozen cell's (N, σ) or None (no frozen
        settings, or ``defaults``), ``warning`` one line when the method ran without frozen settings, else None;
        ``attributes`` the attribute names written with the output, ``attributes_note`` one line when the
        input's attributes could not be carried, else None; ``dropped`` the points dropped by ``drop_invalid``,
        ``points_per_second`` the input points denoised per second.
    """
    from sbdbench.geometry import normalize_unit_sphere
    from sbdbench.io import POINT_FORMATS, check_writable, read_cloud, write_cloud
    from sbdbench.methods import get_method_class, resolve_method
    from sbdbench.methods.blocks import denoise_in_blocks
    from sbdbench.outputs import refuse_overwrite

    in_path, out_path = Path(in_path), Path(out_path)
    if out_path.suffix.lower() not in POINT_FORMATS:
        raise InputError(f"{out_path}: unknown output format {out_path.suffix or '(no suffix)'!r} (use one of {', '.join(POINT_FORMATS)})")
    refuse_overwrite(out_path, [in_path])
    get_method_class(method_name)
    cloud = read_cloud(in_path, drop_invalid=drop_invalid)
    points = cloud.xyz
    sigma_for_settings = noise_level
    if sigma_for_settings is None and use_frozen:
        from sbdbench.methods.classical._common import estimate_noise

        unit, _, _ = normalize_unit_sphere(points)
        sigma_for_settings = estimate_noise(unit) if len(unit) >= 4 else None
    resolved = resolve_method(method_name, len(points), sigma_for_settings, overrides=params, frozen=use_frozen)
    method = resolved.method
    if method.preserves_count:
        check_writable(out_path, cloud)  # attributes the output format cannot hold: refused before the work
    t0 = time.perf_counter()
    out = denoise_in_blocks(method, points, noise_level=noise_level, max_memory_mb=max_memory_mb, progress=progress)
    seconds = time.perf_counter() - t0
    result, note = carry_attributes(cloud, out, method)
    write_cloud(out_path, result)
    return {"n_in": len(points), "n_out": len(out), "seconds": seconds, "params": method.get_params(), "out": out_path,
            "noise_level": noise_level, "sigma": sigma_for_settings, "sigma_source": "given" if noise_level is not None else "estimated",
            "cell": resolved.cell, "defaults": not use_frozen, "warning": resolved.note,
            "attributes": list(result.attributes), "attributes_note": note, "dropped": cloud.dropped,
            "points_per_second": len(points) / seconds if seconds > 0 else float("inf")}


def carry_attributes(cloud, out, method) -> Tuple[Any, Optional[str]]:
    """(the output cloud, a one-line note or None): ``out``'s positions with ``cloud``'s attributes when
    ``method`` preserves the count (output point i is input point i moved), else x y z only."""
    if method.preserves_count and len(out) == len(cloud):
        return cloud.with_xyz(out), None
    note = None
    if cloud.attributes or cloud.native is not None:
        names = " ".join(cloud.attributes) or "the LAS header and records"
        note = (f"{method.name} does not keep point i as output point i ({len(cloud)} -> {len(out)} points): "
                f"attributes cannot be carried ({names[:80]}); writing x y z only")
    return _xyz_cloud(cloud, out), note


def _xyz_cloud(cloud, out):
    from sbdbench.io_cloud import PointCloudData

    return PointCloudData(out, {}, cloud.xyz_dtype)
