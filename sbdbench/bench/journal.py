"""Shape-level progress of the cells in flight, so that an interrupted cell restarts where it stopped.

A cell is stored in the results database in one transaction when all its shapes are done; a 50K cell of a
learned method takes half an hour on a laptop CPU, too much to lose to a kill. So each finished shape's
record is also appended to ``<journal folder>/<cell key>.jsonl`` (one JSON object per line,
:meth:`ShapeRecord.to_dict <sbdbench.protocol.ShapeRecord.to_dict>`, flushed and
fsync'd before the next shape starts). The next attempt at the cell — a retry, or the next ``sbdbench bench``
after a kill — reads those records back and runs only the missing shapes; the driver deletes the file once
the cell is in the database. The folder sits next to the database (``results.db.cells/``). The cell key
covers the method, its parameters, its weights file and the data, so a journal can never be replayed into
another cell. A worker that cannot write there (a remote Dask worker without the shared filesystem) runs
whole cells, as without a journal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from sbdbench.errors import DataError, SbdbenchError
from sbdbench.protocol import ShapeRecord


def journal_folder(db_path: str | os.PathLike) -> Path:
    """The journal folder of a results database: ``<db>.cells`` beside it."""
    return Path(f"{os.fspath(db_path)}.cells")


class CellJournal:
    """The per-shape records of one cell (``key``) that are not in the database yet."""

    def __init__(self, folder: str | os.PathLike, key: str):
        self.path = Path(folder) / f"{key}.jsonl"
        self.writable = True
        self.dropped = 0  # invalid lines dropped by the last load()
        self.problem = ""

    def load(self, shapes: Iterable[str]) -> Dict[str, ShapeRecord]:
        """Records already done, by shape, for the given shapes. A line cut short by a kill is ignored; a line
        that parses but is not a valid record (a missing key, a non-finite metric...: :meth:`ShapeRecord.from_dict
        <sbdbench.protocol.ShapeRecord.from_dict>`) is dropped, counted in :attr:`dropped` (the first reason in
        :attr:`problem`) and removed from the file, so its shape runs again."""
        wanted = set(shapes)
        found: Dict[str, ShapeRecord] = {}
        self.dropped, self.problem = 0, ""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except (FileNotFoundError, NotADirectoryError):
            return found
        except (OSError, UnicodeDecodeError):
            self.writable = False
            return found
        kept = []
        for line in lines:
            try:
                parsed = json.loads(line)
            except ValueError:
                continue  # cut short by a kill
            try:
                record = ShapeRecord.from_dict(parsed)
            except DataError as exc:
                self.dropped += 1
                self.problem = self.problem or str(exc)
                continue
            kept.append(line)
            if record.shape in wanted:
                found[record.shape] = record
        if self.dropped:
            self._rewrite(kept)
        return found

    def _rewrite(self, lines: List[str]) -> None:
        from sbdbench.paths import atomic_write_text

        try:
            atomic_write_text(self.path, "".join(f"{line}\n" for line in lines))
        except (OSError, SbdbenchError):
            self.writable = False

    def count(self) -> int:
        """Complete lines in the journal (the shapes finished so far; used for progress only)."""
        try:
            with open(self.path, "rb") as fh:
                return fh.read().count(b"\n")
        except OSError:
            return 0

    def append(self, record: ShapeRecord) -> None:
        """Add one finished shape (durably); journaling stops quietly if the folder is not writable."""
        if not self.writable:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record.to_dict(), sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            self.writable = False

    def discard(self) -> None:
        """Forget the records (the cell is in the database, or is to be run again from scratch)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass


def open_journal(folder: Optional[str], key: str) -> Optional[CellJournal]:
    return CellJournal(folder, key) if folder else None
