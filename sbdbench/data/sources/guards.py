"""Checks made before a fetch trusts its inputs: ``-o`` options, ``--from PATH`` and the downloads themselves.

* options: only those an installer honours may be set; the ones that describe the card
  (``dataset``, ``folder``...) are fixed, and the sampling options are for mesh sources only;
* ``--from``: a regular file or a folder; a single file for a multi-file card must carry one of
  the card's file names (else a folder holding them by name is asked for);
* a download (or ``--from`` file) without a published checksum must look like what it claims to
  be (not empty, not a web page, an archive when its name says so) before its sha256 is pinned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable

from sbdbench.errors import DataError

# card options that describe the source, not the run: fixed by the card
FIXED_OPTIONS = frozenset({"dataset", "folder", "mesh_split", "note", "gated_message", "target", "categories"})
MESH_KINDS = frozenset({"stanford", "thingi10k", "modelnet40", "shapenet"})
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".archive")
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")


def settable_options(card, build_options: Iterable[str]) -> set:
    """The ``-o`` keys an installer of ``card`` reads."""
    keys = set(card.options) - FIXED_OPTIONS
    return keys | set(build_options) if card.kind in MESH_KINDS else keys


def check_options(card, options: Dict, build_options: Iterable[str]) -> None:
    """Refuse ``-o`` keys that would be accepted and then ignored."""
    if card.kind == "synth":  # synth checks its options against its builder
        return
    fixed = sorted(set(options) & FIXED_OPTIONS)
    if fixed:
        raise DataError(f"{card.name}: option(s) {', '.join(fixed)} are fixed by the card (datasets/{card.name}.toml) and cannot be set with -o")
    allowed = settable_options(card, build_options)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise DataError(f"{card.name}: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed)) or 'none'})")


def check_source_path(card, path: Path) -> None:
    """``--from PATH`` must be usable for ``card`` as given, before anything is downloaded."""
    if not path.exists():
        raise DataError(f"--from {path}: no such file or folder")
    if not (path.is_file() or path.is_dir()):
        raise DataError(f"--from {path}: not a regular file or a folder (a device, pipe or socket)")
    if not card.files:
        raise DataError(f"--from {path}: {card.name} is built offline and downloads nothing; drop --from")
    if any(f.host == "local" for f in card.files):
        return  # the installer reads the path itself (ShapeNet)
    required = [f.name for f in card.files if not f.optional]
    names = {f.name for f in card.files}
    if path.is_file() and len(required) > 1 and path.name not in names:
        raise DataError(f"--from {path}: {card.name} needs {len(required)} files ({', '.join(required)}); "
                        "pass a folder holding them by name, or name the file as the card does")
    if path.is_dir() and not any((path / n).is_file() for n in names):
        raise DataError(f"--from {path}: the folder holds none of {card.name}'s files ({', '.join(sorted(names))})")


def looks_wrong(path: Path, spec_name: str) -> str:
    """Why ``path`` cannot be ``spec_name`` ('' when it may be): empty, a web page, or not an archive."""
    from sbdbench.data.sources.archives import archive_kind

    if path.stat().st_size == 0:
        return "an empty file"
    with open(path, "rb") as fh:
        head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(_HTML_STARTS) and not spec_name.lower().endswith((".html", ".htm", ".xml")):
        return "a web page (HTML)"
    if spec_name.lower().endswith(ARCHIVE_SUFFIXES):
        try:
            archive_kind(path)
        except DataError:
            return "not a zip, tar or gzip archive"
    return ""
