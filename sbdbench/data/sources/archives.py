"""Safe extraction of downloaded archives (zip, tar.*, single-file .gz).

Every member is checked before anything is written: no absolute paths, no ``..`` components, no
links pointing outside the destination, no device files, and limits on the whole archive: its
total extracted size (``max_bytes``, from the card's ``extracted_size`` where it gives one) and
its total compression ratio (at most :data:`MAX_RATIO`:1 once it holds more than 16 MiB), for
zip, tar.* and single-file .gz alike. Declared sizes are checked first (a tar is scanned header by
header and refused as soon as its running total is over the cap), then the bytes actually
written, so a lying header cannot fill the disk: archive bombs are refused. A refused archive
raises :class:`DataError`; callers extract into a staging folder, so nothing half-extracted is
ever installed. :func:`safe_entry_name` checks names read from *inside* an archive (lists,
indexes) before they are joined to a path.

This stays the project's own code because no library gives these guarantees together: the standard
library's ``tarfile`` extraction filter (``filter="data"``, Python 3.12 and the 3.11.4+ backport)
refuses traversal, absolute paths, devices and escaping links for tar only, ``zipfile`` has no such
filter, and none of them (nor ``shutil.unpack_archive``, ``gdown.extractall`` or pooch's
``Unzip``/``Untar``, which call them) caps the extracted size or the compression ratio.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, List, Optional

from sbdbench.errors import DataError

DEFAULT_MAX_BYTES = 64 * 1024**3  # 64 GiB: more than any supported dataset, far less than a bomb
MAX_RATIO = 200  # an archive (or zip member) of more than 16 MiB expanding more than 200:1 is treated as a bomb
RATIO_MIN_SIZE = 16 << 20
_COPY_CHUNK = 1 << 20

MemberFilter = Callable[[str], bool]


def archive_kind(path: str | os.PathLike) -> str:
    """'zip', 'tar' or 'gz' (a single gzip-compressed file), from the content, not the name."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    with open(path, "rb") as fh:
        if fh.read(2) == b"\x1f\x8b":
            return "gz"
    raise DataError(f"{path.name}: not a zip, tar or gzip archive (the download may be an error page; rerun with --force)")


def safe_member_name(name: str, archive: str) -> str:
    """Normalise an archive member name; raise DataError for absolute paths and ``..``."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or clean.startswith("//"):
        raise DataError(f"{archive}: refused: member {name!r} has an absolute path")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise DataError(f"{archive}: refused: member {name!r} escapes the destination ('..')")
    return "/".join(parts)


def safe_entry_name(name: str, where: str) -> str:
    """A name read from inside a download (a list or index entry) that must stay one plain file name.

    Refuses absolute paths, ``..``, path separators, drive letters and control characters, so that
    joining it to a folder cannot reach outside that folder.
    """
    bad = (not name or name in (".", "..") or "/" in name or "\\" in name or name[1:2] == ":"
           or any(ord(c) < 32 for c in name))
    if bad:
        raise DataError(f"{where}: refused: entry {name!r} is not a plain file name (absolute path, '..' or a separator)")
    return name


def limit_for(spec) -> int:
    """``max_bytes`` for a card file: its ``extracted_size`` (bytes, whole archive) + 25 % + 1 MiB, else the default."""
    declared = spec.get("extracted_size") if spec is not None else None
    if declared is None:
        return DEFAULT_MAX_BYTES
    if not isinstance(declared, int) or isinstance(declared, bool) or declared <= 0:
        raise DataError(f"card file {spec.name}: extracted_size must be a positive integer (bytes), got {declared!r}")
    return min(DEFAULT_MAX_BYTES, declared + declared // 4 + (1 << 20))


def ratio_cap(archive: Path, max_bytes: int) -> int:
    """The most bytes ``archive`` may expand to: ``max_bytes``, and at most MAX_RATIO × its size (never below 16 MiB)."""
    return min(max_bytes, max(RATIO_MIN_SIZE, MAX_RATIO * archive.stat().st_size))


def extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    members: Optional[MemberFilter] = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    gz_name: Optional[str] = None,
) -> List[str]:
    """Extract ``archive`` into ``dest`` safely; return the extracted member names.

    ``members`` selects members by (normalised) name; all members are still *checked*, so one bad
    member refuses the whole archive. ``gz_name`` names the output of a single-file ``.gz``
    (default: the archive name without ``.gz``).
    """
    archive = Path(archive)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    kind = archive_kind(archive)
    try:
        if kind == "zip":
            return _extract_zip(archive, dest, members, max_bytes)
        if kind == "tar":
            return _extract_tar(archive, dest, members, max_bytes)
        default_name = archive.name[:-3] if archive.name.endswith(".gz") else archive.stem
        return _extract_gz(archive, dest, gz_name or default_name, max_bytes)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{archive.name}: corrupt archive ({exc}); rerun with --force to download it again") from None
    except OSError as exc:
        import errno

        if exc.errno == errno.ENOSPC:
            raise DataError(f"disk full while extracting {archive.name} into {dest} (free some space and rerun)") from None
        raise


def _check_total(total: int, max_bytes: int, archive: Path) -> None:
    if total > max_bytes:
        raise DataError(f"{archive.name}: refused: it would extract to more than {max_bytes} bytes (archive bomb or unexpected content)")
    size = max(archive.stat().st_size, 1)
    if total > ratio_cap(archive, max_bytes):
        raise DataError(f"{archive.name}: refused: {size} bytes that would expand to {total} ({total // size}:1, over {MAX_RATIO}:1; archive bomb?)")


def _copy_limited(src, dst_path: Path, budget: List[int], archive: Path) -> None:
    with open(dst_path, "wb") as out:
        while True:
            block = src.read(_COPY_CHUNK)
            if not block:
                break
            budget[0] -= len(block)
            if budget[0] < 0:
                raise DataError(f"{archive.name}: refused: extracted data exceeds the size limit (archive bomb?)")
            out.write(block)


def _extract_zip(archive: Path, dest: Path, members: Optional[MemberFilter], max_bytes: int) -> List[str]:
    out = []
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            name = safe_member_name(info.filename, archive.name)
            mode = (info.external_attr >> 16) & 0xFFFF
            if stat.S_ISLNK(mode):
                raise DataError(f"{archive.name}: refused: member {info.filename!r} is a symbolic link")
            if info.compress_size and info.file_size / max(info.compress_size, 1) > MAX_RATIO and info.file_size > RATIO_MIN_SIZE:
                raise DataError(f"{archive.name}: refused: member {info.filename!r} is compressed {info.file_size // info.compress_size}:1 (archive bomb?)")
            total += info.file_size
        _check_total(total, max_bytes, archive)
        budget = [ratio_cap(archive, max_bytes)]
        for info in infos:
            name = safe_member_name(info.filename, archive.name)
            if not name or (members is not None and not members(name)):
                continue
            target = dest / name
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src:
                _copy_limited(src, target, budget, archive)
            out.append(name)
    return out


def _extract_tar(archive: Path, dest: Path, members: Optional[MemberFilter], max_bytes: int) -> List[str]:
    out = []
    with tarfile.open(archive, mode="r:*") as tf:
        infos = _scan_tar(tf, archive, max_bytes)
        for info in infos:
            name = safe_member_name(info.name, archive.name)
            if info.issym() or info.islnk():
                link = info.linkname.replace("\\", "/")
                base = posixpath.dirname(name) if info.issym() else ""
                resolved = posixpath.normpath(posixpath.join(base, link))
                if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
                    raise DataError(f"{archive.name}: refused: link {info.name!r} -> {info.linkname!r} points outside the destination")
            elif not (info.isfile() or info.isdir()):
                raise DataError(f"{archive.name}: refused: member {info.name!r} is a device or special file")
        budget = [ratio_cap(archive, max_bytes)]
        links = []
        for info in infos:
            name = safe_member_name(info.name, archive.name)
            if not name or (members is not None and not members(name)):
                continue
            target = dest / name
            if info.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif info.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(info)
                if src is None:
                    continue
                with src:
                    _copy_limited(src, target, budget, archive)
                out.append(name)
            else:
                links.append((info, name))
        for info, name in links:  # internal links, materialised as copies once their targets exist
            base = posixpath.dirname(name) if info.issym() else ""
            source = dest / posixpath.normpath(posixpath.join(base, info.linkname))
            if source.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest / name)
                out.append(name)
    return out


def _scan_tar(tf: tarfile.TarFile, archive: Path, max_bytes: int) -> List[tarfile.TarInfo]:
    """Every member's header, refusing the archive as soon as the declared sizes pass the caps
    (so a compressed bomb is not decompressed to its end just to be measured)."""
    infos, total = [], 0
    for info in tf:
        infos.append(info)
        if info.isfile():
            total += info.size
            _check_total(total, max_bytes, archive)
    return infos


def _extract_gz(archive: Path, dest: Path, name: str, max_bytes: int) -> List[str]:
    name = safe_member_name(name, archive.name)
    budget = [ratio_cap(archive, max_bytes)]
    with gzip.open(archive, "rb") as src:
        _copy_limited(src, dest / name, budget, archive)
    return [name]
