"""Nextcloud public shares (``https://SERVER/index.php/s/TOKEN``).

A share is downloaded through ``/index.php/s/<token>/download``: a file share answers with the
file, a folder share with a zip of the whole folder (streamed, often without ``Content-Length``).
One file of a folder share: ``…/download?path=<dir>&files=<name>``.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlencode


def share_url(server: str, token: str) -> str:
    """The page a person opens in a browser."""
    return f"{server.rstrip('/')}/index.php/s/{token}"


def download_url(server: str, token: str, *, path: Optional[str] = None, files: Optional[str] = None) -> str:
    """The direct download URL of a share (or of one file inside a folder share)."""
    url = share_url(server, token) + "/download"
    if files:
        return url + "?" + urlencode({"path": path or "/", "files": files})
    if path:
        return url + "?" + urlencode({"path": path})
    return url
