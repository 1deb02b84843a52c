"""A loopback HTTP server (stdlib ``http.server`` in a thread) that answers like the real hosts.

It serves plain files with ``Range`` support and can inject faults (a connection cut half-way,
HTTP 500 for the first N requests, a server that ignores ``Range``). :class:`DriveEmulator`
reproduces Google Drive's response shapes (direct file with ``Content-Disposition``, the
virus-scan confirmation page in its current form and legacy-link variants, the JSON
``downloadUrl`` variant, the quota error page and the ``embeddedfolderview`` folder listing).
:class:`HubEmulator` answers like the Hugging Face Hub's ``resolve`` endpoint (``X-Repo-Commit``,
``X-Linked-Etag`` / ``X-Linked-Size`` for LFS files, ``X-Error-Code: RevisionNotFound`` /
``EntryNotFound`` 404s), the headers huggingface_hub relies on. Nextcloud, Stanford and GitHub raw
are plain files under their own prefix. No test touches the internet: :data:`URL_MAP` rewrites
every real host to this server (gdown through the Drive module's transport adapter,
huggingface_hub through its ``endpoint``).
"""

from __future__ import annotations

import hashlib
import html
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit


@dataclass
class FileRoute:
    """A file served at a path, with optional faults."""

    body: bytes
    headers: Dict[str, str] = field(default_factory=dict)
    content_type: str = "application/octet-stream"
    range_ok: bool = True
    send_length: bool = True
    cut_after: Optional[int] = None  # cut the connection after this many body bytes...
    cuts_left: int = 0  # ...this many times
    fail_first: int = 0  # answer HTTP 500 to this many requests first
    status: int = 200


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]


Handler = Callable[["_RequestHandler", Request], None]


class LoopbackServer:
    """``with LoopbackServer() as srv: srv.add_file("/x.bin", b"...")``; ``srv.base`` is ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self.files: Dict[str, FileRoute] = {}
        self.handlers: Dict[str, Handler] = {}
        self.prefix_handlers: Dict[str, Handler] = {}  # tried when no exact handler or file matches
        self.log: List[Request] = []
        server = self

        class Bound(_RequestHandler):
            owner = server

        self.httpd = _QuietServer(("127.0.0.1", 0), Bound)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add_file(self, path: str, body: bytes, **kw) -> FileRoute:
        route = FileRoute(body=body, **kw)
        self.files[path] = route
        return route

    def add_handler(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    def requests_to(self, path: str) -> List[Request]:
        return [r for r in self.log if r.path == path]

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # a client hanging up mid-transfer is expected
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    owner: LoopbackServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        req = Request(method, parts.path, query, {k.lower(): v for k, v in self.headers.items()})
        self.owner.log.append(req)
        if parts.path in self.owner.handlers:
            self.owner.handlers[parts.path](self, req)
        elif parts.path in self.owner.files:
            self.serve_route(self.owner.files[parts.path], req)
        else:
            prefix = next((p for p in self.owner.prefix_handlers if parts.path.startswith(p)), None)
            if prefix is not None:
                self.owner.prefix_handlers[prefix](self, req)
            else:
                self.send_text(404, "Not Found")

    # --- helpers used by handlers --------------------------------------------------------------
    def send_text(self, status: int, text: str, content_type: str = "text/plain; charset=utf-8", headers: Optional[Dict[str, str]] = None) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def serve_route(self, route: FileRoute, req: Request) -> None:
        if route.fail_first > 0:
            route.fail_first -= 1
            self.send_text(500, "Internal Server Error")
            return
        body = route.body
        start = 0
        status = route.status
        rng = req.headers.get("range")
        if rng and route.range_ok and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        chunk = body[start:]
        self.send_response(status)
        self.send_header("Content-Type", route.content_type)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        if route.range_ok:
            self.send_header("Accept-Ranges", "bytes")
        for k, v in route.headers.items():
            self.send_header(k, v)
        if route.send_length:
            self.send_header("Content-Length", str(len(chunk)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if req.method == "HEAD":
            return
        if route.cut_after is not None and route.cuts_left > 0 and len(chunk) > route.cut_after:
            route.cuts_left -= 1
            self.wfile.write(chunk[: route.cut_after])
            self.wfile.flush()
            self.close_connection = True
            import socket

            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(chunk)


# --- Google Drive ----------------------------------------------------------------------------------
@dataclass
class DriveFile:
    name: str
    body: bytes
    shape: str = "direct"  # direct | redirect | form | legacy | json | quota | private


class DriveEmulator:
    """Google Drive's response shapes under ``/gdrive`` (drive.google.com), ``/usercontent``
    (drive.usercontent.google.com) and ``/docs`` (docs.google.com)."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.files: Dict[str, DriveFile] = {}
        self.folders: Dict[str, Dict[str, str]] = {}  # folder id -> {file id: name}
        self.tokens: Dict[str, str] = {}
        server.add_handler("/gdrive/uc", self._uc)
        server.add_handler("/usercontent/download", self._usercontent)
        server.add_handler("/docs/uc", self._docs_uc)
        server.add_handler("/gdrive/embeddedfolderview", self._folder)

    def add_file(self, file_id: str, name: str, body: bytes, shape: str = "direct") -> None:
        self.files[file_id] = DriveFile(name, body, shape)

    def add_folder(self, folder_id: str, title: str, children: Dict[str, str]) -> None:
        self.folders[folder_id] = {"__title__": title, **children}

    def _send_file(self, handler: _RequestHandler, req: Request, f: DriveFile) -> None:
        route = FileRoute(body=f.body, headers={"Content-Disposition": f'attachment; filename="{f.name}"'})
        handler.serve_route(route, req)

    def _uc(self, handler: _RequestHandler, req: Request) -> None:
        f = self.files.get(req.query.get("id", ""))
        if f is None:
            handler.send_text(404, "<html><title>Google Drive - Page Not Found</title></html>", "text/html; charset=utf-8")
            return
        fid = req.query["id"]
        if f.shape == "direct":
            self._send_file(handler, req, f)
        elif f.shape == "redirect":  # today's Drive: uc → 303 → usercontent, which shows the form
            handler.send_response(303)
            handler.send_header("Location", f"{self.server.base}/usercontent/download?id={fid}&export=download")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        elif f.shape == "form":
            self.tokens[fid] = uuid.uuid4().hex
            page = self.form_page(fid, f)
            handler.send_text(200, page, "text/html; charset=utf-8")
        elif f.shape == "legacy":
            token = "AbCd"
            self.tokens[fid] = token
            page = (
                "<html><head><title>Google Drive - Virus scan warning</title></head><body>"
                f'<a id="uc-download-link" class="goog-inline-block jfk-button" href="/uc?export=download&amp;confirm={token}&amp;id={fid}">Download anyway</a>'
                "</body></html>"
            )
            handler.send_text(200, page, "text/html; charset=utf-8")
        elif f.shape == "json":
            token = "JsOn"
            self.tokens[fid] = token
            url = f"{self.server.base}/usercontent/download?id={fid}&export=download&confirm=t&uuid={token}"
            raw = url.replace("=", "\\u003d").replace("&", "\\u0026")
            handler.send_text(200, f'<html><body><script>var x = {{"downloadUrl":"{raw}"}};</script></body></html>', "text/html; charset=utf-8")
        elif f.shape == "quota":
            page = (
                "<html><head><title>Google Drive - Quota exceeded</title></head><body><div class=\"uc-main\">"
                '<p class="uc-error-caption">Sorry, you can\'t view or download this file at this time.</p>'
                '<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please try accessing the file again later. '
                "If the file you are trying to access is particularly large or is shared with many people, it may take up to 24 hours to be able to view or download the file. "
                "If you still can't access a file after 24 hours, contact your domain administrator.</p></div></body></html>"
            )
            handler.send_text(200, page, "text/html; charset=utf-8")
        else:  # private: a sign-in page
            handler.send_text(200, "<html><head><title>Google Drive: Sign-in</title></head><body><form action=\"https://accounts.google.com/signin\"></form></body></html>", "text/html; charset=utf-8")

    def form_page(self, fid: str, f: DriveFile) -> str:
        """The current "Virus scan warning" page: a form to drive.usercontent.google.com/download."""
        token = self.tokens.setdefault(fid, uuid.uuid4().hex)
        return (
            "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>"
            '<div class="uc-main"><p class="uc-warning-caption">Google Drive can\'t scan this file for viruses.</p>'
            f'<p class="uc-warning-subcaption"><span class="uc-name-size"><a href="/open?id={fid}">{html.escape(f.name)}</a> (1.2G)</span> is too large for Google to scan for viruses. Would you still like to download this file?</p>'
            f'<form id="download-form" action="{self.server.base}/usercontent/download" method="get">'
            '<input type="submit" id="uc-download-link" class="goog-inline-block jfk-button jfk-button-action" value="Download anyway"/>'
            f'<input type="hidden" name="id" value="{fid}"><input type="hidden" name="export" value="download">'
            f'<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="{token}"></form></div></body></html>'
        )

    def _usercontent(self, handler: _RequestHandler, req: Request) -> None:
        fid = req.query.get("id", "")
        f = self.files.get(fid)
        if f is None:
            handler.send_text(404, "<html>not found</html>", "text/html")
        elif req.query.get("confirm") == "t" and req.query.get("uuid") == self.tokens.get(fid):
            self._send_file(handler, req, f)
        elif f.shape in ("redirect", "form"):  # not confirmed yet: the warning page
            handler.send_text(200, self.form_page(fid, f), "text/html; charset=utf-8")
        else:
            handler.send_text(400, "<html>bad request</html>", "text/html")

    def _docs_uc(self, handler: _RequestHandler, req: Request) -> None:
        fid = req.query.get("id", "")
        f = self.files.get(fid)
        if f is None or req.query.get("confirm") != self.tokens.get(fid):
            handler.send_text(400, "<html>bad request</html>", "text/html")
            return
        self._send_file(handler, req, f)

    def _folder(self, handler: _RequestHandler, req: Request) -> None:
        folder = self.folders.get(req.query.get("id", ""))
        if folder is None:
            handler.send_text(404, "<html><title>Not Found</title></html>", "text/html")
            return
        entries = []
        for fid, name in folder.items():
            if fid == "__title__":
                continue
            entries.append(
                f'<div class="flip-entry" id="entry-{fid}" tabindex="0" role="link">'
                f'<div class="flip-entry-info"><a href="https://drive.google.com/file/d/{fid}/view?usp=drive_web" target="_blank">'
                '<div class="flip-entry-visual"><div class="flip-entry-visual-card"><div class="flip-entry-thumb"></div></div></div>'
                f'<div class="flip-entry-list-icon"><div class="drive-sprite-core-zip"></div></div><div class="flip-entry-title">{html.escape(name)}</div>'
                '</a></div><div class="flip-entry-last-modified"><div>Aug 13, 2022</div></div></div>'
            )
        page = f"<!DOCTYPE html><html><head><title>{html.escape(folder['__title__'])}</title></head><body><div class=\"flip-entries\">{''.join(entries)}</div></body></html>"
        handler.send_text(200, page, "text/html; charset=utf-8")


# --- Hugging Face Hub ------------------------------------------------------------------------------
class HubEmulator:
    """``/hf/<datasets/|models: none>/<repo>/resolve/<revision>/<path>`` answered like huggingface.co.

    ``add_file(repo, revision, path, body)`` serves ``body`` with the Hub's headers; ``etag_sha``
    overrides the LFS ETag (a wrong one models a corrupted transfer); ``lfs=False`` gives a plain
    git file (a blob-id ETag, no sha256). Other revisions of a known repo answer 404
    ``RevisionNotFound``, other files ``EntryNotFound``, other repos 401 ``RepoNotFound``.
    """

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.files: Dict[tuple, FileRoute] = {}  # (repo path, revision, file path) -> route
        server.prefix_handlers["/hf/"] = self._resolve

    def add_file(self, repo: str, revision: str, path: str, body: bytes, *, repo_type: str = "dataset", lfs: bool = True,
                 etag_sha: Optional[str] = None, **route) -> FileRoute:
        headers = {"X-Repo-Commit": self.COMMIT, "ETag": f'"{hashlib.sha1(body).hexdigest()}"'}
        if lfs:
            headers.update({"X-Linked-Etag": f'"{etag_sha or sha256(body)}"', "X-Linked-Size": str(len(body))})
        prefix = {"dataset": "datasets/", "model": "", "space": "spaces/"}[repo_type]
        self.files[(prefix + repo, revision, path)] = FileRoute(body=body, headers=headers, **route)
        return self.files[(prefix + repo, revision, path)]

    def _resolve(self, handler: _RequestHandler, req: Request) -> None:
        head, sep, tail = req.path[len("/hf/"):].partition("/resolve/")
        revision, _, path = tail.partition("/")
        route = self.files.get((head, revision, path))
        if sep and route is not None:
            handler.serve_route(route, req)
            return
        known = {(r, v) for r, v, _ in self.files}
        if not sep or head not in {r for r, _ in known}:
            code, status = "RepoNotFound", 401
        elif (head, revision) not in known:
            code, status = "RevisionNotFound", 404
        else:
            code, status = "EntryNotFound", 404
        headers = {"X-Error-Code": code, "X-Error-Message": code}
        if code == "EntryNotFound":
            headers["X-Repo-Commit"] = self.COMMIT
        handler.send_text(status, f'{{"error": "{code}"}}', "application/json", headers=headers)


def url_map(base: str) -> Dict[str, str]:
    """Every real host used by the cards → a prefix on the loopback server."""
    return {
        "https://drive.google.com": base + "/gdrive",
        "https://drive.usercontent.google.com": base + "/usercontent",
        "https://docs.google.com": base + "/docs",
        "https://huggingface.co": base + "/hf",
        "http://graphics.stanford.edu": base + "/stanford",
        "https://graphics.stanford.edu": base + "/stanford",
        "https://nuage.lix.polytechnique.fr": base + "/nextcloud",
        "https://github.com": base + "/github",
        "https://raw.githubusercontent.com": base + "/githubraw",
        "http://modelnet.cs.princeton.edu": base + "/modelnet",
        "https://modelnet.cs.princeton.edu": base + "/modelnet",
        "http://geometry.cs.ucl.ac.uk": base + "/ucl",
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
