"""Mesh collections (Stanford, Thingi10K, ModelNet40, ShapeNet) → benchmark datasets.

Each installer gets its meshes (downloaded, verified, extracted safely), selects the shapes its
card asks for, then calls the project's own :func:`sbdbench.data.splits.build_dataset`, which samples
the clean clouds and noisy inputs with the project's samplers and noise models, in a staging folder
that is moved into place only when complete.
"""

from __future__ import annotations

import inspect
import re
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from sbdbench.data.sources.archives import archive_kind, extract, limit_for, safe_member_name
from sbdbench.data.sources.context import BUILD_OPTION_NAMES, FetchContext, FetchResult
from sbdbench.errors import DataError, InputError

Mesh = Tuple[np.ndarray, np.ndarray]
BUILD_OPTIONS = BUILD_OPTION_NAMES


def _build_and_install(ctx: FetchContext, staging: Path, name: str, meshes: Dict[str, Mesh], downloads: Dict[str, str], *, categories: Optional[Dict[str, str]] = None, extra: Optional[Dict] = None) -> FetchResult:
    """Run the project's split builder into ``staging`` and install what it wrote."""
    if not meshes:
        raise DataError(f"{ctx.card.name}: no mesh selected (check the card's [options] and your --option values)")
    from sbdbench.data.splits import build_dataset

    params = inspect.signature(build_dataset).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    wanted = {"root": staging, "progress": ctx.progress, "source": f"sbdbench fetch {ctx.card.name} ({ctx.card.title})"}
    if categories:
        wanted["categories"] = categories
    for key in BUILD_OPTIONS:
        if key in ctx.options and key not in wanted:
            wanted[key] = ctx.options[key]
    kwargs = {k: v for k, v in wanted.items() if accepts_any or k in params}
    if "root" not in kwargs:
        raise DataError("sbdbench.data.splits.build_dataset does not accept root=; cannot stage the dataset safely")
    build_dataset(name, meshes, **kwargs)
    return ctx.install_dataset(staging, name, downloads, extra=extra)


def _get_all(ctx: FetchContext, specs) -> Tuple[Dict[str, Path], Dict[str, str]]:
    paths, downloads = {}, {}
    for spec in specs:
        paths[spec.name] = ctx.get_file(spec)
        downloads[spec.name] = ctx.expected_sha256(spec)
    return paths, downloads


# --- Stanford 3D Scanning Repository --------------------------------------------------------------
def install_stanford(ctx: FetchContext) -> FetchResult:
    """Stanford models (``options.models``, default bunny, dragon, armadillo, happy, drill)."""
    card = ctx.card
    name = card.options.get("dataset", card.name)
    models = [m.strip() for m in ctx.options.get("models", [])]
    by_model = {f.get("model"): f for f in card.files}
    unknown = [m for m in models if m not in by_model]
    if unknown:
        raise DataError(f"stanford: unknown model(s) {', '.join(unknown)} (known: {', '.join(sorted(by_model))})")
    present = ctx.present(name)
    if present is not None:
        return present
    specs = [by_model[m] for m in models]
    paths, downloads = _get_all(ctx, specs)
    from sbdbench.io import read_mesh

    meshes: Dict[str, Mesh] = {}
    with ctx.staging() as staging:
        raw = staging / "raw"
        for spec in specs:
            archive = paths[spec.name]
            member = spec.get("member")
            out = raw / spec.get("model")
            if archive_kind(archive) == "gz":
                extract(archive, out, gz_name=Path(member or spec.name[:-3]).name, max_bytes=limit_for(spec))
                mesh_path = out / Path(member or spec.name[:-3]).name
            else:
                extract(archive, out, members=lambda n, m=member: n == m, max_bytes=limit_for(spec))
                mesh_path = out / member
            if not mesh_path.is_file():
                raise DataError(f"stanford: {archive.name} has no member {member!r} (the archive changed?)")
            try:
                meshes[spec.get("model")] = read_mesh(mesh_path)
            except InputError as exc:
                raise DataError(f"stanford: {exc}") from None
        shutil.rmtree(raw, ignore_errors=True)
        cats = {m: c for m, c in card.options.get("categories", {}).items() if m in meshes}
        return _build_and_install(ctx, staging, name, meshes, downloads, categories=cats)


# --- Thingi10K -----------------------------------------------------------------------------------
def select_thingi10k(geometry_csv: Path, summary_csv: Path, contextual_csv: Path, options: Dict) -> List[Tuple[int, str]]:
    """(file_id, licence) of the models passing the card's filters, sorted by id, at most ``max_shapes``.

    Filters: licence in ``licences``; watertight = no boundary edges, edge-manifold (and by default
    one connected component, no self-intersection); face count within ``[min_faces, max_faces]``.
    """
    import pandas as pd

    geo = pd.read_csv(geometry_csv)
    summary = pd.read_csv(summary_csv)
    ctxd = pd.read_csv(contextual_csv)
    need = {"file_id", "num_boundary_edges", "edge_manifold", "num_connected_components", "num_faces"}
    if not need <= set(geo.columns) or not {"ID", "Thing ID"} <= set(summary.columns) or not {"Thing ID", "License"} <= set(ctxd.columns):
        raise DataError("thingi10k: the metadata CSVs lack expected columns (file_id, num_boundary_edges, License, ...); the upstream format changed")
    df = geo.merge(summary[["ID", "Thing ID"]], left_on="file_id", right_on="ID", how="left")
    df = df.merge(ctxd[["Thing ID", "License"]], on="Thing ID", how="left")
    df["License"] = df["License"].fillna("unknown")
    keep = (df["num_boundary_edges"] == 0) & (df["edge_manifold"] == 1)
    if options.get("single_component", True):
        keep &= df["num_connected_components"] == 1
    if options.get("no_self_intersections", True) and "num_self_intersections" in df.columns:
        keep &= df["num_self_intersections"] == 0
    licences = options.get("licences")
    if licences:
        keep &= df["License"].isin(list(licences))
    keep &= df["num_faces"].between(int(options.get("min_faces", 0)), int(options.get("max_faces", 10**9)))
    keep &= ~df["file_id"].isin(list(options.get("exclude_ids", [])))
    chosen = df[keep].sort_values("file_id").head(int(options.get("max_shapes", 40)))
    return [(int(r.file_id), str(r.License)) for r in chosen.itertuples()]


def install_thingi10k(ctx: FetchContext) -> FetchResult:
    card = ctx.card
    name = card.options.get("dataset", card.name)
    present = ctx.present(name)
    if present is not None:
        return present
    paths, downloads = _get_all(ctx, [f for f in card.files if not f.optional])
    role = {f.get("role"): paths[f.name] for f in card.files if not f.optional}
    try:
        chosen = select_thingi10k(role["geometry"], role["summary"], role["contextual"], ctx.options)
    except (ValueError, TypeError, KeyError) as exc:  # a malformed CSV or option value (pandas' errors)
        raise DataError(f"thingi10k: cannot select models from the metadata CSVs ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not chosen:
        raise DataError("thingi10k: no model passes the licence/watertightness filters of the card")
    ids = {str(fid) for fid, _ in chosen}
    meshes: Dict[str, Mesh] = {}
    with ctx.staging() as staging:
        raw = staging / "raw"
        mesh_spec = next(f for f in card.files if f.get("role") == "meshes")
        extract(role["meshes"], raw, members=lambda n: n.endswith(".npz") and Path(n).stem in ids, max_bytes=limit_for(mesh_spec))
        found = {p.stem: p for p in raw.rglob("*.npz")}
        for fid, _ in chosen:
            path = found.get(str(fid))
            if path is None:
                raise DataError(f"thingi10k: model {fid} is missing from {role['meshes'].name}")
            with np.load(path, allow_pickle=False) as data:
                faces_key = "facets" if "facets" in data else "faces"
                meshes[f"thingi_{fid}"] = (np.asarray(data["vertices"], dtype=np.float64), np.asarray(data[faces_key], dtype=np.int64))
        shutil.rmtree(raw, ignore_errors=True)
        licences = {f"thingi_{fid}": lic for fid, lic in chosen}
        return _build_and_install(ctx, staging, name, meshes, downloads, extra={"shape_licences": licences})


# --- ModelNet40 ------------------------------------------------------------------------------------
def read_off_lenient(path: Path) -> Mesh:
    """Read an OFF mesh, accepting ModelNet's malformed header ``OFF123 456 0`` on one line; polygons are fan-triangulated."""
    tokens_lines = [line.split("#", 1)[0].split() for line in path.read_text(errors="replace").splitlines()]
    tokens_lines = [t for t in tokens_lines if t]
    if not tokens_lines or not tokens_lines[0][0].upper().startswith("OFF"):
        raise InputError(f"{path}: not an OFF file")
    head = tokens_lines[0]
    rest_of_head = ([head[0][3:]] if len(head[0]) > 3 else []) + head[1:]
    rows = tokens_lines[1:]
    if len(rest_of_head) < 2:
        rest_of_head, rows = rows[0], rows[1:]
    try:
        nv, nf = int(rest_of_head[0]), int(rest_of_head[1])
        verts = np.asarray([[float(x) for x in r[:3]] for r in rows[:nv]], dtype=np.float64)
        faces = []
        for r in rows[nv : nv + nf]:
            k = int(r[0])
            idx = [int(x) for x in r[1 : 1 + k]]
            faces.extend([idx[0], idx[i], idx[i + 1]] for i in range(1, k - 1))
    except (ValueError, IndexError):
        raise InputError(f"{path}: malformed OFF file") from None
    if len(verts) != nv or not faces:
        raise InputError(f"{path}: truncated OFF file")
    return verts, np.asarray(faces, dtype=np.int64)


def install_modelnet40(ctx: FetchContext) -> FetchResult:
    """ModelNet40: the first ``per_class`` models (sorted) of each class in ``classes`` from the ``split`` folder."""
    card = ctx.card
    name = card.options.get("dataset", card.name)
    present = ctx.present(name)
    if present is not None:
        return present
    spec = next(f for f in card.files if not f.optional)
    archive = ctx.get_file(spec)
    downloads = {spec.name: ctx.expected_sha256(spec)}
    per_class = int(ctx.options.get("per_class", 2))
    split = ctx.options.get("source_split", "test")
    classes = set(ctx.options.get("classes", []) or [])
    import zipfile

    pattern = re.compile(rf"^(?:.*/)?ModelNet40/([^/]+)/{split}/([^/]+)\.off$")
    with zipfile.ZipFile(archive) as zf:
        by_class: Dict[str, List[str]] = {}
        for member in zf.namelist():
            member = safe_member_name(member, archive.name)  # the name extract() gives it
            match = pattern.match(member)
            if match and (not classes or match.group(1) in classes):
                by_class.setdefault(match.group(1), []).append(member)
    chosen = {m for members in by_class.values() for m in sorted(members)[:per_class]}
    if not chosen:
        raise DataError(f"modelnet40: no OFF file under ModelNet40/<class>/{split}/ in {archive.name}")
    with ctx.staging() as staging:
        raw = staging / "raw"
        extract(archive, raw, members=lambda n: n in chosen, max_bytes=limit_for(spec))
        meshes: Dict[str, Mesh] = {}
        categories = {}
        for member in sorted(chosen):
            try:
                meshes[Path(member).stem] = read_off_lenient(raw / member)
            except InputError as exc:
                ctx.log(f"modelnet40: skipping {member}: {exc}")
                continue
            categories[Path(member).stem] = pattern.match(member).group(1)
        shutil.rmtree(raw, ignore_errors=True)
        return _build_and_install(ctx, staging, name, meshes, downloads, extra={"modelnet_classes": categories})


# --- ShapeNet (gated: only from a path the user gives) ----------------------------------------------
def install_shapenet(ctx: FetchContext) -> FetchResult:
    """ShapeNetCore from ``--from /path/to/ShapeNetCore`` (v2: ``<synset>/<model>/models/model_normalized.obj``; v1: ``<synset>/<model>/model.obj``)."""
    card = ctx.card
    name = card.options.get("dataset", card.name)
    root = ctx.source_path
    if root is None:
        raise DataError(card.options.get("gated_message", "ShapeNet is gated: download it yourself and pass --from PATH"))
    if not root.is_dir():
        raise DataError(f"--from {root}: ShapeNetCore must be an extracted folder (<synset>/<model>/models/model_normalized.obj)")
    present = ctx.present(name)
    if present is not None:
        return present
    per_synset = int(ctx.options.get("per_synset", 2))
    synsets = set(ctx.options.get("synsets", []) or [])
    chosen: List[Path] = []
    for synset_dir in sorted(p for p in root.iterdir() if p.is_dir() and (not synsets or p.name in synsets)):
        models = []
        for model_dir in sorted(p for p in synset_dir.iterdir() if p.is_dir()):
            for rel in ("models/model_normalized.obj", "model.obj"):
                if (model_dir / rel).is_file():
                    models.append(model_dir / rel)
                    break
            if len(models) >= per_synset:
                break
        chosen.extend(models)
    if not chosen:
        raise DataError(f"--from {root}: no <synset>/<model>/models/model_normalized.obj found (is it ShapeNetCore?)")
    from sbdbench.io import read_mesh

    meshes: Dict[str, Mesh] = {}
    for path in chosen:
        model_dir = path.parent.parent if path.parent.name == "models" else path.parent
        try:
            meshes[f"{model_dir.parent.name}_{model_dir.name}"] = read_mesh(path)
        except InputError as exc:
            ctx.log(f"shapenet: skipping {path}: {exc}")
    with ctx.staging() as staging:
        return _build_and_install(ctx, staging, name, meshes, {}, extra={"shapenet_root": str(root)})
