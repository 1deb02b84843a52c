"""Hugging Face Hub files through ``resolve/<revision>/<path>``, pinned to a revision.

For files stored with Git LFS the Hub reports the file's sha256 as its (linked) ETag: a ``HEAD``
request on the resolve URL, without following the redirect to the CDN, carries
``X-Linked-Etag`` (LFS) or ``ETag``. A 64-hex ETag is used as the expected sha256 when the card
has none, so even first downloads are verified.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from sbdbench.data.sources.http import Downloader

HF_BASE = "https://huggingface.co"
_SHA = re.compile(r"^[0-9a-f]{64}$")


def resolve_url(repo: str, path: str, revision: str = "main", *, repo_type: str = "dataset", base: Optional[str] = None) -> str:
    """``<base>/datasets/<repo>/resolve/<revision>/<path>`` (models have no prefix)."""
    base = (base or os.environ.get("SBDBENCH_HF_BASE") or HF_BASE).rstrip("/")
    prefix = {"dataset": "datasets/", "space": "spaces/", "model": ""}.get(repo_type, "datasets/")
    return f"{base}/{prefix}{repo}/resolve/{revision}/{path.lstrip('/')}"


def etag_sha256(downloader: Downloader, url: str) -> Optional[str]:
    """The LFS sha256 announced by the Hub for ``url``, or None (non-LFS file or no ETag)."""
    resp = downloader.head(url, allow_redirects=False)
    with resp:
        for header in ("X-Linked-Etag", "ETag"):
            value = resp.headers.get(header)
            if not value:
                continue
            value = value.strip()
            if value.startswith("W/"):
                value = value[2:]
            value = value.strip('"').lower()
            if _SHA.match(value):
                return value
    return None
