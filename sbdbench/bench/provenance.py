"""Where the leaderboard's numbers come from: the code version of each row, and each method's paper and code.

Every run stores the sbdbench version and the git commit of the source tree it ran from
(:func:`sbdbench.bench.store.git_commit`: 12 hex digits, ``-dirty`` when tracked files had uncommitted
changes, ``unknown`` without git). Rows from a dirty tree cannot be reproduced from any commit, so
:func:`check_publishable` refuses them unless the caller allows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import pandas as pd

from sbdbench.errors import SbdbenchError

DIRTY_SUFFIX = "-dirty"


def is_dirty(commit) -> bool:
    return str(commit).endswith(DIRTY_SUFFIX)


def dirty_rows(board: pd.DataFrame) -> pd.DataFrame:
    if board.empty:
        return board
    return board[board["git_commit"].map(is_dirty)]


def check_publishable(board: pd.DataFrame, allow_dirty: bool = False) -> None:
    """A one-line error when rows of ``board`` ran from a dirty source tree (unless ``allow_dirty``)."""
    dirty = dirty_rows(board)
    if dirty.empty or allow_dirty:
        return
    commits = ", ".join(f"{c} ({n})" for c, n in dirty["git_commit"].value_counts().sort_index().items())
    raise SbdbenchError(
        f"{len(dirty)} of {len(board)} leaderboard rows ran from a source tree with uncommitted changes "
        f"(commits: {commits}); re-run those cells from a clean commit (`sbdbench bench --rerun --methods ...`) "
        f"or pass --allow-dirty to publish them marked as such")


def code_versions(rows: pd.DataFrame) -> str:
    """'sbdbench 0.1.0 at a5bfe92bc2f8 (12 cells), b3260d99c73b-dirty (3 cells, uncommitted changes)'."""
    if rows.empty:
        return ""
    parts = []
    for (version, commit), n in rows.groupby(["version", "git_commit"]).size().items():
        note = ", uncommitted changes" if is_dirty(commit) else ""
        parts.append(f"sbdbench {version} at {commit} ({n} cell{'s' if n != 1 else ''}{note})")
    return "; ".join(parts)


@dataclass(frozen=True)
class MethodLinks:
    method: str
    paper: str
    paper_url: str
    code_url: str


def method_links(spec: str) -> MethodLinks:
    """Paper text, paper URL and code URL of a leaderboard row's method (a variant ``name:k=v`` uses
    ``name``'s); empty for a name that is not registered here."""
    from sbdbench.methods import get_method_class

    base = str(spec).split(":", 1)[0]
    try:
        cls = get_method_class(base)
    except SbdbenchError:
        return MethodLinks(str(spec), "", "", "")
    return MethodLinks(str(spec), cls.paper, getattr(cls, "paper_url", ""), getattr(cls, "code_url", ""))


def all_method_links(methods) -> List[MethodLinks]:
    return [method_links(m) for m in sorted({str(m) for m in methods})]
