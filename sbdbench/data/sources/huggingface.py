"""Hugging Face Hub files through ``huggingface_hub``, at the revision the card pins (a tag or a commit).

``huggingface_hub.get_hf_file_metadata`` asks the Hub about the file (size, commit, ETag: for a
Git LFS file the ETag is its sha256) and ``hf_hub_download(..., revision=..., local_dir=...)``
transfers it (retries with ``Range`` inside one call, Xet storage where the Hub uses it). The file
lands in a private folder next to the target, is checked by :func:`.http.verify_and_install`
(size, sha256: the card's, the lock file's, or else the Hub's LFS ETag, so even a first download is
verified) and renamed into place; the private folder is then removed. ``token=False``: no token is
read or sent (the data sets are public).

The endpoint is the library's own setting: ``$HF_ENDPOINT``, or the URL map's entry for
``https://huggingface.co`` (the tests point it at a loopback server). huggingface_hub deletes a cut
transfer's temporary file at the end of the call, so unlike :mod:`.http` a *later* run starts over.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sbdbench.data.sources.http import check_free_space, download_lock, host_of, verify_and_install
from sbdbench.errors import DataError

HF_BASE = "https://huggingface.co"
_SHA = re.compile(r"^[0-9a-f]{64}$")
_NETWORK_ERRORS = ("ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "ConnectionError", "Timeout")


@dataclass(frozen=True)
class HubFile:
    """A file of a Hub repository at a pinned revision."""

    repo: str
    path: str
    revision: str = "main"
    repo_type: str = "dataset"

    def url(self, endpoint: Optional[str] = None) -> str:
        """``<endpoint>/datasets/<repo>/resolve/<revision>/<path>`` (what the library requests)."""
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo, self.path, repo_type=self.repo_type, revision=self.revision, endpoint=endpoint or _endpoint())

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.revision}:{self.path}"


def download(hub: HubFile, target: Path, *, endpoint: Optional[str] = None, expected_size: Optional[int] = None,
             expected_sha256: Optional[str] = None, progress: bool = True, retries: int = 3) -> str:
    """Download ``hub`` to ``target`` (verified, renamed into place); return its sha256.

    ``retries`` > 0 lets huggingface_hub retry its metadata request (with backoff) on network errors
    and 5xx; the transfer itself is retried by the library in any case.
    """
    target = Path(target)
    endpoint = (endpoint or _endpoint()).rstrip("/")
    staging = target.parent / f".hf-{target.name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with download_lock(target):
        shutil.rmtree(staging, ignore_errors=True)
        try:
            meta = _metadata(hub, endpoint, retries > 0)
            if expected_size is not None and meta.size is not None and meta.size != expected_size:
                raise DataError(f"{target.name}: the Hub announces {meta.size} bytes for {hub.label} but the card expects {expected_size}; the file changed upstream or the revision moved")
            if meta.size:
                check_free_space(staging / "x.part", meta.size)
            expected_sha256 = expected_sha256 or etag_sha256(meta.etag)
            local = _hub_download(hub, endpoint, staging, progress)
            return verify_and_install(local, target, source=hub.url(endpoint), expected_size=expected_size, expected_sha256=expected_sha256)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def etag_sha256(etag: Optional[str]) -> Optional[str]:
    """The sha256 in a Hub ETag (Git LFS files), or None (a plain git file's ETag is its blob id)."""
    value = (etag or "").strip()
    value = value[2:] if value.startswith("W/") else value
    value = value.strip('"').lower()
    return value if _SHA.match(value) else None


def _endpoint() -> str:
    from huggingface_hub import constants

    return (constants.ENDPOINT or HF_BASE).rstrip("/")


def _metadata(hub: HubFile, endpoint: str, retry: bool):
    from huggingface_hub import get_hf_file_metadata

    try:
        return get_hf_file_metadata(hub.url(endpoint), token=False, endpoint=endpoint, retry_on_errors=retry)
    except Exception as exc:  # the library's exception types: one line each
        raise hub_error(exc, hub, endpoint) from None


def _hub_download(hub: HubFile, endpoint: str, staging: Path, progress: bool) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(hub.repo, hub.path, repo_type=hub.repo_type, revision=hub.revision, endpoint=endpoint,
                                    local_dir=staging, token=False, tqdm_class=_bar_class(progress)))
    except Exception as exc:
        raise hub_error(exc, hub, endpoint) from None


def _bar_class(progress: bool):
    """The library's own bar on a terminal (None), lines elsewhere (:class:`sbdbench.progress.Progress`), or silence."""
    import sys

    if not progress:
        return _silent_bar_class()
    return None if sys.stderr.isatty() else _line_bar_class()


def _line_bar_class():
    """A disabled tqdm class whose updates go to :class:`sbdbench.progress.Progress` lines ("downloading X: 120.3
    MiB / 1.2 GiB (10 %), ETA ..."): off a terminal the library's own bar would print nothing for an hour's download."""
    from tqdm.auto import tqdm

    from sbdbench.progress import Progress

    class Lines(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.lines = Progress(kwargs.get("total"), f"downloading {kwargs.get('desc') or 'file'}", "B",
                                  initial=kwargs.get("initial") or 0, tty=False)

        def update(self, n=1):
            self.lines.update(n or 0)

        def close(self):
            if hasattr(self, "lines"):
                self.lines.close()
            super().close()

    return Lines


def _silent_bar_class():
    from tqdm.auto import tqdm

    class Silent(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def hub_error(exc: BaseException, hub: HubFile, endpoint: str) -> DataError:
    """A huggingface_hub exception as one line that says what to do."""
    from huggingface_hub import errors

    while isinstance(exc, errors.LocalEntryNotFoundError) and exc.__cause__ is not None:
        exc = exc.__cause__  # "cannot find it in the local cache": the real reason is the cause
    host = host_of(endpoint)
    where = f"{hub.repo_type} {hub.repo} on {host}"
    if isinstance(exc, errors.RevisionNotFoundError):
        return DataError(f"Hugging Face {where} has no revision {hub.revision!r} (the card's pinned tag or commit was removed or renamed); use --mirror URL or update the card")
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return DataError(f"Hugging Face {where} has no file {hub.path!r} at revision {hub.revision!r} (moved or removed; try --mirror URL)")
    if isinstance(exc, errors.GatedRepoError):
        return DataError(f"Hugging Face {where} is gated: accept its terms on {HF_BASE}/datasets/{hub.repo}, then download {hub.path} there and rerun with --from PATH")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return DataError(f"Hugging Face {where} not found (private, renamed or removed; try --mirror URL)")
    if isinstance(exc, errors.FileMetadataError):
        return DataError(f"{host} does not answer like the Hugging Face Hub (no X-Repo-Commit header); check $HF_ENDPOINT / $SBDBENCH_URL_MAP")
    if isinstance(exc, errors.HfHubHTTPError) and exc.response is not None:
        return DataError(f"HTTP {exc.response.status_code} from {host} for {hub.url(endpoint)}")
    if _is_network_error(exc):
        return DataError(f"cannot reach {host} (no network?): {_short(exc)}")
    if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
        return DataError(f"{hub.path}: the transfer from {host} ended early ({_short(exc)}); nothing installed (rerun, or try --mirror URL)")
    return DataError(f"Hugging Face download of {hub.label} failed: {_short(exc)}")


def _is_network_error(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, (ConnectionError, TimeoutError)) or any(t.__name__ in _NETWORK_ERRORS for t in type(exc).__mro__):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 160 else text[:157] + "…"
