"""A checkpoint that is published only inside a larger archive (``kind = "weights-archive"``).

IterativePFN's authors publish their pretrained network only inside ``data_and_ckpt.zip`` (their whole
train/test data plus ``pretrained/denoisenet-ep-99.ckpt``). A user who asks for the weights expects the
weights: the installer downloads the archive (cached under ``$SBDBENCH_HOME/downloads/<cache>/``, resumable,
sha256 recorded on first validated install), extracts **only** the member named by ``options.member`` (a
path suffix, matched under any top folder) to ``$SBDBENCH_HOME/<options.target>``, writes a sidecar
``<target>.source.json`` (the archive's and the file's sha256) and then deletes the downloaded archive
unless ``-o keep_archive=true`` (a ``--from`` file is never touched). The data sets in that archive are
installed by their own cards (``punet``, ``pcnet``), not by this one.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import zipfile
from pathlib import Path

from sbdbench.data.sources.archives import archive_kind, extract, limit_for, safe_member_name
from sbdbench.data.sources.context import FetchContext, FetchResult
from sbdbench.errors import DataError
from sbdbench.paths import atomic_path, atomic_write_text, home, sha256_file


def _member(archive: Path, suffix: str) -> str:
    """The one zip member whose normalised name is ``suffix`` or ends with ``/<suffix>``."""
    with zipfile.ZipFile(archive) as zf:
        names = [safe_member_name(n, archive.name) for n in zf.namelist() if not n.endswith("/")]
    found = [n for n in names if n == suffix or n.endswith("/" + suffix)]
    if len(found) != 1:
        near = [n for n in names if n.rsplit("/", 1)[-1] == suffix.rsplit("/", 1)[-1] or n.endswith(".ckpt")][:5]
        what = "no member" if not found else f"{len(found)} members"
        raise DataError(f"{archive.name}: {what} named {suffix!r} (similar: {', '.join(near) or 'none'}); "
                        "the archive's layout changed or the wrong file was downloaded")
    return found[0]


def _present(ctx: FetchContext, target: Path, sidecar: Path, archive_sha) -> FetchResult | None:
    """'already present' when ``target`` is the file this card installed (its sidecar's sha256 matches)."""
    if not target.is_file() or ctx.force:
        return None
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or info.get("card") != ctx.card.name or info.get("sha256") != sha256_file(target):
        raise DataError(f"{target} already exists but was not installed by `sbdbench fetch {ctx.card.name}` (or has changed); "
                        "rerun with --force to replace it")
    if archive_sha and info.get("archive_sha256") not in (None, archive_sha):
        raise DataError(f"{target} was extracted from another {info.get('archive')}; rerun with --force to replace it")
    return FetchResult(ctx.card.name, "present", target, f"{ctx.card.name}: already present at {target} (sha256 verified)")


def install(ctx: FetchContext) -> FetchResult:
    """Download the card's archive, install its one checkpoint member at ``home()/<options.target>``."""
    card = ctx.card
    spec = next(f for f in card.files if not f.optional)
    target = home() / card.options["target"]
    sidecar = target.with_name(target.name + ".source.json")
    present = _present(ctx, target, sidecar, ctx.expected_sha256(spec))
    if present is not None:
        return present
    from_user = ctx._from_source_path(spec) is not None
    archive = ctx.get_file(spec)
    if archive_kind(archive) != "zip":
        raise DataError(f"{archive}: not a zip archive; rerun with --force to download it again")
    member = _member(archive, str(card.options["member"]))
    with ctx.staging() as staging:
        extract(archive, staging, members=lambda n: n == member, max_bytes=limit_for(spec))
        got = staging / member
        if not zipfile.is_zipfile(got):  # torch.save (Lightning included) writes a zip container
            raise DataError(f"{archive.name}: {member} is not a PyTorch checkpoint (not a torch.save zip file)")
        with atomic_path(target) as tmp:
            shutil.copyfile(got, tmp)
    info = {"card": card.name, "archive": spec.name, "archive_sha256": sha256_file(archive), "member": member,
            "sha256": sha256_file(target), "size": target.stat().st_size}
    atomic_write_text(sidecar, json.dumps(info, indent=1, sort_keys=True) + "\n")
    if not from_user and not _truthy(ctx.options.get("keep_archive", False)):
        with contextlib.suppress(OSError):
            archive.unlink()
        kept = f"; the downloaded {spec.name} was deleted (-o keep_archive=true keeps it)"
    else:
        kept = ""
    return FetchResult(card.name, "installed", target, f"{card.name}: installed {target} ({member} of {spec.name}){kept}")


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
