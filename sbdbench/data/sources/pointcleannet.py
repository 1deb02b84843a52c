"""PointCleanNet's denoising set (Rakotosaona et al., CGF 2020) → clean + noisy clouds.

The archive ``pointCleanNetDataset.tar.gz`` holds ``pointCleanNetDataset/`` with shape lists
(``testset.txt``, ``trainingset.txt``, ``validationset.txt``) and, per entry, ``<entry>.xyz`` (the
input) and ``<entry>.clean_xyz`` (its ground truth). Entries look like
``galera100k_noise_white_1.00e-02``: base shape ``galera100k``, Gaussian ("white") noise,
σ = 0.01 (PointCleanNet measures σ relative to the shape's bounding-box diagonal, not ScoreDenoise's
unit sphere: numbers are not comparable across the two sets). Layout produced (test split)::

    pointcleannet/pointclouds/test/<N>_poisson/<base>.xyz              from <entry>.clean_xyz
    examples/pointcleannet_<N>_poisson_<σ>/<base>.xyz                  white noise
    examples/pointcleannet_<N>_poisson_brown_<σ>/<base>.xyz            brown noise

``<N>`` is the point count of the clean file. Entries without ``_noise_`` are clean-only. The
names in the lists come from the download, so each must be a plain file name (no path, no ``..``):
anything else refuses the archive.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Dict

from sbdbench.data.sources.archives import extract, limit_for, safe_entry_name
from sbdbench.data.sources.context import FetchContext, FetchResult
from sbdbench.data.sources.dmr import count_points
from sbdbench.errors import DataError
from sbdbench.protocol import GAUSSIAN, clean_rel_dir, noisy_rel_dir

_ENTRY = re.compile(r"^(?P<base>.+?)_noise_(?P<kind>white|brown)_(?P<sigma>[0-9.]+(?:[eE][-+]?\d+)?)$")
LISTS = {"test": "testset.txt", "train": "trainingset.txt", "val": "validationset.txt"}


def parse_entry(entry: str):
    """``galera100k_noise_white_1.00e-02`` → ('galera100k', 'gaussian', 0.01); clean entries → (entry, None, None)."""
    match = _ENTRY.match(entry)
    if not match:
        return entry, None, None
    kind = GAUSSIAN if match.group("kind") == "white" else match.group("kind")
    return match.group("base"), kind, float(match.group("sigma"))


def install(ctx: FetchContext) -> FetchResult:
    card = ctx.card
    name = card.options.get("dataset", card.name)
    splits = list(ctx.options.get("splits") or ["test"])
    unknown = [s for s in splits if s not in LISTS]
    if unknown:
        raise DataError(f"pointcleannet: unknown split(s) {', '.join(map(str, unknown))} (known: {', '.join(LISTS)})")
    present = ctx.present(name)
    if present is not None:
        return present
    spec = next(f for f in card.files if not f.optional)
    archive = ctx.get_file(spec)
    downloads = {spec.name: ctx.expected_sha256(spec)}
    with ctx.staging() as staging:
        raw = staging / "raw"
        extract(archive, raw, members=lambda n: n.endswith((".xyz", ".clean_xyz", ".txt")) or "/" not in n, max_bytes=limit_for(spec))
        lists = list(raw.rglob(LISTS["test"]))
        if not lists:
            raise DataError(f"{archive.name}: no {LISTS['test']} inside (unexpected layout; is it pointCleanNetDataset.tar.gz?)")
        root = lists[0].parent
        for split in splits:
            list_file = root / LISTS[split]
            if not list_file.is_file():
                raise DataError(f"{archive.name}: no {LISTS[split]} for split {split!r}")
            entries = read_list(list_file)
            _convert(root, entries, staging, name, split)
        shutil.rmtree(raw, ignore_errors=True)
        return ctx.install_dataset(staging, name, downloads, extra={"note": card.options.get("note", "")})


def read_list(list_file: Path) -> list:
    """The entries of a shape list, each checked to be a plain file name (and its base shape too)."""
    where = f"pointCleanNetDataset/{list_file.name}"
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{where}: not a text file (unexpected archive content)") from None
    entries = [line.strip() for line in lines if line.strip()]
    for entry in entries:
        safe_entry_name(entry, where)
        safe_entry_name(parse_entry(entry)[0], where)
    return entries


def _convert(root: Path, entries, staging: Path, name: str, split: str) -> None:
    clean_written: Dict[str, int] = {}
    for entry in entries:
        base, kind, sigma = parse_entry(entry)
        clean_src = root / f"{entry}.clean_xyz"
        noisy_src = root / f"{entry}.xyz"
        if not clean_src.is_file():
            clean_src = root / f"{base}.xyz" if kind else noisy_src
        if not clean_src.is_file():
            raise DataError(f"pointCleanNetDataset: {entry} has no ground truth ({entry}.clean_xyz)")
        if base not in clean_written:
            n = count_points(clean_src)
            target = staging / clean_rel_dir(name, split, n) / f"{base}.xyz"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clean_src, target)
            clean_written[base] = n
        if kind is None or split != "test":
            continue
        if not noisy_src.is_file():
            raise DataError(f"pointCleanNetDataset: {entry}.xyz is missing")
        n = clean_written[base]
        target = staging / noisy_rel_dir(name, n, sigma, kind) / f"{base}.xyz"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(noisy_src, target)
