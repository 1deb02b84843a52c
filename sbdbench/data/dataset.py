"""A benchmark dataset on disk, in ScoreDenoise's ``data/`` layout (built and parsed by :mod:`sbdbench.protocol`),
plus ``<root>/<name>/manifest.json`` (provenance and the sha256 of every file).

``<root>`` is ``$SBDBENCH_HOME/data`` for datasets sbdbench built or fetched; an existing
ScoreDenoise ``data/`` folder can be registered under a name without copying
(:func:`register_dataset`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from sbdbench.errors import DataError
from sbdbench.paths import atomic_write_text, data_root, home
from sbdbench.protocol import (GAUSSIAN, SPLITS, clean_dir_name, clean_rel_dir, mesh_rel_dir, noisy_dir_name,  # noqa: F401
                               parse_clean_dir, parse_noisy_dir, scan_rel_dir, sigma_label)

REGISTRY_FILE = "datasets.json"


@dataclass(frozen=True)
class Dataset:
    """Read access to one dataset. Paths are computed, never guessed: a missing file is a :class:`DataError`."""

    name: str
    root: Path

    @property
    def dir(self) -> Path:
        return self.root / self.name

    @property
    def examples_dir(self) -> Path:
        return self.root / "examples"

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    @cached_property
    def manifest(self) -> Dict:
        """The manifest (``{}`` for a registered foreign folder that has none)."""
        if not self.manifest_path.is_file():
            return {}
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.manifest_path}: unreadable manifest ({exc}); rebuild the dataset") from None
        if not isinstance(manifest, dict):
            raise DataError(f"{self.manifest_path}: not an sbdbench manifest (a JSON {type(manifest).__name__}, not an object); rebuild the dataset")
        return manifest

    # --- what the dataset holds -------------------------------------------------------------
    def shapes(self, split: str = "test") -> List[str]:
        """Sorted shape names of a split (from its meshes, else from its clean clouds, else from its scans)."""
        mesh_dir = self.root / mesh_rel_dir(self.name, split)
        names = {p.stem for p in mesh_dir.glob("*.off")} if mesh_dir.is_dir() else set()
        if not names:
            for res_dir in sorted((self.dir / "pointclouds" / split).glob("*_poisson")):
                names |= {p.stem for p in res_dir.glob("*.xyz")}
        return sorted(names) or self.scans(split)

    def scans(self, split: str = "test") -> List[str]:
        """Sorted names of the real scans of a split (``<name>/scans/<split>/<scan>.xyz``: noisy, no GT)."""
        scan_dir = self.root / scan_rel_dir(self.name, split)
        return sorted(p.stem for p in scan_dir.glob("*.xyz")) if scan_dir.is_dir() else []

    @property
    def has_reference(self) -> bool:
        """Whether the dataset has ground truth (clean clouds or meshes) to score against; False for real scans."""
        return any((self.dir / sub).is_dir() and any((self.dir / sub).iterdir()) for sub in ("pointclouds", "meshes"))

    def require_reference(self, what: str) -> None:
        """A one-line DataError naming what to run instead when a dataset of real scans (no GT) is asked for ``what``."""
        if not self.has_reference:
            raise DataError(f"dataset {self.name!r} holds {len(self.scans())} real scan(s) without ground truth (no clean clouds "
                            f"or meshes), so {what} cannot score it with CD/P2M; run `sbdbench run --method M --dataset "
                            f"{self.name}` (no-reference figures per scan) or `sbdbench evaluate --pred OUT.xyz --noisy SCAN.xyz`")

    def category(self, shape: str) -> str:
        """The shape's category tag (smooth / sharp / thin / genus), or 'unknown'."""
        return str(self.manifest.get("shapes", {}).get(shape, {}).get("category", "unknown"))

    def resolutions(self, split: str = "test") -> List[int]:
        """Point counts with clean clouds in this split, ascending."""
        found = (parse_clean_dir(p.name) for p in (self.dir / "pointclouds" / split).glob("*_poisson"))
        return sorted(n for n in found if n is not None)

    def noise_levels(self, n_points: int, noise: str = GAUSSIAN) -> List[float]:
        """Noise levels σ with noisy inputs at this resolution, ascending."""
        found = (parse_noisy_dir(p.name, self.name) for p in self.examples_dir.glob(f"{self.name}_*"))
        return sorted(d.sigma for d in found if d is not None and d.split == "test" and d.n_points == int(n_points)
                      and d.noise == noise)

    # --- paths ---------------------------------------------------------------------------------
    def mesh_path(self, shape: str, split: str = "test") -> Path:
        return self.root / mesh_rel_dir(self.name, split) / f"{shape}.off"

    def clean_path(self, shape: str, n_points: int, split: str = "test") -> Path:
        return self.root / clean_rel_dir(self.name, split, n_points) / f"{shape}.xyz"

    def noisy_dir(self, n_points: int, sigma: float, noise: str = GAUSSIAN) -> Path:
        return self.examples_dir / noisy_dir_name(self.name, n_points, sigma, noise)

    def noisy_path(self, shape: str, n_points: int, sigma: float, noise: str = GAUSSIAN) -> Path:
        return self.noisy_dir(n_points, sigma, noise) / f"{shape}.xyz"

    def scan_path(self, scan: str, split: str = "test") -> Path:
        return self.root / scan_rel_dir(self.name, split) / f"{scan}.xyz"

    # --- loading -------------------------------------------------------------------------------
    def _need(self, path: Path, what: str) -> Path:
        if not path.is_file():
            raise DataError(f"dataset {self.name!r}: missing {what} {path}")
        return path

    def load_mesh(self, shape: str, split: str = "test") -> Tuple[np.ndarray, np.ndarray]:
        from sbdbench.io import read_mesh

        return read_mesh(self._need(self.mesh_path(shape, split), "mesh"))

    def load_clean(self, shape: str, n_points: int, split: str = "test") -> np.ndarray:
        from sbdbench.io import read_points

        return read_points(self._need(self.clean_path(shape, n_points, split), "clean cloud"))

    def load_noisy(self, shape: str, n_points: int, sigma: float, noise: str = GAUSSIAN) -> np.ndarray:
        from sbdbench.io import read_points

        return read_points(self._need(self.noisy_path(shape, n_points, sigma, noise), "noisy input"))

    def load_scan(self, scan: str, split: str = "test") -> np.ndarray:
        from sbdbench.io import read_points

        return read_points(self._need(self.scan_path(scan, split), "scan"))

    def check_shape(self, shape: str, split: str = "test") -> None:
        """Raise a clear error for an unknown shape name."""
        known = self.shapes(split)
        if shape not in known:
            raise DataError(f"dataset {self.name!r} has no shape {shape!r} in split {split!r} (known: {', '.join(known[:20])}{'…' if len(known) > 20 else ''})")


# --- finding datasets ----------------------------------------------------------------------------
def _registry_path() -> Path:
    return home() / REGISTRY_FILE


def _registry() -> Dict[str, str]:
    path = _registry_path()
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable dataset registry ({exc})") from None


def register_dataset(name: str, folder: str | Path) -> Dataset:
    """Register an existing ScoreDenoise-layout folder (``<folder>/<name>/...`` or the dataset folder
    itself, with ``examples/`` beside it) under ``name`` without copying anything."""
    folder = Path(folder).expanduser().resolve()
    if (folder / name).is_dir():
        root = folder
    elif (folder / "meshes").is_dir() or (folder / "pointclouds").is_dir():
        if folder.name != name:
            raise DataError(f"{folder}: a dataset folder must be registered under its own name {folder.name!r}")
        root = folder.parent
    else:
        raise DataError(f"{folder}: not a ScoreDenoise data folder (expected {name}/meshes or {name}/pointclouds)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise DataError(f"invalid dataset name {name!r}")
    reg = _registry()
    reg[name] = str(root)
    atomic_write_text(_registry_path(), json.dumps(reg, indent=2, sort_keys=True))
    return Dataset(name, root)


def list_datasets() -> List[str]:
    """Names of datasets present under the home folder or registered."""
    names = set(_registry())
    root = data_root()
    if root.is_dir():
        names |= {p.name for p in root.iterdir() if p.is_dir() and p.name != "examples"
                  and any((p / sub).is_dir() for sub in ("meshes", "pointclouds", "scans"))}
    return sorted(names)


def open_dataset(name: str, root: Optional[str | Path] = None) -> Dataset:
    """Open a dataset by name: built/fetched under ``$SBDBENCH_HOME/data``, or registered.

    Raises :class:`DataError` naming the command that creates it when it is absent.
    """
    if root is not None:
        ds = Dataset(name, Path(root))
    else:
        reg = _registry()
        ds = Dataset(name, Path(reg[name])) if name in reg else Dataset(name, data_root())
    if not ds.dir.is_dir():
        hint = "sbdbench fetch synth" if name == "synth" else f"sbdbench fetch {name}"
        raise DataError(f"dataset {name!r} is not present under {ds.root} (create it with `{hint}`; known: {', '.join(list_datasets()) or 'none'})")
    return ds
