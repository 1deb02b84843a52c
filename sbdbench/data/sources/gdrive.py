"""Google Drive through ``gdown``: public files (confirmation pages included) and folder listings.

``gdown`` (maintained, used by most ML projects that publish on Drive) follows Drive's answers:
the direct file, the virus-scan confirmation page (current form, legacy link, JSON
``downloadUrl``), its quota and permission error pages, resumable transfers
(``resume=True`` reuses its ``<name><8 chars>.part`` file, ``retries`` reconnects with ``Range``),
and folders (``download_folder(..., skip_download=True)`` lists them without downloading).

What stays here, because gdown does not do it: the card's size is enforced *during* the transfer
(gdown's ``progress`` callback aborts it), the sha256 is checked and the file renamed into place by
:func:`.http.verify_and_install`, gdown's multi-line exceptions become one-line
:class:`DataError`\\ s that say what to do, and nothing is written outside the target's folder
(``use_cookies=False``: no ``~/.cache/gdown/cookies.txt``).

gdown has no setting for Drive's host names, so the URL map (``$SBDBENCH_URL_MAP``, used for
proxies and by the tests to reach a loopback server) is applied by a ``requests`` transport adapter
mounted on the session gdown creates (:func:`_rewritten`).
"""

from __future__ import annotations

import contextlib
import glob
import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter

from sbdbench.data.sources.http import (Downloader, check_free_space, download_lock, final_error, progress_bar,
                                        verify_and_install)
from sbdbench.errors import DataError

DRIVE_BASE = "https://drive.google.com"
USERCONTENT_BASE = "https://drive.usercontent.google.com"
DOCS_BASE = "https://docs.google.com"
GOOGLE_HOSTS = (DRIVE_BASE, USERCONTENT_BASE, DOCS_BASE)


@dataclass(frozen=True)
class DriveEntry:
    """One file of a Drive folder (``name`` is its path inside the folder: ``sub/x.zip`` in a sub-folder)."""

    id: str
    name: str
    is_folder: bool = False


class DriveClient:
    """Download public Google Drive files and list public folders, through gdown.

    ``downloader`` gives the timeouts, retries, backoff and progress setting; ``url_map`` rewrites
    Google's hosts (``{"https://drive.google.com": "http://127.0.0.1:8000/gdrive", ...}``).
    """

    def __init__(self, downloader: Optional[Downloader] = None, *, url_map: Optional[Dict[str, str]] = None) -> None:
        self.downloader = downloader or Downloader()
        self.url_map = {k.rstrip("/"): v.rstrip("/") for k, v in (url_map or {}).items() if k.rstrip("/") in GOOGLE_HOSTS}

    # --- URLs (for messages; gdown builds its own) -----------------------------------------------
    def view_url(self, file_id: str) -> str:
        return f"{DRIVE_BASE}/file/d/{file_id}/view"

    def folder_url(self, folder_id: str) -> str:
        return f"{DRIVE_BASE}/drive/folders/{folder_id}"

    def contacted(self, url: str) -> str:
        """``url`` as it is really requested (after the URL map)."""
        return _map_url(url, self.url_map)

    # --- folders -------------------------------------------------------------------------------
    def list_folder(self, folder_id: str) -> List[DriveEntry]:
        """The files of a public folder (those of its sub-folders too, as ``sub/name``), in page order."""
        gdown = _gdown()
        listing = self.contacted(f"{DRIVE_BASE}/embeddedfolderview?{urlencode({'id': folder_id})}")
        last: Optional[BaseException] = None
        for attempt in range(self.downloader.retries + 1):  # gdown does not retry folder discovery
            if attempt:
                self.downloader.sleep(self.downloader.backoff * 2 ** (attempt - 1))
            try:
                with _rewritten(gdown, self.url_map):
                    files = gdown.download_folder(id=folder_id, skip_download=True, quiet=True, use_cookies=False,
                                                  timeout=self.downloader.timeout)
                break
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
            except gdown.exceptions.DownloadError as exc:
                status = re.search(r"status code (\d+)", str(exc))
                why = f"HTTP {status.group(1)}: private, moved or removed?" if status else _one_line(str(exc))
                raise DataError(f"Google Drive folder {folder_id} lists no files ({why}); open {self.folder_url(folder_id)} in a browser to check") from None
        else:
            raise final_error(last, listing)
        entries = [DriveEntry(f.id, f.path.replace(os.sep, "/")) for f in files or []]
        if not entries:
            raise DataError(f"Google Drive folder {folder_id} lists no files (private, moved or empty?); open {self.folder_url(folder_id)} in a browser to check")
        return entries

    def find_in_folder(self, folder_id: str, name: str) -> DriveEntry:
        """The file named ``name`` in a folder; a clear error listing what is there otherwise."""
        entries = self.list_folder(folder_id)
        for entry in entries:
            if entry.name == name:
                return entry
        names = ", ".join(e.name for e in entries[:20])
        raise DataError(f"Google Drive folder {folder_id} has no file {name!r} (it holds: {names}); the dataset may have moved")

    # --- files ---------------------------------------------------------------------------------
    def download(self, file_id: str, target: str | os.PathLike, *, expected_size: Optional[int] = None,
                 expected_sha256: Optional[str] = None, what: str = "") -> str:
        """Download a public Drive file to ``target`` (resumable, size-capped, verified); return its sha256."""
        target = Path(target)
        staged = target.with_name(target.name + ".gdown")  # gdown's partial file: <name>.gdown<8 chars>.part
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create folder {target.parent}: {exc.strerror or exc}") from None
        with download_lock(target):
            self._transfer(file_id, staged, expected_size, what or target.name)
            return verify_and_install(staged, target, source=f"gdrive:{file_id}", expected_size=expected_size,
                                      expected_sha256=expected_sha256)

    def _transfer(self, file_id: str, staged: Path, expected_size: Optional[int], label: str) -> None:
        gdown = _gdown()
        bar = progress_bar(self.downloader.progress, expected_size, 0, label)
        checked = []

        def on_chunk(done: int, total: Optional[int]) -> None:
            if not checked:
                checked.append(True)
                if expected_size is not None and total is not None and total != expected_size:
                    raise _WrongSize(f"{label}: Google Drive announces {total} bytes but the card expects {expected_size}; the file changed upstream or the ID moved")
                if total:
                    check_free_space(staged.with_name(staged.name + ".part"), total - done)
            if expected_size is not None and done > expected_size:
                raise _WrongSize(f"{label}: Google Drive sent more than the card's {expected_size} bytes; stopped, nothing installed")
            if bar is not None:
                bar.update(done - bar.n)

        try:
            with _rewritten(gdown, self.url_map):
                gdown.download(id=file_id, output=str(staged), quiet=True, use_cookies=False, resume=True,
                               timeout=self.downloader.timeout, retries=self.downloader.retries, progress=on_chunk)
        except _WrongSize:
            _drop_partials(staged)  # another file's bytes: the next run starts afresh
            raise
        except DataError:
            raise
        except Exception as exc:  # gdown's and requests' exception types: one line each
            raise self._error(exc, file_id, label, staged) from None
        finally:
            if bar is not None:
                bar.close()

    def _error(self, exc: Exception, file_id: str, label: str, staged: Path) -> DataError:
        gdown = _gdown()
        url = self.contacted(f"{DRIVE_BASE}/uc?id={file_id}")
        kept = _partials(staged)
        keep = f" (the partial download {Path(kept[0]).name} is kept; rerun to resume)" if kept else ""
        if isinstance(exc, gdown.exceptions.FileURLRetrievalError):
            return self._refusal(file_id, _retrieval_reason(str(exc)), label)
        cause = exc.__cause__ if isinstance(exc, gdown.exceptions.DownloadError) and exc.__cause__ else exc
        if isinstance(cause, requests.HTTPError) and cause.response is not None:
            from sbdbench.data.sources.http import status_message

            return DataError(status_message(cause.response, cause.response.url or url))
        if isinstance(cause, (requests.ConnectionError, requests.Timeout)):
            return DataError(str(final_error(cause, url)) + keep)
        return DataError(f"Google Drive download of {label} failed: {_one_line(str(exc))}{keep}")

    def _refusal(self, file_id: str, reason: str, label: str) -> DataError:
        hint = f"download it in a browser from {self.view_url(file_id)} and rerun with --from PATH, or use --mirror URL"
        if re.search(r"too many users|quota", reason, re.I):
            return DataError(f"Google Drive download quota exceeded for {label} (\"{_clip(reason)}\"); wait up to 24 h, or {hint}")
        if not reason or reason.startswith("Cannot retrieve the public link"):
            return DataError(f"Google Drive offered no download for {label} (file private, removed or a login page); {hint}")
        return DataError(f"Google Drive refused {label}: {_clip(reason)}; {hint}")


# --- gdown plumbing ---------------------------------------------------------------------------------
class _WrongSize(DataError):
    """The transfer is not the card's file (announced or sent size): its partial file is deleted."""


def _gdown():
    try:
        import gdown
        import gdown.exceptions  # noqa: F401
    except ImportError:
        raise DataError("Google Drive downloads need gdown (pip install 'gdown>=6'), a dependency of sbdbench") from None
    return gdown


class _RewritingAdapter(HTTPAdapter):
    """Sends each request to its URL after the URL map (cookies and redirects stay requests')."""

    def __init__(self, url_map: Dict[str, str]) -> None:
        super().__init__()
        self.url_map = url_map

    def send(self, request, **kwargs):
        mapped = _map_url(request.url, self.url_map)
        if mapped != request.url:
            request = request.copy()
            request.url = mapped
        return super().send(request, **kwargs)


@contextlib.contextmanager
def _rewritten(gdown, url_map: Dict[str, str]) -> Iterator[None]:
    """Mount :class:`_RewritingAdapter` on the sessions gdown creates (only when a map applies)."""
    if not url_map:
        yield
        return
    import importlib

    modules = [importlib.import_module(f"gdown.{name}") for name in ("download", "download_folder")]
    if not all(hasattr(m, "_get_session") for m in modules):  # pragma: no cover - a gdown without this factory
        raise DataError("this gdown version cannot be pointed at $SBDBENCH_URL_MAP's hosts; unset it or install gdown 6.x")
    original = modules[0]._get_session

    def session_with_map(*args, **kwargs):
        sess, cookies = original(*args, **kwargs)
        adapter = _RewritingAdapter(url_map)
        sess.mount("https://", adapter)
        sess.mount("http://", adapter)
        return sess, cookies

    try:
        for module in modules:
            module._get_session = session_with_map
        yield
    finally:
        for module in modules:
            module._get_session = original


def _map_url(url: str, url_map: Dict[str, str]) -> str:
    for prefix, repl in url_map.items():
        if url == prefix or url.startswith(prefix + "/") or url.startswith(prefix + "?"):
            return repl + url[len(prefix):]
    return url


def _partials(staged: Path) -> List[str]:
    return sorted(glob.glob(glob.escape(str(staged)) + "????????.part"))


def _drop_partials(staged: Path) -> None:
    for path in _partials(staged):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _retrieval_reason(message: str) -> str:
    """The Drive page's own sentence inside gdown's multi-line FileURLRetrievalError."""
    match = re.search(r"Failed to retrieve file url:(.*?)You may still be able", message, re.S)
    text = match.group(1) if match else message
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", text)).split())


def _one_line(text: str) -> str:
    return _clip(" ".join(text.split()), 200)


def _clip(text: str, n: int = 140) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
