"""Guards for commands that write: an output never replaces one of the command's own inputs.

Paths are compared after resolving symlinks, and by inode where both exist (hard links), so
``--out`` cannot reach an input through another name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

from sbdbench.errors import InputError


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (symlinks resolved; hard links by inode)."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite(out, inputs: Iterable[Optional[os.PathLike]], option: str = "the output") -> Path:
    """Raise :class:`InputError` when ``out`` names one of ``inputs`` (None entries are skipped)."""
    out = Path(out)
    for src in inputs:
        if src is not None and same_file(out, Path(src)):
            raise InputError(f"{out}: {option} would overwrite the input {src}; choose another path")
    return out


def is_within(path, folder) -> bool:
    """Whether ``path`` (resolved) is ``folder`` or lies inside it."""
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


def refuse_inside(out_dir, folders: Iterable[Optional[os.PathLike]], option: str = "the output folder") -> Path:
    """Raise :class:`InputError` when ``out_dir`` is, or lies inside, one of ``folders`` (inputs' folders)."""
    out_dir = Path(out_dir)
    for folder in folders:
        if folder is not None and is_within(out_dir, folder):
            raise InputError(f"{out_dir}: {option} lies inside {folder}, which holds this command's inputs; choose another folder")
    return out_dir
