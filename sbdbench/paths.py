"""Where sbdbench keeps its data, and how it writes files so that no reader ever sees half a file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from sbdbench.errors import SbdbenchError

HOME_ENV = "SBDBENCH_HOME"


def home() -> Path:
    """The sbdbench home folder: ``$SBDBENCH_HOME`` or ``~/.cache/sbdbench``, created if needed."""
    root = Path(os.environ.get(HOME_ENV) or Path.home() / ".cache" / "sbdbench").expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SbdbenchError(f"cannot create the sbdbench home {root}: {exc.strerror or exc}") from exc
    if not os.access(root, os.W_OK):
        raise SbdbenchError(f"the sbdbench home {root} is not writable (set ${HOME_ENV} to a writable folder)")
    return root


def data_root() -> Path:
    """The folder holding datasets in ScoreDenoise's ``data/`` layout (``<home>/data``)."""
    return home() / "data"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is renamed onto ``target`` atomically.

    If the body raises, the temporary file is removed and ``target`` is left untouched, so an
    interrupted write never leaves a half file behind.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SbdbenchError(f"cannot create folder {target.parent}: {exc.strerror or exc}") from exc
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or (target.suffix + ".tmp"), dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask applies),
    # so a shared cache stays readable by its other users.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically (temp file + fsync + rename)."""
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (works for multi-GB files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
