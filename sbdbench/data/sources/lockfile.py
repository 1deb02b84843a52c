"""Trust on first use for files whose publishers give no checksum.

The first verified download of a file records its sha256 and size in ``$SBDBENCH_HOME/downloads.lock.json``;
every later download (or reuse of a cached file) must match it. A card's own sha256 always wins.
A hash is recorded only after the install it came with succeeded (the file was validated), and
the entry says so (``"validated": true``); ``fetch --force`` may replace an entry without that mark
(recorded by an older sbdbench, possibly from an error page), and says so.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Optional

from sbdbench.errors import DataError
from sbdbench.paths import atomic_write_text, home

LOCK_NAME = "downloads.lock.json"


class LockFile:
    """``{key: {"sha256", "size", "url", "recorded"}}`` stored as JSON, written atomically."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = Path(path) if path is not None else home() / LOCK_NAME

    def _load(self) -> Dict[str, Dict]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.path}: unreadable download lock file ({exc}); fix or delete it") from None
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Optional[Dict]:
        return self._load().get(key)

    def sha256(self, key: str) -> Optional[str]:
        entry = self.get(key)
        return entry.get("sha256") if entry else None

    def record(self, key: str, sha256: str, size: int, url: str = "", *, validated: bool = False) -> None:
        data = self._load()
        data[key] = {
            "sha256": sha256,
            "size": int(size),
            "url": url,
            "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **({"validated": True} if validated else {}),
        }
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def forget(self, key: str) -> None:
        data = self._load()
        if data.pop(key, None) is not None:
            atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")
