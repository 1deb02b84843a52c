"""The download machinery against a loopback server: resume, retries, verification, Drive, archives."""

from __future__ import annotations

import errno
import io
import socket
import tarfile
import zipfile

import pytest

from sbdbench.data.sources import archives
from sbdbench.data.sources import huggingface as hf
from sbdbench.data.sources.gdrive import DriveClient
from sbdbench.data.sources.http import Downloader
from sbdbench.paths import sha256_file
from sbdbench.data.sources.lockfile import LockFile
from sbdbench.errors import DataError
from http_fixtures import DriveEmulator, HubEmulator, LoopbackServer, sha256, url_map

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, not compressible to nothing, distinct bytes per offset


@pytest.fixture()
def server():
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture()
def dl():
    return Downloader(retries=2, backoff=0.0, timeout=(5, 5), progress=False)


# --- plain HTTP ----------------------------------------------------------------------------------
def test_download_verifies_and_renames_atomically(server, dl, tmp_path):
    server.add_file("/f.bin", PAYLOAD)
    target = tmp_path / "f.bin"
    digest = dl.download(server.url("/f.bin"), target, expected_size=len(PAYLOAD), expected_sha256=sha256(PAYLOAD))
    assert digest == sha256(PAYLOAD)
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "f.bin.part").exists()


def test_connection_cut_halfway_is_resumed_with_range(server, dl, tmp_path):
    half = len(PAYLOAD) // 2
    server.add_file("/cut.bin", PAYLOAD, cut_after=half, cuts_left=1)
    target = tmp_path / "cut.bin"
    dl.download(server.url("/cut.bin"), target, expected_sha256=sha256(PAYLOAD))
    assert target.read_bytes() == PAYLOAD
    reqs = server.requests_to("/cut.bin")
    assert len(reqs) == 2
    assert "range" not in reqs[0].headers
    resumed_at = int(reqs[1].headers["range"][len("bytes="):].rstrip("-"))
    assert 0 < resumed_at <= half  # only the missing tail was asked for


def test_partial_previous_download_resumes(server, dl, tmp_path):
    server.add_file("/p.bin", PAYLOAD)
    target = tmp_path / "p.bin"
    (tmp_path / "p.bin.part").write_bytes(PAYLOAD[:1000])
    dl.download(server.url("/p.bin"), target, expected_sha256=sha256(PAYLOAD))
    assert target.read_bytes() == PAYLOAD
    assert server.requests_to("/p.bin")[0].headers["range"] == "bytes=1000-"


def test_stale_part_of_another_version_is_discarded_once(server, dl, tmp_path):
    server.add_file("/v2.bin", PAYLOAD)
    (tmp_path / "v2.bin.part").write_bytes(b"\xff" * 5000)  # a prefix of some older version
    dl.download(server.url("/v2.bin"), tmp_path / "v2.bin", expected_sha256=sha256(PAYLOAD))
    assert (tmp_path / "v2.bin").read_bytes() == PAYLOAD
    assert [r.headers.get("range") for r in server.requests_to("/v2.bin")] == ["bytes=5000-", None]


def test_server_ignoring_range_restarts_cleanly(server, dl, tmp_path):
    server.add_file("/norange.bin", PAYLOAD, range_ok=False)
    (tmp_path / "n.bin.part").write_bytes(b"garbage that must not stay in front")
    dl.download(server.url("/norange.bin"), tmp_path / "n.bin", expected_sha256=sha256(PAYLOAD))
    assert (tmp_path / "n.bin").read_bytes() == PAYLOAD


def test_wrong_bytes_raise_checksum_error_and_install_nothing(server, dl, tmp_path):
    server.add_file("/bad.bin", b"not the file you want" * 100)
    target = tmp_path / "bad.bin"
    with pytest.raises(DataError, match="checksum mismatch.*nothing was installed"):
        dl.download(server.url("/bad.bin"), target, expected_sha256=sha256(PAYLOAD))
    assert not target.exists() and not (tmp_path / "bad.bin.part").exists()


def test_size_mismatch_is_an_error(server, dl, tmp_path):
    server.add_file("/short.bin", PAYLOAD[:100])
    with pytest.raises(DataError, match="expects 999"):
        dl.download(server.url("/short.bin"), tmp_path / "s.bin", expected_size=999)
    assert not (tmp_path / "s.bin").exists()


def test_http_404_is_a_clear_error(server, dl, tmp_path):
    with pytest.raises(DataError, match=r"HTTP 404 .*moved.*--mirror"):
        dl.download(server.url("/missing.bin"), tmp_path / "m.bin")
    assert len(server.requests_to("/missing.bin")) == 1  # a 404 is not retried


def test_http_500_is_retried_then_reported(server, dl, tmp_path):
    server.add_file("/flaky.bin", PAYLOAD, fail_first=1)
    dl.download(server.url("/flaky.bin"), tmp_path / "flaky.bin", expected_sha256=sha256(PAYLOAD))
    assert (tmp_path / "flaky.bin").read_bytes() == PAYLOAD
    server.add_file("/down.bin", PAYLOAD, fail_first=100)
    with pytest.raises(DataError, match="HTTP 500.*gave up"):
        dl.download(server.url("/down.bin"), tmp_path / "down.bin")
    assert len(server.requests_to("/down.bin")) == 3  # 1 + 2 retries
    assert not (tmp_path / "down.bin").exists()


def test_no_network_is_one_line(dl, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as info:
        dl.download(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin")
    msg = str(info.value)
    assert msg.startswith(f"cannot reach 127.0.0.1:{port} (no network?)") and "\n" not in msg


def test_html_instead_of_file_is_reported(server, dl, tmp_path):
    server.add_file("/moved.zip", b"<html>this page has moved</html>", content_type="text/html")
    with pytest.raises(DataError, match="web page instead of the file"):
        dl.download(server.url("/moved.zip"), tmp_path / "moved.zip")


def test_stream_without_content_length(server, dl, tmp_path):
    # Nextcloud streams folder zips without a Content-Length.
    server.add_file("/nextcloud/index.php/s/TOKEN/download", PAYLOAD, send_length=False, range_ok=False)
    dl.download(server.url("/nextcloud/index.php/s/TOKEN/download"), tmp_path / "share.zip", expected_sha256=sha256(PAYLOAD))
    assert sha256_file(tmp_path / "share.zip") == sha256(PAYLOAD)


class _FullDisk(io.BufferedWriter):
    def write(self, data):  # noqa: D401 - a file on a full disk
        raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_is_one_line_and_keeps_nothing_final(server, dl, tmp_path, monkeypatch):
    server.add_file("/big.bin", PAYLOAD)
    import builtins

    real_open = builtins.open

    def full_open(path, mode="r", *a, **k):
        if str(path).endswith(".part") and "b" in mode and ("w" in mode or "a" in mode):
            return _FullDisk(real_open(path, mode.replace("b", "") + "b", buffering=0))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full_open)
    with pytest.raises(DataError, match="disk full while writing .*resumes"):
        dl.download(server.url("/big.bin"), tmp_path / "big.bin")
    assert not (tmp_path / "big.bin").exists()


# --- Google Drive (gdown, pointed at the loopback server through the URL map) ---------------------
@pytest.fixture()
def drive(server, dl):
    emu = DriveEmulator(server)
    return emu, DriveClient(dl, url_map=url_map(server.base))


def _left_in(folder):
    """Every file under ``folder`` except the download locks: what a download left behind."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and ".locks" not in p.parts)


@pytest.mark.parametrize("shape", ["direct", "redirect", "form", "legacy", "json"])
def test_drive_file_shapes(drive, tmp_path, shape):
    emu, client = drive
    emu.add_file("FILEID_" + shape + "_0123456789", "data.zip", PAYLOAD, shape=shape)
    target = tmp_path / "data.zip"
    digest = client.download("FILEID_" + shape + "_0123456789", target)
    assert digest == sha256(PAYLOAD) and target.read_bytes() == PAYLOAD
    assert _left_in(tmp_path) == ["data.zip"]


def test_drive_confirm_download_resumes_after_cut(drive, server, tmp_path):
    emu, client = drive
    emu.add_file("BIGFILE_0123456789abcdef", "data.zip", PAYLOAD, shape="form")
    # cut the first transfer of the real bytes (after the confirmation page), past gdown's first 512 KiB chunk
    original = emu._send_file
    calls = []

    def cutting(handler, req, f):
        from http_fixtures import FileRoute

        calls.append(req)
        route = FileRoute(body=f.body, headers={"Content-Disposition": f'attachment; filename="{f.name}"'}, cut_after=len(f.body) * 3 // 4, cuts_left=1 if len(calls) == 1 else 0)
        handler.serve_route(route, req)

    emu._send_file = cutting
    client.download("BIGFILE_0123456789abcdef", tmp_path / "data.zip", expected_sha256=sha256(PAYLOAD))
    assert (tmp_path / "data.zip").read_bytes() == PAYLOAD
    assert any("range" in r.headers for r in server.requests_to("/usercontent/download"))
    emu._send_file = original


def test_drive_truncated_beyond_retries_keeps_the_part_and_the_rerun_resumes(server, tmp_path):
    emu = DriveEmulator(server)
    client = DriveClient(Downloader(retries=0, backoff=0.0, timeout=(5, 5), progress=False), url_map=url_map(server.base))
    emu.add_file("CUTFILE_0123456789abcdef", "data.zip", PAYLOAD, shape="direct")
    original = emu._send_file
    from http_fixtures import FileRoute

    emu._send_file = lambda h, r, f: h.serve_route(FileRoute(body=f.body, headers={"Content-Disposition": 'attachment; filename="data.zip"'}, cut_after=len(f.body) // 2, cuts_left=1), r)
    with pytest.raises(DataError) as info:
        client.download("CUTFILE_0123456789abcdef", tmp_path / "data.zip", expected_sha256=sha256(PAYLOAD))
    msg = str(info.value)
    assert "\n" not in msg and "is kept; rerun to resume" in msg and not (tmp_path / "data.zip").exists()
    emu._send_file = original
    client.download("CUTFILE_0123456789abcdef", tmp_path / "data.zip", expected_sha256=sha256(PAYLOAD))
    assert (tmp_path / "data.zip").read_bytes() == PAYLOAD and _left_in(tmp_path) == ["data.zip"]
    assert server.requests_to("/gdrive/uc")[-1].headers.get("range", "").startswith("bytes=")


def test_drive_wrong_bytes_are_a_checksum_error_and_install_nothing(drive, tmp_path):
    emu, client = drive
    emu.add_file("WRONGBYTES_0123456789abcdef", "data.zip", PAYLOAD[::-1], shape="form")
    with pytest.raises(DataError, match=r"data.zip: checksum mismatch .* nothing was installed"):
        client.download("WRONGBYTES_0123456789abcdef", tmp_path / "data.zip", expected_sha256=sha256(PAYLOAD))
    assert _left_in(tmp_path) == []


def test_drive_size_other_than_the_cards_is_stopped(drive, tmp_path):
    emu, client = drive
    emu.add_file("BIGGER_0123456789abcdef", "data.zip", PAYLOAD + b"extra", shape="direct")
    with pytest.raises(DataError, match=f"announces {len(PAYLOAD) + 5} bytes but the card expects {len(PAYLOAD)}"):
        client.download("BIGGER_0123456789abcdef", tmp_path / "data.zip", expected_size=len(PAYLOAD))
    assert _left_in(tmp_path) == []


def test_drive_quota_page_gives_instructions(drive, tmp_path):
    emu, client = drive
    emu.add_file("QUOTA_0123456789abcdef", "data.zip", PAYLOAD, shape="quota")
    with pytest.raises(DataError) as info:
        client.download("QUOTA_0123456789abcdef", tmp_path / "data.zip", what="data.zip")
    msg = str(info.value)
    assert "quota exceeded" in msg and "Too many users" in msg and "--from PATH" in msg and "24 h" in msg
    assert "\n" not in msg and "Gdown" not in msg  # gdown's multi-line text is not passed through
    assert not (tmp_path / "data.zip").exists()


@pytest.mark.parametrize("shape", ["private", "missing"])
def test_drive_private_or_missing_file(drive, tmp_path, shape):
    emu, client = drive
    if shape == "private":
        emu.add_file("PRIVATE_0123456789abcdef", "x.zip", PAYLOAD, shape="private")
    with pytest.raises(DataError, match="private, removed"):
        client.download("PRIVATE_0123456789abcdef", tmp_path / "x.zip")
    assert _left_in(tmp_path) == []


def test_drive_unreachable_is_one_line(dl, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = DriveClient(Downloader(retries=0, backoff=0, progress=False), url_map={"https://drive.google.com": f"http://127.0.0.1:{port}"})
    with pytest.raises(DataError, match=rf"^cannot reach 127.0.0.1:{port} \(no network\?\)"):
        client.download("ANYFILE_0123456789abcdef", tmp_path / "x.zip")


def test_drive_writes_no_cookie_file(drive, tmp_path, monkeypatch):
    import importlib

    cookies = tmp_path / "home" / ".cache" / "gdown" / "cookies.txt"
    monkeypatch.setattr(importlib.import_module("gdown.download"), "DEFAULT_COOKIES_FILE", str(cookies))
    emu, client = drive
    emu.add_file("COOKIE_0123456789abcdefgh", "data.zip", PAYLOAD, shape="form")
    client.download("COOKIE_0123456789abcdefgh", tmp_path / "data.zip")
    assert not cookies.exists()


def test_drive_folder_listing(drive):
    emu, client = drive
    emu.add_folder("FOLDER_0123456789abcdef", "score-denoise data", {"1AbCdEfGhIjKlMnOpQrStUvWxYz012": "data.zip", "1ZyXwVuTsRqPoNmLkJiHgFeDcBa98": "README & notes.txt"})
    entries = client.list_folder("FOLDER_0123456789abcdef")
    assert [(e.id, e.name) for e in entries] == [("1AbCdEfGhIjKlMnOpQrStUvWxYz012", "data.zip"), ("1ZyXwVuTsRqPoNmLkJiHgFeDcBa98", "README & notes.txt")]
    assert client.find_in_folder("FOLDER_0123456789abcdef", "data.zip").id == "1AbCdEfGhIjKlMnOpQrStUvWxYz012"
    with pytest.raises(DataError, match="has no file 'other.zip' .*data.zip, README & notes.txt"):
        client.find_in_folder("FOLDER_0123456789abcdef", "other.zip")
    with pytest.raises(DataError, match=r"^Google Drive folder NOFOLDER_0123456789abcdef lists no files \(HTTP 404"):
        client.list_folder("NOFOLDER_0123456789abcdef")
    emu.add_folder("EMPTY_0123456789abcdef", "empty", {})
    with pytest.raises(DataError, match="lists no files .*empty"):
        client.list_folder("EMPTY_0123456789abcdef")


# --- Hugging Face Hub (huggingface_hub, pointed at the loopback server through its endpoint) -------
REPO, REV = "Org/Set", "v1.0"


@pytest.fixture()
def hub(server):
    return HubEmulator(server), server.url("/hf")


def _hub_get(hub_endpoint, tmp_path, path="f.bin", revision=REV, **kw):
    kw.setdefault("progress", False)
    return hf.download(hf.HubFile(REPO, path, revision), tmp_path / path.rsplit("/", 1)[-1], endpoint=hub_endpoint, **kw)


def test_hub_download_is_verified_by_the_lfs_etag(hub, server, tmp_path):
    emu, endpoint = hub
    emu.add_file(REPO, REV, "meta/f.bin", PAYLOAD)
    digest = _hub_get(endpoint, tmp_path, "meta/f.bin")
    assert digest == sha256(PAYLOAD) and (tmp_path / "f.bin").read_bytes() == PAYLOAD
    assert _left_in(tmp_path) == ["f.bin"]  # the library's private folder is gone
    assert {r.path for r in server.log} == {f"/hf/datasets/{REPO}/resolve/{REV}/meta/f.bin"}


def test_hub_wrong_bytes_are_a_checksum_error_and_install_nothing(hub, tmp_path):
    emu, endpoint = hub
    emu.add_file(REPO, REV, "f.bin", PAYLOAD, etag_sha="0" * 64)
    with pytest.raises(DataError, match=r"f.bin: checksum mismatch .* nothing was installed"):
        _hub_get(endpoint, tmp_path)
    assert _left_in(tmp_path) == []
    emu.add_file(REPO, REV, "g.bin", PAYLOAD, lfs=False)  # a plain git file: the card's sha256 decides
    with pytest.raises(DataError, match="checksum mismatch"):
        _hub_get(endpoint, tmp_path, "g.bin", expected_sha256="1" * 64)
    assert _hub_get(endpoint, tmp_path, "g.bin") == sha256(PAYLOAD)


@pytest.mark.parametrize("revision, path, message", [
    ("v9.9", "f.bin", "has no revision 'v9.9' (the card's pinned tag or commit was removed or renamed)"),
    (REV, "nope.bin", "has no file 'nope.bin' at revision 'v1.0'"),
])
def test_hub_missing_revision_or_file_is_one_line(hub, tmp_path, revision, path, message):
    emu, endpoint = hub
    emu.add_file(REPO, REV, "f.bin", PAYLOAD)
    with pytest.raises(DataError) as info:
        _hub_get(endpoint, tmp_path, path, revision=revision)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(f"Hugging Face dataset {REPO} on 127.0.0.1:")
    assert _left_in(tmp_path) == []


def test_hub_size_other_than_the_cards_is_refused_before_the_transfer(hub, server, tmp_path):
    emu, endpoint = hub
    emu.add_file(REPO, REV, "f.bin", PAYLOAD)
    with pytest.raises(DataError, match=f"announces {len(PAYLOAD)} bytes .* card expects 10"):
        _hub_get(endpoint, tmp_path, expected_size=10)
    assert all(r.method == "HEAD" for r in server.log) and _left_in(tmp_path) == []


def test_hub_cut_transfer_is_resumed_with_range(hub, server, tmp_path):
    big = PAYLOAD * 12  # past huggingface_hub's 10 MiB read chunk, so that there is something to resume
    emu, endpoint = hub
    emu.add_file(REPO, REV, "f.bin", big, cut_after=11 * len(PAYLOAD), cuts_left=1)
    assert _hub_get(endpoint, tmp_path) == sha256(big)
    gets = [r for r in server.log if r.method == "GET"]
    assert len(gets) == 2 and gets[1].headers["range"] == f"bytes={10 * 1024 * 1024}-"


def test_hub_unreachable_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=rf"^cannot reach 127.0.0.1:{port} \(no network\?\)"):
        _hub_get(f"http://127.0.0.1:{port}", tmp_path, retries=0)


def test_hub_etag_sha256():
    digest = sha256(PAYLOAD)
    assert hf.etag_sha256(f'"{digest}"') == digest and hf.etag_sha256(f'W/"{digest.upper()}"') == digest
    assert hf.etag_sha256('W/"1-abc"') is None and hf.etag_sha256(None) is None

# --- archives ----------------------------------------------------------------------------------------
def _zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tar(path, members, links=()):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


def test_extracts_good_archives(tmp_path):
    z = _zip(tmp_path / "ok.zip", {"data/a.txt": b"a", "data/sub/b.txt": b"b"})
    assert sorted(archives.extract(z, tmp_path / "z")) == ["data/a.txt", "data/sub/b.txt"]
    assert (tmp_path / "z/data/sub/b.txt").read_bytes() == b"b"
    t = _tar(tmp_path / "ok.tar.gz", {"m/x.ply": b"ply"}, links=[("m/y.ply", "x.ply")])
    archives.extract(t, tmp_path / "t")
    assert (tmp_path / "t/m/y.ply").read_bytes() == b"ply"
    assert archives.extract(z, tmp_path / "f", members=lambda n: n.endswith("b.txt")) == ["data/sub/b.txt"]


@pytest.mark.parametrize("bad", ["../evil.txt", "data/../../evil.txt", "/etc/evil.txt"])
def test_refuses_traversal_in_zip_and_tar(tmp_path, bad):
    for maker, suffix in ((_zip, ".zip"), (_tar, ".tar.gz")):
        arch = maker(tmp_path / f"bad{suffix}", {"data/ok.txt": b"ok", bad: b"evil"})
        dest = tmp_path / f"out{suffix}"
        with pytest.raises(DataError, match="refused"):
            archives.extract(arch, dest)
        assert not any(dest.rglob("*")), "nothing may be written from a refused archive"
    assert not (tmp_path.parent / "evil.txt").exists()


def test_refuses_links_escaping(tmp_path):
    arch = _tar(tmp_path / "link.tar.gz", {"a.txt": b"a"}, links=[("data/passwd", "../../etc/passwd")])
    with pytest.raises(DataError, match="points outside"):
        archives.extract(arch, tmp_path / "out")
    arch = _tar(tmp_path / "abs.tar.gz", {"a.txt": b"a"}, links=[("data/passwd", "/etc/passwd")])
    with pytest.raises(DataError, match="points outside"):
        archives.extract(arch, tmp_path / "out2")


def test_refuses_archive_bombs(tmp_path):
    bomb = _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (8 << 20)})  # 8 MiB of zeros: ratio ≈ 1000:1
    with pytest.raises(DataError, match="refused"):
        archives.extract(bomb, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out/zeros.bin").exists()
    very = _zip(tmp_path / "very.zip", {"z.bin": b"\0" * (20 << 20)})  # ≈ 1000:1, above the 200:1 limit
    with pytest.raises(DataError, match="archive bomb"):
        archives.extract(very, tmp_path / "out2")


def test_not_an_archive(tmp_path):
    (tmp_path / "x.zip").write_text("<html>error page</html>")
    with pytest.raises(DataError, match="not a zip, tar or gzip archive"):
        archives.extract(tmp_path / "x.zip", tmp_path / "out")


# --- lock file -----------------------------------------------------------------------------------------
def test_lockfile_round_trip(tmp_path):
    lock = LockFile(tmp_path / "lock.json")
    assert lock.sha256("a/b") is None
    lock.record("a/b", "0" * 64, 12, "http://x")
    assert LockFile(tmp_path / "lock.json").get("a/b")["size"] == 12
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable download lock file"):
        LockFile(tmp_path / "bad.json").sha256("x")


def test_not_enough_disk_space_is_refused_before_transfer(server, dl, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    server.add_file("/huge.bin", PAYLOAD)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DataError, match="not enough disk space for huge.bin: 1.0 MB to download, 1000 B free"):
        dl.download(server.url("/huge.bin"), tmp_path / "huge.bin")
    assert not (tmp_path / "huge.bin").exists()
