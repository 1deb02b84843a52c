"""DMRDenoise's test set (Luo & Hu, ACM MM'20) → clean + noisy clouds in the benchmark layout.

Downloads (card ``dmr``): ``dataset_test.zip`` from the authors' Drive folder, holding
``input_full_test_50k_<σ>/<shape>.xyz`` (σ ∈ 0.010, 0.020, 0.025, 0.030), and the clean ground
truth (a single Drive file, the author's answer in DMRDenoise issue #10) holding
``gts_full_test_50k/<shape>.xyz`` (+ ``.normal``). Shape names drop the ``.obj`` the authors left in
(``airplane_0016.obj.xyz`` → ``airplane_0016``). Layout produced::

    dmr/pointclouds/test/<N>_poisson/<shape>.xyz        clean (N counted from the files: 50000)
    examples/dmr_<N>_poisson_<σ>/<shape>.xyz             noisy inputs as published

There are no meshes (DMR published none), so P2M cannot be computed on this set; the training
patches (``dataset_train.zip``, HDF5) are an optional card file that is not installed.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Dict

from sbdbench.data.sources.archives import extract, limit_for
from sbdbench.data.sources.context import FetchContext, FetchResult
from sbdbench.errors import DataError
from sbdbench.protocol import clean_rel_dir, noisy_rel_dir, parse_clean_dir

_NOISY_DIR = re.compile(r"^input_full_test_(\d+)k_([0-9.]+)$")
_GT_DIR = re.compile(r"^gts_full_test_(\d+)k$")


def shape_name(filename: str) -> str:
    """``airplane_0016.obj.xyz`` → ``airplane_0016``."""
    stem = filename[: -len(".xyz")] if filename.endswith(".xyz") else filename
    return stem[: -len(".obj")] if stem.endswith(".obj") else stem


def count_points(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip() and not line.startswith(b"#"))


def install(ctx: FetchContext) -> FetchResult:
    card = ctx.card
    name = card.options.get("dataset", card.name)
    present = ctx.present(name)
    if present is not None:
        return present
    downloads: Dict[str, str] = {}
    files = {}
    for role in ("test", "gt"):
        spec = next((f for f in card.files if f.get("role") == role), None)
        if spec is None:
            raise DataError(f"card {card.name}: no file with role {role!r}")
        files[role] = (ctx.get_file(spec), spec)
        downloads[spec.name] = ctx.expected_sha256(spec)
    with ctx.staging() as staging:
        raw = staging / "raw"
        for path, spec in files.values():
            extract(path, raw, members=lambda n: n.endswith(".xyz"), max_bytes=limit_for(spec))
        gt_dirs = [p for p in raw.rglob("*") if p.is_dir() and _GT_DIR.match(p.name)]
        noisy_dirs = [p for p in raw.rglob("*") if p.is_dir() and _NOISY_DIR.match(p.name)]
        if not gt_dirs or not noisy_dirs:
            raise DataError(f"{card.name}: the downloads lack gts_full_test_*k/ or input_full_test_*k_<σ>/ folders (unexpected layout)")
        clean: Dict[str, Path] = {}
        n_points = None
        for gt_dir in gt_dirs:
            for path in sorted(gt_dir.glob("*.xyz")):
                shape = shape_name(path.name)
                n = count_points(path)
                n_points = n_points or n
                target = staging / clean_rel_dir(name, "test", n) / f"{shape}.xyz"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                clean[shape] = target
        for noisy_dir in noisy_dirs:
            sigma = float(_NOISY_DIR.match(noisy_dir.name).group(2))
            for path in sorted(noisy_dir.glob("*.xyz")):
                shape = shape_name(path.name)
                if shape not in clean:
                    raise DataError(f"{card.name}: noisy input {path.name} has no clean ground truth")
                n = parse_clean_dir(clean[shape].parent.name)
                target = staging / noisy_rel_dir(name, n, sigma) / f"{shape}.xyz"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        shutil.rmtree(raw, ignore_errors=True)
        return ctx.install_dataset(staging, name, downloads, extra={"note": card.options.get("note", "")})
