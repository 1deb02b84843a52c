"""Refuse tampered inputs: the files a cell or an evaluation reads must match the dataset's manifest.

``sbdbench verify`` re-hashes a whole dataset; the commands that *read* a dataset (``bench``, ``run``,
``evaluate --dataset``) check just the files they read, before any work, so a changed byte never ends up
in results stored under the intact manifest's hash. Hashing is cheap on repeated runs: a digest is
cached under ``$SBDBENCH_HOME/cache/`` with the file's size, mtime and inode, and a file is hashed
again only when one of those changes. A dataset without a manifest (a registered foreign folder) has
nothing to check against and is read as is (so is one whose manifest lists no ``files``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from sbdbench.errors import DataError
from sbdbench.protocol import GAUSSIAN

CACHE_NAME = "file_sha256.json"


def cell_files(dataset, n_points: int, sigma: float, noise: str = GAUSSIAN,
               shapes: Optional[Iterable[str]] = None) -> List[Path]:
    """The files one benchmark cell reads: per test shape (or per one of ``shapes``), its noisy input,
    clean cloud at N and mesh."""
    out: List[Path] = []
    for shape in (dataset.shapes("test") if shapes is None else shapes):
        out += [dataset.noisy_path(shape, n_points, sigma, noise), dataset.clean_path(shape, n_points, "test"),
                dataset.mesh_path(shape, "test")]
    return out


def reference_files(dataset, n_points: int, split: str = "test") -> List[Path]:
    """The files ``evaluate --dataset`` reads: per shape of the split, its clean cloud at N and mesh."""
    out: List[Path] = []
    for shape in dataset.shapes(split):
        out += [dataset.clean_path(shape, n_points, split), dataset.mesh_path(shape, split)]
    return out


def check_cell_inputs(dataset, n_points: int, sigma: float, noise: str = GAUSSIAN,
                      shapes: Optional[Iterable[str]] = None) -> int:
    """Raise :class:`DataError` unless every file of the cell matches the manifest; returns the count checked."""
    return check_files(dataset, cell_files(dataset, n_points, sigma, noise, shapes))


def check_reference_files(dataset, n_points: int, split: str = "test") -> int:
    """Raise :class:`DataError` unless the GT clouds at N and meshes of ``split`` match the manifest."""
    return check_files(dataset, reference_files(dataset, n_points, split))


def check_files(dataset, paths: Iterable[Path]) -> int:
    """Check ``paths`` (inside ``dataset.root``) against ``dataset``'s manifest, one line on the first problem."""
    files = _manifest_files(dataset)
    if files is None:
        return 0
    cache = _HashCache.load()
    n = 0
    try:
        for path in paths:
            _check_one(dataset, files, Path(path), cache)
            n += 1
    finally:
        cache.save()
    return n


def _manifest_files(dataset) -> Optional[Dict]:
    manifest = dataset.manifest
    if not manifest:
        return None
    if not isinstance(manifest, dict) or "files" not in manifest:
        return None  # a hand-made manifest with categories only: nothing to check against
    files = manifest["files"]
    if not isinstance(files, dict):
        raise DataError(f"{dataset.manifest_path}: not an sbdbench manifest (no 'files'); rebuild the dataset")
    return files


def _check_one(dataset, files: Dict, path: Path, cache: "_HashCache") -> None:
    rel = _relative(dataset, path)
    entry = files.get(rel)
    expected = entry.get("sha256") if isinstance(entry, dict) else entry
    fix = f"run `sbdbench verify {dataset.name}`, and rebuild the dataset if it fails"
    if not path.is_file():
        listed = f" listed in its manifest ({fix})" if expected else ""
        raise DataError(f"dataset {dataset.name!r}: missing file {rel}{listed}")
    if not expected:
        raise DataError(f"dataset {dataset.name!r}: file {rel} is not in its manifest ({fix})")
    if cache.digest(path) != expected:
        raise DataError(f"dataset {dataset.name!r}: {rel} does not match its manifest (sha256 differs): "
                        f"the file was changed after the build; refusing to use it ({fix})")


def _relative(dataset, path: Path) -> str:
    try:
        return path.relative_to(dataset.root).as_posix()
    except ValueError:
        raise DataError(f"dataset {dataset.name!r}: {path} is outside the dataset root {dataset.root}") from None


class _HashCache:
    """sha256 digests keyed by absolute path, valid while (size, mtime_ns, inode) are unchanged."""

    def __init__(self, path: Optional[Path], entries: Dict[str, list]):
        self.path, self.entries, self.dirty = path, entries, False

    @classmethod
    def load(cls) -> "_HashCache":
        path = _cache_path()
        try:
            entries = json.loads(path.read_text()) if path is not None and path.is_file() else {}
        except (OSError, ValueError):
            entries = {}
        return cls(path, entries if isinstance(entries, dict) else {})

    def digest(self, path: Path) -> str:
        from sbdbench.paths import sha256_file

        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        key = str(path.resolve())
        entry = self.entries.get(key)
        if isinstance(entry, list) and len(entry) == 4 and entry[:3] == stamp:
            return str(entry[3])
        digest = sha256_file(path)
        self.entries[key] = stamp + [digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if not self.dirty or self.path is None:
            return
        from sbdbench.errors import SbdbenchError
        from sbdbench.paths import atomic_write_text

        try:
            atomic_write_text(self.path, json.dumps(self.entries, sort_keys=True))
        except (OSError, SbdbenchError):  # a read-only home only costs a re-hash next time
            pass


def _cache_path() -> Optional[Path]:
    from sbdbench.errors import SbdbenchError
    from sbdbench.paths import home

    try:
        return home() / "cache" / CACHE_NAME
    except SbdbenchError:
        return None
