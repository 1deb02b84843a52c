"""Dataset cards: ``datasets/<name>.toml``, the single source of truth for URLs, sizes and checksums.

A card names a source ``kind`` (the module that installs it), its licence and citation, the files
to download (``[[files]]``: ``name``, ``host`` and the host's fields, ``size``/``sha256`` when
known) and kind-specific options in ``[options]``. Hosts:

=================  =============================================================
``http``           ``url`` (+ optional ``mirrors = [...]`` tried in order)
``gdrive``         ``id`` (a public Google Drive file)
``gdrive-folder``  ``folder_id`` (the file is the folder's child named ``name``)
``nextcloud``      ``server``, ``token`` (+ ``path``/``files`` for one file of a folder share)
``huggingface``    ``repo``, ``revision``, ``path`` (+ ``repo_type``, default "dataset")
``local``          none: the user passes the data with ``--from PATH`` (gated data sets)
=================  =============================================================

Where the cards live: ``$SBDBENCH_DATASETS_DIR`` if set, else the source checkout's ``datasets/``,
else the copy shipped inside the installed package (:mod:`sbdbench.resources`).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from sbdbench import resources
from sbdbench.errors import DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CARDS_ENV = resources.ENV_VARS["datasets"]
HOSTS = ("http", "gdrive", "gdrive-folder", "nextcloud", "huggingface", "local")
_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileSpec:
    """One file a source needs."""

    name: str
    host: str
    fields: Dict[str, Any]
    size: Optional[int] = None
    sha256: Optional[str] = None
    optional: bool = False

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


@dataclass(frozen=True)
class Card:
    """A parsed dataset card."""

    name: str
    title: str
    kind: str
    licence: str
    citation: str
    homepage: str
    size_note: str
    cache: str
    files: Tuple[FileSpec, ...]
    options: Dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None
    terms: str = ""
    extract: str = ""
    layout: str = ""

    @property
    def known_size(self) -> Optional[int]:
        sizes = [f.size for f in self.files if not f.optional]
        return sum(sizes) if sizes and all(s is not None for s in sizes) else None  # type: ignore[misc]

    def file(self, name: str) -> FileSpec:
        for spec in self.files:
            if spec.name == name:
                return spec
        raise DataError(f"card {self.name}: no file {name!r}")


def cards_dir() -> Path:
    """The folder holding the dataset cards (see module docstring)."""
    path = resources.protocol_dir("datasets")
    if not path.is_dir():
        if os.environ.get(CARDS_ENV):
            raise DataError(f"${CARDS_ENV}={os.environ[CARDS_ENV]} is not a folder")
        raise DataError(f"dataset cards not found at {path} (an incomplete install?); "
                        f"reinstall sbdbench or set ${CARDS_ENV} to a copy of the repository's datasets/ folder")
    return path


def card_names() -> List[str]:
    return sorted(p.stem for p in cards_dir().glob("*.toml"))


def load_card(name: str) -> Card:
    """Read and validate ``datasets/<name>.toml``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        raise DataError(f"invalid source name {name!r}")
    path = cards_dir() / f"{name}.toml"
    if not path.is_file():
        raise DataError(f"unknown source {name!r} (known: {', '.join(card_names())}; see `sbdbench fetch --list`)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable card ({exc})") from None
    return parse_card(raw, path)


def parse_card(raw: Dict[str, Any], path: Optional[Path] = None) -> Card:
    where = str(path) if path else "card"
    for key in ("name", "kind"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise DataError(f"{where}: missing {key!r}")
    files = []
    for i, entry in enumerate(raw.get("files", [])):
        entry = dict(entry)
        name, host = entry.pop("name", None), entry.pop("host", None)
        if not name or host not in HOSTS:
            raise DataError(f"{where}: files[{i}] needs a name and a host in {HOSTS}")
        size = entry.pop("size", None)
        sha = (entry.pop("sha256", None) or "").lower() or None
        if sha is not None and not _SHA.match(sha):
            raise DataError(f"{where}: files[{i}] ({name}): sha256 must be 64 hex digits")
        if size is not None and (not isinstance(size, int) or size <= 0):
            raise DataError(f"{where}: files[{i}] ({name}): size must be a positive integer")
        files.append(FileSpec(name=name, host=host, fields=entry, size=size, sha256=sha, optional=bool(entry.pop("optional", False))))
    return Card(
        name=raw["name"],
        title=raw.get("title", raw["name"]),
        kind=raw["kind"],
        licence=raw.get("licence", "unknown"),
        citation=raw.get("citation", "").strip(),
        homepage=raw.get("homepage", ""),
        size_note=raw.get("size", ""),
        cache=raw.get("cache", raw["name"]),
        files=tuple(files),
        options=dict(raw.get("options", {})),
        path=path,
        terms=raw.get("terms", ""),
        extract=raw.get("extract", ""),
        layout=raw.get("layout", ""),
    )
