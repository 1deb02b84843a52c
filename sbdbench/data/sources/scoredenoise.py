"""PUNet and PCNet from ScoreDenoise's ``data.zip`` (Google Drive folder), already in the benchmark layout.

``data.zip`` holds ``data/<Folder>/{meshes,pointclouds}/...`` and
``data/examples/<Folder>_<N>_poisson_<σ>/...`` (Folder = PUNet or PCNet). The installer takes one
folder, renames it to the source name (``PUNet`` → ``punet``, ``examples/PUNet_…`` →
``examples/punet_…``) so that ``open_dataset("punet")`` finds it, and leaves every file byte for
byte as published. PCNet's ground-truth meshes are not in ``data.zip``; they come from the
PointCleanNet authors' Nextcloud share (card file with ``role = "meshes"``) and are matched to the
test clouds by shape name.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path
from typing import Dict, List

from sbdbench.data.sources.archives import archive_kind, extract, limit_for, safe_member_name
from sbdbench.data.sources.context import FetchContext, FetchResult
from sbdbench.errors import DataError

MESH_SUFFIXES = (".off", ".ply", ".obj", ".stl")


def _zip_prefix(zip_path: Path, folder: str) -> str:
    """The path in front of ``<folder>/`` inside the zip ('' or 'data/'), found from its members."""
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            match = re.match(rf"^(.*?){re.escape(folder)}/(pointclouds|meshes)/", name.replace("\\", "/"))
            if match:  # checked like a member name: the prefix is joined to the extraction folder
                prefix = safe_member_name(match.group(1), zip_path.name)
                return prefix + "/" if prefix else ""
    raise DataError(f"{zip_path.name} holds no {folder}/pointclouds or {folder}/meshes folder (unexpected layout; was the right file downloaded?)")


def install(ctx: FetchContext) -> FetchResult:
    card = ctx.card
    name = card.options.get("dataset", card.name)
    folder = card.options["folder"]
    present = ctx.present(name)
    if present is not None:
        return present
    data_spec = next(f for f in card.files if f.get("role", "data") == "data")
    data_zip = ctx.get_file(data_spec)
    downloads = {data_spec.name: ctx.expected_sha256(data_spec)}
    if archive_kind(data_zip) != "zip":
        raise DataError(f"{data_zip}: not a zip archive; rerun with --force to download it again")
    prefix = _zip_prefix(data_zip, folder)
    wanted_dir = f"{prefix}{folder}/"
    wanted_examples = f"{prefix}examples/{folder}_"
    with ctx.staging() as staging:
        raw = staging / "raw"
        extract(data_zip, raw, members=lambda n: n.startswith(wanted_dir) or n.startswith(wanted_examples), max_bytes=limit_for(data_spec))
        os.replace(raw / prefix / folder, staging / name)
        examples_src = raw / prefix / "examples"
        if examples_src.is_dir():
            (staging / "examples").mkdir(exist_ok=True)
            for path in sorted(examples_src.glob(f"{folder}_*")):
                os.replace(path, staging / "examples" / (name + path.name[len(folder):]))
        mesh_specs = [f for f in card.files if f.get("role") == "meshes"]
        for spec in mesh_specs:
            mesh_file = ctx.get_file(spec)
            downloads[spec.name] = ctx.expected_sha256(spec)
            _add_meshes(mesh_file, staging / "raw-meshes", staging / name, split=card.options.get("mesh_split", "test"), max_bytes=limit_for(spec))
        shutil.rmtree(raw, ignore_errors=True)
        return ctx.install_dataset(staging, name, downloads)


def _add_meshes(archive: Path, scratch: Path, dataset_dir: Path, split: str, max_bytes: int) -> None:
    """Put meshes whose names match the split's clouds into ``meshes/<split>/<shape>.off``."""
    from sbdbench.io import read_mesh, write_mesh

    shapes = set()
    for res_dir in (dataset_dir / "pointclouds" / split).glob("*_poisson"):
        shapes |= {p.stem for p in res_dir.glob("*.xyz")}
    out_dir = dataset_dir / "meshes" / split
    have = {p.stem for p in out_dir.glob("*.off")} if out_dir.is_dir() else set()
    missing = shapes - have
    if not missing:
        return
    extract(archive, scratch, members=lambda n: n.lower().endswith(MESH_SUFFIXES), max_bytes=max_bytes)
    found: Dict[str, Path] = {}
    for path in sorted(scratch.rglob("*")):
        if path.suffix.lower() in MESH_SUFFIXES and path.stem in missing and path.stem not in found:
            found[path.stem] = path
    if not found:
        sample: List[str] = sorted(p.name for p in scratch.rglob("*") if p.is_file())[:8]
        raise DataError(f"{archive.name}: no mesh matches the {split} shapes ({', '.join(sorted(missing)[:5])}…); it holds {', '.join(sample) or 'nothing'}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for shape, path in found.items():
        if path.suffix.lower() == ".off":
            shutil.copyfile(path, out_dir / f"{shape}.off")
        else:
            verts, faces = read_mesh(path)
            write_mesh(out_dir / f"{shape}.off", verts, faces)
    shutil.rmtree(scratch, ignore_errors=True)
