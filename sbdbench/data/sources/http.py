"""Plain HTTP(S) downloads: stream to ``*.part``, resume with ``Range``, retry with backoff, verify, rename.

Google Drive goes through ``gdown`` (:mod:`.gdrive`) and the Hugging Face Hub through
``huggingface_hub`` (:mod:`.huggingface`); this module is what is left: web servers, Nextcloud
shares and ``--mirror`` URLs, plus :func:`verify_and_install`, the one check every download passes.
It stays the project's own code because no maintained library does the job: ``pooch``'s
``HTTPDownloader`` opens the output ``"w+b"`` and sends a plain GET (no ``Range``), so a cut
multi-GB transfer starts again from byte 0, and it offers no size cap before the transfer.
What it guarantees:

* the target file appears only complete and verified (size, then sha256), by an atomic rename;
* an interrupted transfer leaves ``<target>.part`` behind, and the next call resumes it with an
  HTTP ``Range`` request (a server that ignores ``Range`` makes it start over);
* a connection cut, a timeout or an HTTP 5xx/429 is retried with exponential backoff;
* every failure is a :class:`~sbdbench.errors.DataError` with a one-line message saying what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple
from urllib.parse import urlsplit

import requests

from sbdbench.errors import DataError
from sbdbench.paths import sha256_file

USER_AGENT = "sbdbench-downloader/0.1 (+https://github.com/sbdbench)"
CHUNK = 1 << 20
READ_CHUNK = 1 << 16  # small reads: a cut connection loses at most this much
RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}



def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


def human_size(n: Optional[int]) -> str:
    """1536 → '1.5 KB'; None → '?'."""
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


class _Retry(Exception):
    """Internal: this attempt failed in a way that another attempt may fix."""


@dataclass
class Downloader:
    """Downloads files over HTTP(S) with resume, retries, timeouts and verification.

    Parameters
    ----------
    retries: extra attempts after the first one (each resumes the ``.part`` file).
    backoff: seconds before the first retry; doubled after each failed attempt.
    timeout: (connect, read) timeouts in seconds for every request.
    progress: show the progress of each file (a bar on a terminal, else a line at most every 30 s).
    session: a ``requests.Session`` for the transfers.
    """

    retries: int = 3
    backoff: float = 1.0
    timeout: tuple = (15.0, 60.0)
    progress: bool = True
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.session.headers.setdefault("User-Agent", USER_AGENT)

    # --- the download itself -------------------------------------------------------------------
    def download(
        self,
        url: str,
        target: str | os.PathLike,
        *,
        expected_size: Optional[int] = None,
        expected_sha256: Optional[str] = None,
        desc: Optional[str] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> str:
        """Download ``url`` to ``target`` (resuming ``target.part``); return the file's sha256.

        Raises :class:`DataError` on a size or checksum mismatch (the bad ``.part`` is deleted and
        ``target`` is not created), on HTTP 4xx, and when all retries failed (the ``.part`` is kept
        so that the next call resumes it).
        """
        target = Path(target)
        part = target.with_name(target.name + ".part")
        try:
            part.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"cannot create folder {part.parent}: {exc.strerror or exc}") from None
        with download_lock(target):
            return self._download_locked(url, target, part, expected_size, expected_sha256, desc, headers)

    def _download_locked(self, url, target: Path, part: Path, expected_size, expected_sha256, desc, headers, *, fresh: bool = False) -> str:
        resumed = part.exists() and part.stat().st_size > 0
        last: Optional[BaseException] = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                self._attempt(url, part, expected_size, desc or target.name, headers)
                break
            except _Retry as exc:
                last = exc.__cause__ or exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
        else:
            raise final_error(last, url, part)
        try:
            return verify_and_install(part, target, source=url, expected_size=expected_size, expected_sha256=expected_sha256)
        except DataError as exc:
            if resumed and not fresh and "checksum mismatch" in str(exc):  # the old .part may hold another version's bytes
                return self._download_locked(url, target, part, expected_size, expected_sha256, desc, headers, fresh=True)
            raise

    def _attempt(self, url: str, part: Path, expected_size: Optional[int], desc: str, headers: Optional[Dict[str, str]]) -> None:
        """One GET of ``url`` into ``part``, resuming with ``Range`` from what ``part`` holds; ``_Retry`` on a transient
        failure, :class:`DataError` on a definitive one."""
        have = part.stat().st_size if part.exists() else 0
        if expected_size is not None and have == expected_size:
            return  # a previous run finished the transfer but stopped before the rename
        if expected_size is not None and have > expected_size:
            _unlink(part)
            have = 0
        req_headers = dict(headers or {})
        if have:
            req_headers["Range"] = f"bytes={have}-"
        try:
            resp = self.session.get(url, stream=True, timeout=self.timeout, headers=req_headers)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retry(str(exc)) from exc
        with resp:
            if _complete_on_416(resp, have, part):
                return
            _check_response(resp, url, desc)
            mode, have = _write_mode(resp, have, part)
            length = resp.headers.get("Content-Length")
            body_len = int(length) if length and length.isdigit() else None
            total = (have + body_len) if body_len is not None else expected_size
            if expected_size is not None and total is not None and total != expected_size and body_len is not None:
                raise DataError(f"{desc}: {host_of(url)} announces {total} bytes but the card expects {expected_size}; the file changed upstream or the URL moved")
            if body_len:
                check_free_space(part, body_len)
            written = self._stream(resp, part, mode, have, total, desc)
            if body_len is not None and written != body_len:
                raise _Retry(f"connection cut: got {written} of {body_len} bytes")

    def _stream(self, resp, part: Path, mode: str, have: int, total: Optional[int], desc: str) -> int:
        """Write the response body to ``part`` (appending in mode ``ab``); returns the bytes written."""
        written = 0
        bar = progress_bar(self.progress, total, have, desc)
        try:
            with open(part, mode) as fh:
                try:
                    for block in resp.iter_content(READ_CHUNK):
                        if not block:
                            continue
                        fh.write(block)
                        written += len(block)
                        if bar is not None:
                            bar.update(len(block))
                except OSError as exc:
                    if isinstance(exc, requests.RequestException) or exc.errno is None:
                        raise
                    if exc.errno == errno.ENOSPC:
                        raise DataError(f"disk full while writing {part} (free some space, then rerun: the partial download is kept and resumes)") from None
                    raise DataError(f"cannot write {part}: {exc.strerror or exc}") from None
        except (requests.RequestException, ConnectionError) as exc:
            raise _Retry(f"connection lost after {have + written} bytes") from exc
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise DataError(f"disk full while writing {part} (free some space, then rerun: the partial download is kept and resumes)") from None
            raise
        finally:
            if bar is not None:
                bar.close()
        return written


def _complete_on_416(resp, have: int, part: Path) -> bool:
    """HTTP 416 on a resume: True when ``part`` already holds the whole file; otherwise start over (``_Retry``)."""
    if not (resp.status_code == 416 and have):
        return False
    total = _total_from_content_range(resp.headers.get("Content-Range"))  # our range starts at/after the end
    if total is not None and total == have:
        return True
    _unlink(part)
    raise _Retry("HTTP 416 on resume; starting over")


def _check_response(resp, url: str, desc: str) -> None:
    """Retry on a transient status, refuse an error status or a web page where a file was expected."""
    if resp.status_code in RETRY_STATUS:
        raise _Retry(status_message(resp, url)) from DataError(status_message(resp, url))
    if resp.status_code >= 400:
        raise DataError(status_message(resp, url))
    ctype = resp.headers.get("Content-Type", "")
    if "text/html" in ctype and not url.lower().endswith((".html", ".htm")):
        raise DataError(f"{host_of(url)} answered with a web page instead of the file {desc} ({url}); "
                        "the URL may have moved or need a login (try --mirror URL)")


def _write_mode(resp, have: int, part: Path) -> Tuple[str, int]:
    """(``ab``, bytes kept) when the server resumed where ``part`` ends; (``wb``, 0) when it sent the whole file."""
    if resp.status_code == 206 and have:
        start = _start_from_content_range(resp.headers.get("Content-Range"))
        if start != have:
            _unlink(part)
            raise _Retry(f"server resumed at byte {start}, not {have}")
        return "ab", have
    return "wb", 0  # 200: the server ignored Range (or nothing to resume)


def verify_and_install(path: Path, target: Path, *, source: str, expected_size: Optional[int] = None,
                       expected_sha256: Optional[str] = None) -> str:
    """Check a finished download's size, then its sha256, and rename it to ``target``; return the sha256.

    Every host ends here (plain HTTP, gdown, huggingface_hub). A file that fails is deleted and
    ``target`` is left as it was; ``source`` (a URL or ``gdrive:<id>``) names where it came from.
    """
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        _unlink(path)
        raise DataError(f"{target.name}: downloaded {size} bytes from {source} but expected {expected_size}; nothing installed (rerun, or use --mirror URL)")
    digest = sha256_file(path)
    if expected_sha256 and digest != expected_sha256.lower():
        _unlink(path)
        raise DataError(
            f"{target.name}: checksum mismatch (sha256 {digest[:16]}…, expected {expected_sha256[:16]}…) from {host_of(source)}; "
            "the download was deleted and nothing was installed (rerun, or try --mirror URL)"
        )
    os.replace(path, target)
    return digest


def check_free_space(part: Path, needed: int) -> None:
    """Refuse to start a transfer that cannot fit (a one-line message instead of a half file)."""
    import shutil

    try:
        free = shutil.disk_usage(part.parent).free
    except OSError:
        return
    if free < needed:
        raise DataError(f"not enough disk space for {part.name[:-5]}: {human_size(needed)} to download, {human_size(free)} free in {part.parent} (free some space, or set $SBDBENCH_HOME elsewhere)")


@contextlib.contextmanager
def download_lock(target: Path) -> Iterator[None]:
    """An exclusive lock per target file, so two sbdbench processes never append to the same ``.part``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking
        yield
        return
    lock_dir = target.parent / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / (target.name + ".lock"), "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            import sys

            print(f"waiting for another sbdbench process downloading {target.name} ...", file=sys.stderr)
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def progress_bar(enabled: bool, total: Optional[int], initial: int, desc: str):
    """The byte progress of one transfer (None when disabled): a tqdm bar on a terminal, else lines such as
    ``downloading X: 120.3 MiB / 1.2 GiB (10 %), ETA 3 min 02 s`` (:class:`sbdbench.progress.Progress`)."""
    if not enabled:
        return None
    from sbdbench.progress import Progress

    return Progress(total, f"downloading {desc}", "B", initial=initial, leave=False)


def _start_from_content_range(value: Optional[str]) -> Optional[int]:
    match = re.match(r"bytes\s+(\d+)-", value or "")
    return int(match.group(1)) if match else None


def _total_from_content_range(value: Optional[str]) -> Optional[int]:
    match = re.search(r"/(\d+)\s*$", value or "")
    return int(match.group(1)) if match else None


def status_message(resp: requests.Response, url: str) -> str:
    reason = resp.reason or ""
    if resp.status_code == 404:
        return f"HTTP 404 Not Found from {host_of(url)} for {url} (the file has moved or been removed; try --mirror URL)"
    if resp.status_code in (401, 403):
        return f"HTTP {resp.status_code} {reason} from {host_of(url)} for {url} (access denied: the file may be private, gated or rate-limited)"
    return f"HTTP {resp.status_code} {reason} from {host_of(url)} for {url}"


def final_error(last: Optional[BaseException], url: str, part: Optional[Path] = None) -> DataError:
    keep = f" (the partial download {part.name} is kept; rerun to resume)" if part is not None and part.exists() else ""
    if isinstance(last, DataError):
        return DataError(f"{last}; gave up after retries{keep}")
    if isinstance(last, requests.ConnectionError) and not isinstance(last, requests.Timeout):
        return DataError(f"cannot reach {host_of(url)} (no network?): {_short(last)}{keep}")
    if isinstance(last, requests.Timeout):
        return DataError(f"{host_of(url)} timed out (slow or no network?){keep}")
    return DataError(f"download from {host_of(url)} failed: {_short(last)}{keep}")


def _short(exc: Optional[BaseException]) -> str:
    text = str(exc) if exc is not None else "unknown error"
    text = " ".join(text.split())
    return text if len(text) < 160 else text[:157] + "…"


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
