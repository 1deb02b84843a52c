"""Every repository path the README and docs/ point to exists (links and `code` paths, with {a,b} and * expanded).

A regenerated leaderboard/ once dropped the training curves that docs/ cite; this catches such a loss."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_FOLDERS = ("baselines", "benchmarks", "datasets", "docs", "leaderboard", "sbdbench", "scripts", "tests")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
CODE = re.compile(r"`([^`\s]+)`")
BRACES = re.compile(r"\{([^{}]*)\}")
#: paths the docs name that are, by design, not in a checkout
NOT_IN_CHECKOUT = {
    "sbdbench/_protocol/": "made inside the wheel by setup.py's build step",
    "tests/sample_meshes": "pymeshlab's folder of sample meshes, inside its wheel",
}


def doc_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def expand_braces(text: str):
    """`a_{x,y}.csv` → a_x.csv, a_y.csv (nested braces are not used in the docs)."""
    parts = BRACES.split(text)
    literals, choices = parts[0::2], [p.split(",") for p in parts[1::2]]
    for combo in itertools.product(*choices):
        yield "".join(lit + alt for lit, alt in itertools.zip_longest(literals, combo, fillvalue=""))


def referenced_paths(doc: Path):
    text = doc.read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if "://" not in target and not target.startswith("mailto:"):
            yield target, (doc.parent / target)
    for code in CODE.findall(text):
        path = code.rstrip(".,:;")
        placeholder = re.search(r"[<>$]|(^|/)[A-Z]+(\.|/|$)", path)
        if path.split("/", 1)[0] in TOP_FOLDERS and "/" in path and not placeholder and path not in NOT_IN_CHECKOUT:
            yield path, ROOT / path


def exists(path: Path) -> bool:
    """A file or folder (a glob: matches something); ``file.py::test_x`` and ``module.name`` also need the name
    defined in that file."""
    path = Path(os.path.normpath(path))
    text = str(path)
    if "::" in text:
        file, name = text.split("::", 1)
        return defines(Path(file), name)
    if "*" in text:
        return any(ROOT.glob(str(path.relative_to(ROOT))))
    if path.exists():
        return True
    module, _, name = text.rpartition(".")
    return bool(module) and defines(Path(module + ".py"), name)


def defines(file: Path, name: str) -> bool:
    return file.is_file() and re.search(rf"^(def |class )?{re.escape(name)}\b", file.read_text(encoding="utf-8"), re.M) is not None


@pytest.mark.parametrize("doc", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_referenced_repository_path_exists(doc):
    missing = []
    for shown, path in referenced_paths(doc):
        for variant in expand_braces(str(path)):
            if not exists(Path(variant)):
                missing.append(shown if variant == str(ROOT / shown) else f"{shown} ({variant})")
    assert not missing, f"{doc.relative_to(ROOT)} points to missing paths: " + "; ".join(missing)
