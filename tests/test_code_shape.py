"""Code-shape rules the project keeps (issue #20): short functions, and the protocol's facts in one module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sbdbench"
MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "functions over 60 lines: " + "; ".join(long)


def test_layout_names_are_built_only_by_the_protocol():
    """No module but sbdbench/protocol.py spells a noisy or clean folder name by hand (f"..._poisson...")."""
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "protocol.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"f[\"'][^\"']*_poisson", line):
                spelled.append(f"{path.relative_to(PACKAGE.parent)}:{number}")
    assert not spelled, "folder names built outside sbdbench/protocol.py: " + ", ".join(spelled)
