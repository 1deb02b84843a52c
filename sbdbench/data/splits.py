"""Writing a dataset (meshes → clean clouds → noisy inputs) in ScoreDenoise's layout, its manifest, and verify.

One build = a list of :class:`ShapeTask` (a shape, its split, category and mesh or recipe) and a
:class:`BuildPlan` (resolutions per split, noisy inputs). For every shape the builder

1. normalises the mesh to the unit sphere (bounding-box centre, max vertex radius — ScoreDenoise's
   ``NormalizeUnitSphere``) and writes ``<name>/meshes/<split>/<shape>.off``;
2. samples exactly N points per resolution (Poisson-disk by default) and writes
   ``<name>/pointclouds/<split>/<N>_poisson/<shape>.xyz`` (``%.8f``), in the mesh's unit frame;
3. for test shapes writes ``examples/<name>_<N>_poisson_<σ>/<shape>.xyz`` = clean + noise
   (other noise kinds: ``<name>_<N>_poisson_<kind>_<σ>``); val shapes get
   ``examples/<name>_val_<N>_poisson_<σ>/`` (never mixed with the test inputs ScoreDenoise reads).

Seeds are derived from strings with SHA-256 (:func:`derive_seed`), never from Python's salted
``hash()``, so the same build gives the same bytes everywhere. Every file is written atomically;
``manifest.json`` (sources, versions, seeds, parameters, per-shape info, sha256 of every file
relative to the data root) is written **last**, so an interrupted build has no manifest and
:func:`verify_dataset` rejects it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from sbdbench import protocol
from sbdbench.data.dataset import Dataset, sigma_label
from sbdbench.errors import DataError, InputError, SbdbenchError
from sbdbench.paths import atomic_write_text, data_root, sha256_file

MANIFEST_FORMAT = "sbdbench-dataset/1"
#: Bumped whenever sampling / noise / writing changes the bytes of a build (invalidates cached builds).
GENERATOR_VERSION = "sbdbench-data-1"
BUILDING_MARKER = ".sbdbench-building"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


# --- seeds and checks ---------------------------------------------------------------------------------
def derive_seed(*parts) -> int:
    """A 63-bit seed from the SHA-256 of ``'|'.join(parts)`` (stable across runs and machines)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def check_name(name: str, what: str = "name") -> str:
    """Dataset and shape names: letters, digits, ``_ . + -``; no path separators."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InputError(f"invalid {what} {name!r} (use letters, digits, '_', '.', '+', '-')")
    return name


def check_resolutions(resolutions: Iterable) -> Tuple[int, ...]:
    out = []
    for n in resolutions:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) and not (isinstance(n, float) and n.is_integer()):
            raise InputError(f"the number of points must be a positive integer, got {n!r}")
        if int(n) <= 0:
            raise InputError(f"the number of points must be > 0, got {n}")
        out.append(int(n))
    return tuple(sorted(set(out)))


def check_noise_levels(levels: Iterable) -> Tuple[float, ...]:
    from sbdbench.data.noise import check_sigma

    return tuple(sorted({check_sigma(s) for s in levels}))



def files_digest(manifest: Dict, split_prefix: Optional[str] = None) -> str:
    """One SHA-256 over the sorted ``"<path> <sha256>\\n"`` lines of a manifest's files (all, or those
    whose path starts with ``split_prefix``): a single number that pins a whole build (see datasets/synth.toml)."""
    lines = "".join(f"{k} {v['sha256']}\n" for k, v in sorted(manifest.get("files", {}).items())
                    if split_prefix is None or k.startswith(split_prefix))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def library_versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("sbdbench", "numpy", "scipy", "trimesh", "manifold3d", "scikit-image", "point-cloud-utils"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "absent"
    return out


# --- build plan -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoisySpec:
    """One noisy-input set: noise kind, σ and resolution."""

    kind: str
    sigma: float
    n_points: int

    def to_list(self) -> list:
        return [self.kind, self.sigma, self.n_points]


@dataclass
class ShapeTask:
    """One shape to write: either a recipe (``recipe`` + ``params``) or an explicit mesh."""

    name: str
    split: str
    category: str = "unknown"
    recipe: Optional[str] = None
    params: Dict = field(default_factory=dict)
    verts: Optional[np.ndarray] = None
    faces: Optional[np.ndarray] = None
    info: Dict = field(default_factory=dict)


@dataclass
class BuildPlan:
    """What to write for each split: clean resolutions and noisy sets."""

    resolutions: Dict[str, Tuple[int, ...]]
    noisy: Dict[str, Tuple[NoisySpec, ...]]
    sampler: str = "poisson"
    base_seed: int = 0

    def to_dict(self) -> Dict:
        return {
            "resolutions": {k: list(v) for k, v in sorted(self.resolutions.items())},
            "noisy": {k: [s.to_list() for s in v] for k, v in sorted(self.noisy.items())},
            "sampler": self.sampler,
            "base_seed": self.base_seed,
        }


def noisy_rel_dir(name: str, split: str, spec: NoisySpec) -> str:
    """Path of a noisy set relative to the data root (``examples/...``)."""
    return protocol.noisy_rel_dir(name, spec.n_points, spec.sigma, spec.kind, split)


# --- the per-shape worker (top level, so a process pool can run it) ------------------------------------
def _build_shape(name: str, root: str, task: ShapeTask, plan: BuildPlan) -> Dict:
    from sbdbench.data.noise import add_noise
    from sbdbench.data.sampling import sample
    from sbdbench.data.shapes import build_recipe, surface_topology
    from sbdbench.geometry import bbox_center_and_scale, check_mesh
    from sbdbench.io import write_mesh, write_points

    root_p = Path(root)
    if task.recipe is not None:
        verts, faces = build_recipe(task.recipe, task.params)
    else:
        verts, faces = task.verts, task.faces
    verts, faces = check_mesh(verts, faces, name=f"shape {task.name!r}")
    topology = surface_topology(verts, faces)
    if task.recipe is not None and not (topology["closed"] and topology["components"] == 1):
        raise DataError(f"shape {task.name!r}: recipe {task.recipe} gave a surface that is not one closed volume ({topology})")
    center, scale = bbox_center_and_scale(verts)
    if not scale > 0:
        raise InputError(f"shape {task.name!r}: all mesh vertices coincide")
    unit_verts = (verts - center) / scale
    files: Dict[str, str] = {}

    def record(path: Path) -> None:
        files[path.relative_to(root_p).as_posix()] = sha256_file(path)

    record(write_mesh(root_p / name / "meshes" / task.split / f"{task.name}.off", unit_verts, faces))
    # the clouds are sampled from the mesh as written (same %.8f vertices), so mesh and cloud agree exactly
    unit_verts = np.round(unit_verts, 8)
    seeds: Dict[str, int] = {}
    clean_radius: Dict[str, float] = {}
    clean_by_n: Dict[int, np.ndarray] = {}
    for n in plan.resolutions.get(task.split, ()):
        seed = derive_seed(name, plan.base_seed, task.name, plan.sampler, n)
        seeds[f"{plan.sampler}_{n}"] = seed
        pts = sample(unit_verts, faces, n, seed, plan.sampler)
        record(write_points(root_p / protocol.clean_rel_dir(name, task.split, n) / f"{task.name}.xyz", pts))
        clean_by_n[n] = np.round(pts, 8)  # exactly what the file holds
        clean_radius[str(n)] = round(bbox_center_and_scale(clean_by_n[n])[1], 6)
    for spec in plan.noisy.get(task.split, ()):
        if spec.n_points not in clean_by_n:
            raise InputError(f"noisy set {spec.to_list()} needs clean clouds at {spec.n_points} points in split {task.split!r}")
        seed = derive_seed(name, plan.base_seed, task.name, "noise", spec.kind, spec.n_points, sigma_label(spec.sigma))
        seeds[f"{spec.kind}_{spec.n_points}_{sigma_label(spec.sigma)}"] = seed
        noisy = add_noise(clean_by_n[spec.n_points], spec.sigma, spec.kind, seed=seed)
        record(write_points(root_p / noisy_rel_dir(name, task.split, spec) / f"{task.name}.xyz", noisy))
    info = {
        "split": task.split,
        "category": task.category,
        "n_verts": int(len(verts)),
        "n_faces": int(len(faces)),
        "normalization": {"center": [round(float(c), 10) for c in center], "scale": round(float(scale), 10)},
        "clean_radius": clean_radius,
        "seeds": seeds,
        **topology,
    }
    if task.recipe is not None:
        info.update(recipe=task.recipe, params=task.params)
    info.update(task.info)
    return {"files": files, "info": info}


# --- whole builds ----------------------------------------------------------------------------------------
def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SbdbenchError(f"cannot create the data folder {root}: {exc.strerror or exc}") from None
    if not os.access(root, os.W_OK):
        raise SbdbenchError(f"the data folder {root} is not writable (set $SBDBENCH_HOME to a writable folder)")


def _clear_previous(ds: Dataset) -> None:
    """Remove an earlier build of this dataset (only one sbdbench wrote: manifest or building marker)."""
    if ds.dir.exists():
        ours = (ds.dir / BUILDING_MARKER).exists() or (
            ds.manifest_path.is_file() and _read_manifest(ds).get("format") == MANIFEST_FORMAT)
        if not ours:
            raise DataError(f"{ds.dir} exists and was not built by sbdbench; choose another dataset name or remove it")
        if ds.manifest_path.exists():
            ds.manifest_path.unlink()  # invalidate first: an interrupted rebuild must not verify
        shutil.rmtree(ds.dir)
    if ds.examples_dir.is_dir():
        for sub in ds.examples_dir.iterdir():
            if sub.is_dir() and protocol.parse_noisy_dir(sub.name, ds.name):
                shutil.rmtree(sub)


def _read_manifest(ds: Dataset) -> Dict:
    """The manifest as a dict; ``{}`` when unreadable or not a JSON object (``[]``, ``null``...)."""
    try:
        manifest = json.loads(ds.manifest_path.read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def covers(have: Dict, want: Dict) -> bool:
    """True if a build with parameters ``have`` already holds every file a build with ``want`` would write.

    Files depend only on (shape, split, N, noise, σ) and the generator, never on what else is built
    (seeds are per file), so a build with more shapes / resolutions / noisy sets contains the
    smaller build byte for byte.
    """
    if any(have.get(k) != want.get(k) for k in ("source", "generator")):
        return False
    hp, wp = have.get("plan", {}), want.get("plan", {})
    if hp.get("sampler") != wp.get("sampler") or hp.get("base_seed") != wp.get("base_seed"):
        return False
    have_shapes = have.get("shapes", {})
    if any(have_shapes.get(k) != split for k, split in want.get("shapes", {}).items()):
        return False
    for split, res in wp.get("resolutions", {}).items():
        if not set(res) <= set(hp.get("resolutions", {}).get(split, [])):
            return False
    for split, sets in wp.get("noisy", {}).items():
        have_sets = {tuple(x) for x in hp.get("noisy", {}).get(split, [])}
        if not {tuple(x) for x in sets} <= have_sets:
            return False
    return True


def existing_build(ds: Dataset, parameters: Dict) -> bool:
    """True if ``ds`` has a manifest whose build covers these parameters (:func:`covers`) and every file verifies."""
    if not ds.manifest_path.is_file():
        return False
    manifest = _read_manifest(ds)
    if manifest.get("format") != MANIFEST_FORMAT:
        return False
    if not covers(manifest.get("parameters", {}), json.loads(json.dumps(parameters))):
        return False
    try:
        verify_dataset(ds)
    except DataError:
        return False
    return True


def write_dataset(name: str, tasks: Sequence[ShapeTask], plan: BuildPlan, *, root: Optional[Path] = None,
                  source: str = "user meshes", extra: Optional[Dict] = None, force: bool = False,
                  progress: bool = True, workers: Optional[int] = None, version: str = "1") -> Dataset:
    """Write a whole dataset for ``tasks`` following ``plan`` (see the module doc); returns it.

    Idempotent: if the dataset exists, verifies and already holds everything asked for (same
    generator; the same or more shapes, resolutions and noisy sets, see :func:`covers`), it is
    returned as it is, without rebuilding (``force=True`` rebuilds exactly what is asked). Concurrent builds of the same dataset are
    serialised by a lock file. ``version`` (with :data:`GENERATOR_VERSION`) enters the parameters,
    so a changed generator never returns a stale build.
    """
    check_name(name, "dataset name")
    root = Path(root) if root is not None else data_root()
    _check_writable(root)
    seen = set()
    for t in tasks:
        check_name(t.name, "shape name")
        if t.name in seen:
            raise InputError(f"shape {t.name!r} appears twice")
        seen.add(t.name)
    ds = Dataset(name, root)
    parameters = {"plan": plan.to_dict(), "shapes": {t.name: t.split for t in tasks}, "source": source,
                  "generator": f"{GENERATOR_VERSION}/{version}"}
    with _build_lock(root, name):  # a second build of the same dataset waits, then finds it done
        if not force and existing_build(ds, parameters):
            return ds
        return _write_locked(ds, tasks, plan, parameters, source, extra, progress, workers)


def _named(shape: str, fn, *args):
    """Run ``fn(*args)``; an sbdbench error gets the shape's name in front (one line still)."""
    try:
        return fn(*args)
    except SbdbenchError as exc:
        msg = str(exc)
        if shape in msg:
            raise
        raise type(exc)(f"shape {shape!r}: {msg}") from None


@contextlib.contextmanager
def _build_lock(root: Path, name: str):
    """An exclusive advisory lock on ``<root>/.<name>.lock`` for the duration of a build."""
    import fcntl

    with open(root / f".{name}.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_locked(ds: Dataset, tasks: Sequence[ShapeTask], plan: BuildPlan, parameters: Dict, source: str,
                  extra: Optional[Dict], progress: bool, workers: Optional[int]) -> Dataset:
    from sbdbench.progress import Progress

    name, root = ds.name, ds.root
    _clear_previous(ds)
    ds.dir.mkdir(parents=True, exist_ok=True)
    (ds.dir / BUILDING_MARKER).write_text("an sbdbench build is in progress or was interrupted\n")
    workers = int(workers) if workers else min(2, os.cpu_count() or 1)
    results: Dict[str, Dict] = {}
    bar = Progress(len(tasks), f"building {name}", "shape", enabled=progress)
    try:
        if workers > 1 and len(tasks) > 1:
            import multiprocessing as mp

            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            try:
                futures = [pool.submit(_build_shape, name, str(root), t, plan) for t in tasks]
                for t, fut in zip(tasks, futures):
                    results[t.name] = _named(t.name, fut.result)
                    bar.update(1)
            finally:  # on an error, drop the queued shapes instead of building them all first
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for t in tasks:
                results[t.name] = _named(t.name, _build_shape, name, str(root), t, plan)
                bar.update(1)
    finally:
        bar.close()
    files: Dict[str, str] = {}
    for res in results.values():
        files.update(res["files"])
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "source": source,
        "libraries": library_versions(),
        "layout": "ScoreDenoise data/ layout; paths in 'files' are relative to the data root (the folder holding "
                  f"{name}/ and examples/)",
        "seed_rule": "sha256('|'.join([dataset, base_seed, shape, sampler, N])) and "
                     "sha256('|'.join([dataset, base_seed, shape, 'noise', kind, N, sigma])), first 8 bytes little-endian >> 1",
        "parameters": parameters,
        "shapes": {k: results[k]["info"] for k in sorted(results)},
        "files": {k: {"sha256": files[k]} for k in sorted(files)},
    }
    if extra:
        manifest.update(extra)
    atomic_write_text(ds.manifest_path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (ds.dir / BUILDING_MARKER).unlink()
    return Dataset(name, root)


def build_dataset(name: str, meshes: Dict[str, Tuple[np.ndarray, np.ndarray]], *, root: Optional[Path] = None,
                  splits: Optional[Dict[str, str]] = None, categories: Optional[Dict[str, str]] = None,
                  resolutions: Sequence[int] = protocol.DEFAULT_RESOLUTIONS, noise_levels: Sequence[float] = protocol.DEFAULT_SIGMAS,
                  noises: Sequence[str] = (protocol.GAUSSIAN,), sampler: str = "poisson", base_seed: int = 0,
                  source: str = "user meshes", force: bool = False, progress: bool = True,
                  workers: Optional[int] = None) -> Dataset:
    """A dataset from the user's meshes ``{shape: (verts (V, 3), faces (F, 3))}``, in the synth layout.

    Every shape goes to split ``splits.get(shape, 'test')``; test shapes get noisy inputs for every
    (noise kind, σ, N). Meshes are checked (faces present, finite vertices) before anything is written.
    """
    from sbdbench.data.noise import canonical_kind
    from sbdbench.geometry import check_mesh

    from sbdbench.data.sampling import SAMPLERS

    if not meshes:
        raise InputError("no meshes given")
    if sampler not in SAMPLERS:
        raise InputError(f"unknown sampler {sampler!r} (known: {', '.join(SAMPLERS)})")
    res = check_resolutions(resolutions)
    if not res:
        raise InputError("at least one resolution is needed")
    levels = check_noise_levels(noise_levels)
    kinds = [canonical_kind(k) for k in noises]
    splits = dict(splits or {})
    tasks = []
    for shape in sorted(meshes):
        check_name(shape, "shape name")
        v, f = check_mesh(*meshes[shape], name=f"mesh {shape!r}")
        split = splits.get(shape, "test")
        if split not in ("train", "val", "test"):
            raise InputError(f"shape {shape!r}: unknown split {split!r} (train, val or test)")
        tasks.append(ShapeTask(shape, split, (categories or {}).get(shape, "unknown"), verts=v, faces=f))
    noisy = tuple(NoisySpec(k, s, n) for k in kinds for n in res for s in levels)
    plan = BuildPlan(resolutions={s: res for s in {t.split for t in tasks}}, noisy={"test": noisy},
                     sampler=sampler, base_seed=int(base_seed))
    return write_dataset(name, tasks, plan, root=root, source=source, force=force, progress=progress, workers=workers)


def build_dataset_from_folder(name: str, folder: str | Path, **kw) -> Dataset:
    """``build_dataset`` over every mesh file (.off/.ply/.obj/.stl) of ``folder``; shape name = file stem."""
    from sbdbench.io import MESH_FORMATS, read_mesh

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_FORMATS)
    if not paths:
        raise InputError(f"{folder}: no mesh files ({', '.join(MESH_FORMATS)})")
    meshes = {}
    for p in paths:
        if p.stem in meshes:
            raise InputError(f"{folder}: two meshes named {p.stem!r}")
        meshes[p.stem] = read_mesh(p)
    kw.setdefault("source", f"user meshes from {folder.resolve()}")
    return build_dataset(name, meshes, **kw)


# --- verification -----------------------------------------------------------------------------------------
@dataclass
class VerifyReport:
    name: str
    checked: int
    missing: List[str]
    mismatched: List[str]
    digest: str = ""

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


def verify_dataset(dataset: Dataset | str, *, root: Optional[Path] = None, raise_on_error: bool = True) -> VerifyReport:
    """Recompute the sha256 of every file in the manifest; a missing manifest, missing file or
    mismatch raises :class:`DataError` (one line) unless ``raise_on_error=False``."""
    from sbdbench.data.dataset import open_dataset

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset, root)
    if (ds.dir / BUILDING_MARKER).exists() or not ds.manifest_path.is_file():
        why = "an interrupted or unfinished build" if (ds.dir / BUILDING_MARKER).exists() else "no manifest.json"
        raise DataError(f"dataset {ds.name!r} at {ds.dir} cannot be verified: {why} (rebuild it with `sbdbench build --force`)")
    manifest = _read_manifest(ds)
    if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("files"), dict):
        raise DataError(f"{ds.manifest_path}: not an sbdbench manifest (rebuild the dataset)")
    missing, mismatched = [], []
    for rel, entry in sorted(manifest["files"].items()):
        path = ds.root / rel
        if not path.is_file():
            missing.append(rel)
        elif not isinstance(entry, dict) or sha256_file(path) != entry.get("sha256"):
            mismatched.append(rel)
    report = VerifyReport(ds.name, len(manifest["files"]), missing, mismatched, files_digest(manifest))
    if raise_on_error and not report.ok:
        parts = []
        if missing:
            parts.append(f"{len(missing)} file(s) missing (first: {missing[0]})")
        if mismatched:
            parts.append(f"{len(mismatched)} checksum mismatch(es) (first: {mismatched[0]})")
        raise DataError(f"dataset {ds.name!r} failed verification: {'; '.join(parts)} (rebuild with `sbdbench build --force`)")
    return report
