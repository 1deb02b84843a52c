"""The project's own Google Drive client: files, the virus-scan confirmation page, folders, quota errors.

Google Drive serves a public file in one of these shapes (gdown 6.x handles the same ones):

1. ``GET <drive>/uc?id=ID&export=download`` answers with the bytes and a ``Content-Disposition``
   header (small files);
2. or with the "Virus scan warning" HTML page (large files), either
   a. the current form ``<form id="download-form" action="https://drive.usercontent.google.com/download">``
      with hidden inputs (``id``, ``export``, ``confirm``, ``uuid``) → GET action?inputs, or
   b. the older link ``href="/uc?export=download&amp;confirm=TOKEN&amp;id=ID"`` on ``docs.google.com``, or
   c. a JSON ``"downloadUrl":"…"`` value;
3. or with an error page whose ``<p class="uc-error-subcaption">`` says why (quota exceeded:
   "Too many users have viewed or downloaded this file recently", or no permission).

A folder is listed through ``<drive>/embeddedfolderview?id=FOLDER``: ``<title>`` is the folder's
name and each child is an ``<a href=".../file/d/<ID>/view...">name</a>`` (sub-folders
``.../drive/folders/<ID>``).

Every base URL is a constructor argument (the tests point them at a loopback server). ``gdown`` is
an optional backend (``backend="gdown"`` or ``$SBDBENCH_GDRIVE_BACKEND=gdown``), never required.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlencode, urljoin

from sbdbench.data.sources.http import Downloader, filename_from_disposition
from sbdbench.errors import DataError

DRIVE_BASE = "https://drive.google.com"
USERCONTENT_BASE = "https://drive.usercontent.google.com"
DOCS_BASE = "https://docs.google.com"
BACKEND_ENV = "SBDBENCH_GDRIVE_BACKEND"


@dataclass(frozen=True)
class DriveEntry:
    """One child of a Drive folder."""

    id: str
    name: str
    is_folder: bool = False


class DriveClient:
    """Resolve and download public Google Drive files and folders.

    ``drive_base`` / ``usercontent_base`` / ``docs_base`` default to Google's hosts (or the
    ``$SBDBENCH_GDRIVE_BASE`` / ``$SBDBENCH_GDRIVE_USERCONTENT_BASE`` / ``$SBDBENCH_GDRIVE_DOCS_BASE``
    environment variables).
    """

    def __init__(
        self,
        downloader: Optional[Downloader] = None,
        *,
        drive_base: Optional[str] = None,
        usercontent_base: Optional[str] = None,
        docs_base: Optional[str] = None,
        backend: Optional[str] = None,
    ) -> None:
        self.downloader = downloader or Downloader()
        self.drive_base = (drive_base or os.environ.get("SBDBENCH_GDRIVE_BASE") or DRIVE_BASE).rstrip("/")
        self.usercontent_base = (usercontent_base or os.environ.get("SBDBENCH_GDRIVE_USERCONTENT_BASE") or USERCONTENT_BASE).rstrip("/")
        self.docs_base = (docs_base or os.environ.get("SBDBENCH_GDRIVE_DOCS_BASE") or DOCS_BASE).rstrip("/")
        self.backend = (backend or os.environ.get(BACKEND_ENV) or "native").lower()
        if self.backend not in ("native", "gdown"):
            raise DataError(f"unknown Google Drive backend {self.backend!r} (use 'native' or 'gdown')")

    # --- URLs ----------------------------------------------------------------------------------
    def file_url(self, file_id: str) -> str:
        return f"{self.drive_base}/uc?{urlencode({'id': file_id, 'export': 'download'})}"

    def view_url(self, file_id: str) -> str:
        return f"{self.drive_base}/file/d/{file_id}/view"

    def folder_url(self, folder_id: str) -> str:
        return f"{self.drive_base}/drive/folders/{folder_id}"

    # --- folders -------------------------------------------------------------------------------
    def list_folder(self, folder_id: str) -> List[DriveEntry]:
        """The children of a public folder (files and sub-folders), in page order."""
        url = f"{self.drive_base}/embeddedfolderview?{urlencode({'id': folder_id})}"
        resp = self.downloader.get(url)
        text = resp.text
        entries = parse_folder_listing(text)
        if not entries:
            reason = _error_subcaption(text)
            raise DataError(
                f"Google Drive folder {folder_id} lists no files"
                + (f" ({reason})" if reason else " (private, moved or empty?)")
                + f"; open {self.folder_url(folder_id)} in a browser to check"
            )
        return entries

    def find_in_folder(self, folder_id: str, name: str) -> DriveEntry:
        """The child named ``name`` of a folder; a clear error listing what is there otherwise."""
        entries = self.list_folder(folder_id)
        for entry in entries:
            if entry.name == name and not entry.is_folder:
                return entry
        names = ", ".join(e.name for e in entries[:20])
        raise DataError(f"Google Drive folder {folder_id} has no file {name!r} (it holds: {names}); the dataset may have moved")

    # --- files ---------------------------------------------------------------------------------
    def resolve(self, file_id: str, *, what: str = "") -> str:
        """The URL that answers with the file's bytes (following the confirmation page if any)."""
        url = self.file_url(file_id)
        for _ in range(4):
            resp = self.downloader.get(url, stream=True)
            with resp:
                if _is_file_response(resp):
                    return resp.url or url
                page = resp.text
            next_url = confirmation_url(page, base_url=resp.url or url, docs_base=self.docs_base)
            if next_url is None:
                raise self._refusal(file_id, page, what)
            url = next_url
        raise DataError(f"Google Drive kept answering with a confirmation page for {what or file_id}; download it in a browser from {self.view_url(file_id)} and pass it with --from PATH")

    def download(self, file_id: str, target: str | os.PathLike, *, expected_size: Optional[int] = None, expected_sha256: Optional[str] = None, what: str = "") -> str:
        """Download a public Drive file to ``target`` (resumable, verified); return its sha256."""
        target = Path(target)
        if self.backend == "gdown":
            return self._download_gdown(file_id, target, expected_size, expected_sha256)
        url = self.resolve(file_id, what=what or target.name)
        return self.downloader.download(url, target, expected_size=expected_size, expected_sha256=expected_sha256, desc=target.name)

    def _refusal(self, file_id: str, page: str, what: str) -> DataError:
        reason = _error_subcaption(page)
        label = what or file_id
        hint = f"download it in a browser from {self.view_url(file_id)} and rerun with --from PATH, or use --mirror URL"
        if reason and re.search(r"too many users|quota", reason, re.I):
            return DataError(f"Google Drive download quota exceeded for {label} (\"{_clip(reason)}\"); wait up to 24 h, or {hint}")
        if reason:
            return DataError(f"Google Drive refused {label}: {_clip(reason)}; {hint}")
        return DataError(f"Google Drive offered no download for {label} (file private, removed or a login page); {hint}")

    def _download_gdown(self, file_id: str, target: Path, expected_size: Optional[int], expected_sha256: Optional[str]) -> str:
        try:
            import gdown  # optional
        except ImportError:
            raise DataError("the gdown backend was requested ($SBDBENCH_GDRIVE_BACKEND=gdown) but gdown is not installed (pip install gdown)") from None
        from sbdbench.paths import sha256_file

        part = target.with_name(target.name + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        try:
            out = gdown.download(id=file_id, output=str(part), quiet=not self.downloader.progress, resume=True)
        except Exception as exc:  # gdown raises its own exception types
            raise DataError(f"gdown could not download {target.name}: {' '.join(str(exc).split())[:200]}") from None
        if not out or not part.is_file():
            raise DataError(f"gdown could not download {target.name} (id {file_id})")
        if expected_size is not None and part.stat().st_size != expected_size:
            part.unlink()
            raise DataError(f"{target.name}: size {part.stat().st_size} != expected {expected_size}; nothing installed")
        digest = sha256_file(part)
        if expected_sha256 and digest != expected_sha256:
            part.unlink()
            raise DataError(f"{target.name}: checksum mismatch (sha256 {digest[:16]}…, expected {expected_sha256[:16]}…); nothing installed")
        os.replace(part, target)
        return digest


# --- page parsing (pure functions, tested directly) ---------------------------------------------
_FILE_LINK = re.compile(r'<a[^>]+href="(?:https?://[^"/]+)?/file/d/([A-Za-z0-9_-]{10,})[^"]*"[^>]*>(.*?)</a>', re.S | re.I)
_DOC_LINK = re.compile(r'<a[^>]+href="(?:https?://[^"/]+)?/(?:document|spreadsheets|presentation)/d/([A-Za-z0-9_-]{10,})[^"]*"[^>]*>(.*?)</a>', re.S | re.I)
_FOLDER_LINK = re.compile(r'<a[^>]+href="(?:https?://[^"/]+)?/drive/folders/([A-Za-z0-9_-]{10,})[^"]*"[^>]*>(.*?)</a>', re.S | re.I)


def _anchor_text(raw: str) -> str:
    """The visible name inside an anchor: embeddedfolderview wraps it in divs (flip-entry-title)."""
    title = re.search(r'class="flip-entry-title"[^>]*>(.*?)</div>', raw, re.S)
    text = title.group(1) if title else raw
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def parse_folder_listing(page: str) -> List[DriveEntry]:
    """Children of an ``embeddedfolderview`` page: file anchors, Google-doc anchors and sub-folders."""
    found = []
    seen = set()
    for regex, is_folder in ((_FILE_LINK, False), (_DOC_LINK, False), (_FOLDER_LINK, True)):
        for match in regex.finditer(page):
            fid, name = match.group(1), _anchor_text(match.group(2))
            if fid in seen or not name:
                continue
            seen.add(fid)
            found.append((match.start(), DriveEntry(fid, name, is_folder)))
    return [entry for _, entry in sorted(found, key=lambda item: item[0])]


def confirmation_url(page: str, *, base_url: str, docs_base: str = DOCS_BASE) -> Optional[str]:
    """The download URL hidden in a virus-scan confirmation page, or None (error / login page)."""
    form = re.search(r'<form[^>]*id="download-form"[^>]*>(.*?)</form>', page, re.S | re.I)
    if form:
        action = re.search(r'action="([^"]+)"', form.group(0))
        if action:
            inputs = re.findall(r"<input[^>]*>", form.group(1), re.I)
            params = []
            for tag in inputs:
                if not re.search(r'type="hidden"', tag, re.I):
                    continue
                name = re.search(r'name="([^"]*)"', tag)
                value = re.search(r'value="([^"]*)"', tag)
                if name:
                    params.append((name.group(1), html.unescape(value.group(1)) if value else ""))
            target = urljoin(base_url, html.unescape(action.group(1)))
            return target + ("&" if "?" in target else "?") + urlencode(params)
    link = re.search(r'href="(/uc\?export=download[^"]+)"', page)
    if link:
        return docs_base.rstrip("/") + html.unescape(link.group(1))
    link = re.search(r'"downloadUrl":"([^"]+)"', page)
    if link:
        raw = link.group(1).replace("\\u003d", "=").replace("\\u0026", "&").replace("\\/", "/")
        return urljoin(base_url, raw)
    return None


def _error_subcaption(page: str) -> Optional[str]:
    match = re.search(r'class="uc-error-subcaption"[^>]*>(.*?)</p>', page, re.S | re.I)
    if not match:
        return None
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).split()) or None


def _is_file_response(resp) -> bool:
    if filename_from_disposition(resp.headers.get("Content-Disposition")):
        return True
    ctype = resp.headers.get("Content-Type", "")
    return bool(ctype) and "text/html" not in ctype


def _clip(text: str, n: int = 140) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
