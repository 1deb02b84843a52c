"""Where the protocol files live: dataset cards, frozen settings and published numbers.

The canonical files are the repository's ``datasets/*.toml`` (dataset cards), ``baselines/*.toml``
(frozen settings, written by ``sbdbench tune``) and ``baselines/reported.csv`` (published numbers).
They stay there, in one copy; building a wheel copies them into the package as
``sbdbench/_protocol/{datasets,baselines}/`` (``setup.py``'s ``build_py`` step), so an installed
sbdbench reads the same files.

A folder (``"datasets"`` or ``"baselines"``) is looked up in this order:

1. its environment variable, when set: ``$SBDBENCH_DATASETS_DIR``, ``$SBDBENCH_BASELINES``;
2. the source checkout this package was imported from (a clone, or an editable install): the folder
   next to the ``pyproject.toml`` that names sbdbench. This is also where ``sbdbench tune`` writes,
   so a developer's freshly tuned ``baselines/<method>.toml`` is what the checkout reads back;
3. the copy shipped in the installed package, read through ``importlib.resources``.

The shipped copy is read-only: outside a checkout, commands that write protocol files need the
environment variable (or their own ``--out``), see :func:`writable_dir`.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Optional

from sbdbench.errors import DataError

#: folder name -> environment variable overriding it
ENV_VARS = {"datasets": "SBDBENCH_DATASETS_DIR", "baselines": "SBDBENCH_BASELINES"}
PACKAGED = "_protocol"


def checkout_root() -> Optional[Path]:
    """The source checkout holding this package (its ``pyproject.toml`` names sbdbench), else None."""
    root = Path(__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8") if pyproject.is_file() else ""
    except OSError:
        return None
    return root if 'name = "sbdbench"' in text else None


def packaged_dir(name: str) -> Path:
    """The copy of folder ``name`` inside the installed package (may be absent in a checkout)."""
    found = resources.files("sbdbench").joinpath(PACKAGED, name)
    if not isinstance(found, Path):  # a zipped install: no folder to hand out
        raise DataError(f"sbdbench is installed in a zip archive; set ${ENV_VARS[name]} to a copy of its {name}/ folder")
    return found


def env_dir(name: str) -> Optional[Path]:
    """The folder named by the environment variable of ``name`` (None when unset; it may not exist)."""
    value = os.environ.get(ENV_VARS[name])
    return Path(value).expanduser() if value else None


def protocol_dir(name: str) -> Path:
    """Where folder ``name`` is read from (see the module docstring); it may not exist."""
    if name not in ENV_VARS:
        raise ValueError(f"unknown protocol folder {name!r}")
    found = env_dir(name)
    if found is not None:
        return found
    root = checkout_root()
    if root is not None and (root / name).is_dir():
        return root / name
    return packaged_dir(name)


def protocol_file(name: str, filename: str) -> Path:
    """``protocol_dir(name) / filename`` (may not exist)."""
    return protocol_dir(name) / filename


def writable_dir(name: str) -> Path:
    """Where a command writes into folder ``name`` by default: the variable's folder or the checkout's.

    Never the installed package: outside a checkout, without the variable, this is a one-line error."""
    found = env_dir(name)
    if found is not None:
        return found
    root = checkout_root()
    if root is not None:
        return root / name
    raise DataError(f"not in a source checkout, so there is no {name}/ folder to write to; "
                    f"pass --out or set ${ENV_VARS[name]} to a folder")
