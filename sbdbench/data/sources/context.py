"""What every source module uses: get a verified file, stage a dataset, install it atomically.

``FetchContext.get_file`` turns a card's ``[[files]]`` entry into a verified local file (from
``--from PATH``, the download cache, a ``--mirror``, or the host), and
``FetchContext.staging`` / ``install_dataset`` build a dataset in a hidden folder next to the data
root and move it into place only when it is complete, with a manifest recording provenance and the
sha256 of every installed file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

from sbdbench.data.sources.cards import Card, FileSpec
from sbdbench.data.sources.gdrive import DriveClient
from sbdbench.data.sources.guards import check_options, check_source_path, looks_wrong
from sbdbench.data.sources.http import Downloader, human_size
from sbdbench.paths import sha256_file
from sbdbench.data.sources.lockfile import LockFile
from sbdbench.errors import DataError
from sbdbench.paths import atomic_write_text, data_root, home

URL_MAP_ENV = "SBDBENCH_URL_MAP"
# options every mesh source passes on to sbdbench.data.splits.build_dataset
BUILD_OPTION_NAMES = ("resolutions", "noise_levels", "noises", "sampler", "base_seed", "workers")


def parse_url_map(text: Optional[str]) -> Dict[str, str]:
    """``'https://a.org=http://127.0.0.1:8000/a;https://b.org=...'`` → ``{prefix: replacement}``."""
    out: Dict[str, str] = {}
    for item in (text or "").split(";"):
        if "=" in item:
            prefix, repl = item.split("=", 1)
            if prefix.strip():
                out[prefix.strip().rstrip("/")] = repl.strip().rstrip("/")
    return out


def mirror_env_name(source: str) -> str:
    """``SBDBENCH_MIRROR_<NAME>`` with the name upper-cased and ``-``/``.`` as ``_``."""
    return "SBDBENCH_MIRROR_" + source.upper().replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class FetchResult:
    """What ``fetch`` did: ``status`` is 'installed' or 'present'; ``path`` is the dataset / file."""

    name: str
    status: str
    path: Path
    message: str


@dataclass
class FetchContext:
    """Everything a source module needs to fetch and install one card."""

    card: Card
    force: bool = False
    mirror: Optional[str] = None
    progress: bool = True
    source_path: Optional[Path] = None
    downloader: Optional[Downloader] = None
    url_map: Dict[str, str] = field(default_factory=dict)
    lock: Optional[LockFile] = None
    options: Dict = field(default_factory=dict)
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr))

    def __post_init__(self) -> None:
        if self.downloader is None:
            self.downloader = Downloader(progress=self.progress)
        if self.lock is None:
            self.lock = LockFile()
        self.pins: Dict[str, tuple] = {}  # sha256 of unpublished files, written to the lock once installed
        if self.source_path is not None:
            self.source_path = Path(self.source_path).expanduser()
            check_source_path(self.card, self.source_path)
        check_options(self.card, self.options, BUILD_OPTION_NAMES)
        merged = dict(self.card.options)
        merged.update({k: v for k, v in self.options.items() if v is not None})
        self.options = merged

    # --- URLs ----------------------------------------------------------------------------------
    def url(self, url: str) -> str:
        """Apply the URL map (``$SBDBENCH_URL_MAP``; the tests point hosts at a loopback server)."""
        for prefix, repl in self.url_map.items():
            if url == prefix or url.startswith(prefix + "/") or url.startswith(prefix + "?"):
                return repl + url[len(prefix):]
        return url

    def drive(self) -> DriveClient:
        return DriveClient(self.downloader, url_map=self.url_map)

    @property
    def downloads_dir(self) -> Path:
        return home() / "downloads" / self.card.cache

    # --- files ---------------------------------------------------------------------------------
    def lock_key(self, spec: FileSpec) -> str:
        return f"{self.card.cache}/{spec.name}"

    def expected_sha256(self, spec: FileSpec) -> Optional[str]:
        pinned = self.pins.get(self.lock_key(spec))
        return spec.sha256 or (pinned[0] if pinned else None) or self.lock.sha256(self.lock_key(spec))

    def _repinnable(self, spec: FileSpec) -> bool:
        """--force may replace a lock entry recorded without validation (before it existed, or by hand)."""
        entry = self.lock.get(self.lock_key(spec)) if self.force and spec.sha256 is None else None
        return bool(entry) and not entry.get("validated")

    def get_file(self, spec: FileSpec, dest: Optional[Path] = None) -> Path:
        """A verified local copy of ``spec`` (cached under ``$SBDBENCH_HOME/downloads/<cache>/``)."""
        expected = None if self._repinnable(spec) else self.expected_sha256(spec)
        local = self._from_source_path(spec)
        if local is not None:
            digest = self._verify_local(local, spec, expected)
            self._check_content(local, spec, expected, f"--from {local}")
            self._remember(spec, digest, local.stat().st_size, f"file://{local}", expected)
            return local
        if spec.host == "local":
            raise DataError(self.card.options.get("gated_message") or f"{self.card.name}: {spec.name} cannot be downloaded; pass it with --from PATH")
        dest = Path(dest) if dest is not None else self.downloads_dir / spec.name
        if self.force:  # start afresh; the old file stays until the new one is verified and renamed over it
            with contextlib.suppress(FileNotFoundError):
                dest.with_name(dest.name + ".part").unlink()
        elif dest.is_file():
            digest = sha256_file(dest)
            if digest == expected if expected else not looks_wrong(dest, spec.name):
                self._remember(spec, digest, dest.stat().st_size, "cache", expected)
                return dest
            self.log(f"{dest.name}: the cached copy {'does not match its sha256' if expected else 'is not a valid download'}; downloading it again")
            dest.unlink()
        digest, url = self._download(spec, dest, expected)
        self._check_content(dest, spec, expected, f"{spec.name} from {url}", delete=True)
        self._remember(spec, digest, dest.stat().st_size, url, expected)
        return dest

    def _check_content(self, path: Path, spec: FileSpec, expected: Optional[str], what: str, delete: bool = False) -> None:
        """A file without a known sha256 must look right before it is used (and pinned); a bad download is deleted."""
        why = looks_wrong(path, spec.name) if expected is None else ""
        if not why:
            return
        if delete:
            with contextlib.suppress(OSError):
                path.unlink()
        tail = "the download was deleted; nothing was recorded or installed (rerun, or try --mirror URL)" if delete else \
            "nothing was recorded or installed"
        raise DataError(f"{what}: {why}, so it cannot be {spec.name}; {tail}")

    def _from_source_path(self, spec: FileSpec) -> Optional[Path]:
        if self.source_path is None:
            return None
        if self.source_path.is_dir():
            candidate = self.source_path / spec.name
            if not candidate.is_file() and not spec.optional:
                self.log(f"{spec.name}: not in --from {self.source_path}; downloading it")
            return candidate if candidate.is_file() else None
        required = [f for f in self.card.files if not f.optional]
        if len(required) == 1 and spec is required[0]:
            return self.source_path
        return self.source_path if self.source_path.name == spec.name else None

    def _verify_local(self, path: Path, spec: FileSpec, expected: Optional[str]) -> str:
        if spec.size is not None and path.stat().st_size != spec.size:
            raise DataError(f"{path}: {path.stat().st_size} bytes, but {spec.name} has {spec.size}; not the right file")
        digest = sha256_file(path)
        if expected and digest != expected:
            raise DataError(f"{path}: sha256 {digest[:16]}… does not match {spec.name}'s {expected[:16]}…; not the right file (or a different version)")
        return digest

    def _remember(self, spec: FileSpec, digest: str, size: int, url: str, expected: Optional[str]) -> None:
        if spec.sha256 is None and expected is None:
            self.pins[self.lock_key(spec)] = (digest, size, url, spec.name)

    def commit_pins(self) -> None:
        """Record the sha256 of the unpublished files of a successful install in the lock file."""
        for key, (digest, size, url, name) in self.pins.items():
            old = self.lock.sha256(key)
            self.lock.record(key, digest, size, url, validated=True)
            if old and old != digest:
                self.log(f"{name}: --force re-pinned sha256 {old[:16]}… → {digest[:16]}… in {self.lock.path} (the old entry was recorded without validation)")
            elif not old:
                self.log(f"{name}: no published checksum; recorded sha256 {digest[:16]}… in {self.lock.path} (checked on every later download)")
        self.pins.clear()

    def _candidates(self, spec: FileSpec) -> List[tuple]:
        """(label, callable(dest, expected) -> (sha256, url)) in the order to try."""
        dl = self.downloader
        if self.mirror:
            url = self.mirror.rstrip("/") + "/" + spec.name
            return [(url, lambda d, e, u=url: (dl.download(u, d, expected_size=spec.size, expected_sha256=e), u))]
        host = spec.host
        if host == "http":
            urls = [spec.get("url")] + list(spec.get("mirrors", []))
            return [(u, lambda d, e, u=u: (dl.download(self.url(u), d, expected_size=spec.size, expected_sha256=e), u)) for u in urls]
        if host == "gdrive":
            fid = spec.get("id")

            def from_drive(d, e):
                return self.drive().download(fid, d, expected_size=spec.size, expected_sha256=e, what=spec.name), f"gdrive:{fid}"

            return [(f"Google Drive file {fid}", from_drive)]
        if host == "gdrive-folder":
            folder = spec.get("folder_id")

            def from_folder(d, e):
                drive = self.drive()
                entry = drive.find_in_folder(folder, spec.get("child", spec.name))
                return drive.download(entry.id, d, expected_size=spec.size, expected_sha256=e, what=spec.name), f"gdrive:{entry.id}"

            return [(f"Google Drive folder {folder}", from_folder)]
        if host == "nextcloud":
            from sbdbench.data.sources.nextcloud import download_url

            url = download_url(spec.get("server"), spec.get("token"), path=spec.get("path"), files=spec.get("files"))
            out = [(url, lambda d, e, u=url: (dl.download(self.url(u), d, expected_size=spec.size, expected_sha256=e), u))]
            for u in spec.get("mirrors", []):
                out.append((u, lambda d, e, u=u: (dl.download(self.url(u), d, expected_size=spec.size, expected_sha256=e), u)))
            return out
        if host == "huggingface":
            from sbdbench.data.sources import huggingface as hf

            hub = hf.HubFile(spec.get("repo"), spec.get("path"), spec.get("revision", "main"), spec.get("repo_type", "dataset"))
            endpoint = self.url(hf.HF_BASE) if self.url(hf.HF_BASE) != hf.HF_BASE else None  # else $HF_ENDPOINT or the Hub

            def from_hf(d, e):
                return hf.download(hub, d, endpoint=endpoint, expected_size=spec.size, expected_sha256=e, progress=self.progress, retries=dl.retries), hub.url(hf.HF_BASE)

            return [(hub.label, from_hf)]
        raise DataError(f"card {self.card.name}: unknown host {host!r}")

    def _download(self, spec: FileSpec, dest: Path, expected: Optional[str]) -> tuple:
        from_lock = spec.sha256 is None and expected is not None
        errors = []
        candidates = self._candidates(spec)
        size = f" ({human_size(spec.size)})" if spec.size else ""
        self.log(f"downloading {spec.name}{size} for {self.card.name}")
        for label, attempt in candidates:
            try:
                return attempt(dest, expected)
            except DataError as exc:
                msg = str(exc)
                if "checksum mismatch" in msg:
                    if from_lock:
                        msg += f" [the expected sha256 was recorded on the first download in {self.lock.path}; if the file changed upstream on purpose, delete the entry {self.lock_key(spec)!r} there]"
                    raise DataError(msg) from None
                if "disk full" in msg:
                    raise
                errors.append(msg)
                if len(candidates) > 1:
                    self.log(f"  {label}: {msg}")
        if len(errors) == 1:
            raise DataError(errors[0])
        raise DataError(f"{spec.name}: every URL failed (last: {errors[-1]})")

    # --- installing datasets -------------------------------------------------------------------
    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder on the same file system as the data root, removed afterwards."""
        root = data_root()
        path = root / f".staging-{self.card.name}-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise DataError(f"cannot create {path}: {exc.strerror or exc}") from None
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def present(self, name: str) -> Optional[FetchResult]:
        """'already present' for an installed, intact dataset; None when absent; DataError if it differs."""
        root = data_root()
        ds_dir = root / name
        if not ds_dir.exists():
            return None
        if self.force:
            return None
        manifest_path = ds_dir / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        except (OSError, ValueError):
            manifest = {}
        manifest = manifest if isinstance(manifest, dict) else {}  # `[]` or `null`: not ours
        prov = manifest.get("provenance") if isinstance(manifest.get("provenance"), dict) else {}
        hint = f"rerun with --force to replace it (`sbdbench fetch {self.card.name} --force`)"
        if prov.get("card") != self.card.name:
            raise DataError(f"dataset {name!r} already exists at {ds_dir} with different contents (not installed by `sbdbench fetch {self.card.name}`); {hint}")
        for fname, digest in (prov.get("downloads") if isinstance(prov.get("downloads"), dict) else {}).items():
            spec = next((f for f in self.card.files if f.name == fname), None)
            want = self.expected_sha256(spec) if spec is not None else None
            if want and digest and digest != want:
                raise DataError(f"dataset {name!r} at {ds_dir} was built from a different {fname} (sha256 {digest[:12]}…, expected {want[:12]}…); {hint}")
        if "options" in prov and _jsonable(prov["options"]) != _jsonable(self.options):
            had = prov["options"] if isinstance(prov["options"], dict) else {}
            changed = sorted(k for k in set(had) | set(self.options) if _jsonable(had.get(k)) != _jsonable(self.options.get(k))) or ["options"]
            raise DataError(f"dataset {name!r} at {ds_dir} was built with other options ({', '.join(changed)}); {hint}")
        files = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
        for rel, entry in files.items():
            path = root / rel
            size = entry.get("size") if isinstance(entry, dict) else None
            if not path.is_file() or (size is not None and path.stat().st_size != size):
                raise DataError(f"dataset {name!r} at {ds_dir} differs from what was installed ({rel} is {'missing' if not path.is_file() else 'changed'}); {hint}")
        return FetchResult(name, "present", ds_dir, f"{name}: already present at {ds_dir} (verified; use --force to download again)")

    def install_dataset(self, staging: Path, name: str, downloads: Dict[str, str], extra: Optional[Dict] = None) -> FetchResult:
        """Move ``staging/<name>`` and ``staging/examples/<name>_*`` into the data root, atomically per folder.

        Writes ``<name>/manifest.json`` (merging any manifest the builder wrote) with a ``source``
        entry: card, licence, citation, the sha256 of each download and of every installed file.
        """
        root = data_root()
        src_dir = staging / name
        if not src_dir.is_dir():
            raise DataError(f"{self.card.name}: building {name!r} produced nothing (unexpected archive layout?)")
        example_dirs = sorted((staging / "examples").glob(f"{name}_*")) if (staging / "examples").is_dir() else []
        files = _staged_files(staging, [src_dir, *example_dirs])
        if not files:
            raise DataError(f"{self.card.name}: no files found to install for {name!r} (unexpected archive layout?)")
        manifest = self._manifest(src_dir / "manifest.json", name, files, downloads, extra)
        atomic_write_text(src_dir / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        _swap_into_place(root, name, src_dir, example_dirs)
        total = sum(entry["size"] for entry in files.values())
        return FetchResult(name, "installed", root / name, f"{name}: installed {len(files)} files ({human_size(total)}) under {root}")

    def _manifest(self, manifest_path: Path, name: str, files: Dict[str, Dict], downloads: Dict[str, str],
                  extra: Optional[Dict]) -> Dict:
        """The installed dataset's manifest: the builder's (when it wrote one), the files, and the provenance."""
        from sbdbench.data.splits import MANIFEST_FORMAT

        manifest: Dict = {}
        if manifest_path.is_file():  # written by sbdbench.data.splits.build_dataset
            with contextlib.suppress(OSError, ValueError):
                manifest = json.loads(manifest_path.read_text())
            manifest = manifest if isinstance(manifest, dict) else {}
        manifest.setdefault("format", MANIFEST_FORMAT)
        manifest.setdefault("name", name)
        manifest.setdefault("source", f"sbdbench fetch {self.card.name} ({self.card.title})")
        manifest.setdefault("layout", "ScoreDenoise data/ layout; paths in 'files' are relative to the data root (the folder holding "
                                      f"{name}/ and examples/)")
        manifest["files"] = files
        card = self.card
        manifest["provenance"] = {
            "card": card.name, "title": card.title, "licence": card.licence, "terms": card.terms, "citation": card.citation,
            "homepage": card.homepage, "extracted": card.extract, "layout": card.layout,
            "fetched": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "downloads": dict(downloads), "options": json.loads(_jsonable(self.options)), **(extra or {}),
        }
        return manifest


def _staged_files(staging: Path, folders: List[Path]) -> Dict[str, Dict]:
    """{path relative to the staging root: {sha256, size}} of every file to install (manifests and markers excluded)."""
    files: Dict[str, Dict] = {}
    for base in folders:
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.name != "manifest.json" and not path.name.startswith(".sbdbench-"):
                files[path.relative_to(staging).as_posix()] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return files


def _swap_into_place(root: Path, name: str, src_dir: Path, example_dirs: List[Path]) -> None:
    """Replace the installed dataset with the staged one, folder by folder, the dataset folder (with its manifest)
    last; on any failure the old install is put back."""
    trash = root / f".trash-{name}-{uuid.uuid4().hex[:8]}"
    old = [root / name] + (sorted((root / "examples").glob(f"{name}_*")) if (root / "examples").is_dir() else [])
    old = [p for p in old if p.exists() and _is_own_examples(p, name)]
    set_aside, placed = [], []
    try:
        trash.mkdir(parents=True)
        for i, path in enumerate(old):
            os.replace(path, trash / f"{i}-{path.name}")
            set_aside.append((trash / f"{i}-{path.name}", path))
        (root / "examples").mkdir(parents=True, exist_ok=True)
        for path in example_dirs:  # examples first, the dataset folder (with its manifest) last
            os.replace(path, root / "examples" / path.name)
            placed.append(root / "examples" / path.name)
        os.replace(src_dir, root / name)
    except BaseException as exc:  # roll back: remove what was placed, put the old install back
        for path in placed:
            shutil.rmtree(path, ignore_errors=True)
        for aside, original in set_aside:
            with contextlib.suppress(OSError):
                os.replace(aside, original)
        if isinstance(exc, OSError):
            raise DataError(f"could not install {name!r} into {root}: {exc.strerror or exc}") from None
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _jsonable(value) -> str:
    """A canonical JSON text of an options value (tuples and lists compare equal)."""
    return json.dumps(value, sort_keys=True, default=str)


def _is_own_examples(path: Path, name: str) -> bool:
    """``examples/<name>_<N>_...`` belongs to ``name`` (not to a dataset called ``<name>_x``)."""
    if path.parent.name != "examples":
        return True
    rest = path.name[len(name) + 1:]
    return rest.split("_", 1)[0].isdigit()
