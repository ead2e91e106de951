"""A local imitation of the Hugging Face Hub endpoints that huggingface_hub uses, on 127.0.0.1.

Two real HTTP servers, like the real Hub and its storage: the Hub answers
``HEAD|GET /{repo}/resolve/{revision}/{path}`` (small files directly, with the git blob id as ETag; LFS files
with a 302 to the storage server plus ``X-Repo-Commit``, ``X-Linked-Etag`` (the SHA-256), ``X-Linked-Size``) and
``GET /api/models/{repo}/tree/{revision}?recursive=…`` (the file list, with LFS SHA-256s); the storage server, on
another port, serves ``GET /blobs/{sha256}`` with Range support. Faults are injected per file: a connection that
drops after N bytes (and a server that stays down), a stall, corrupted bytes. Every request is logged.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin")


@dataclass
class HubFile:
    path: str
    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def git_blob(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.content) + self.content).hexdigest()


@dataclass
class Fault:
    drop_after: int | None = None  # close the connection after this many body bytes (the first request only)
    then_down: bool = False  # after the drop, answer 503 to every request until FakeHub.recover()
    stall_after: int | None = None  # send this many bytes, then nothing until the hub stops
    corrupt: bool = False  # flip one byte in the middle of what is sent


@dataclass
class Request:
    server: str  # "hub" | "storage"
    method: str
    path: str
    range: str | None
    sent: int = 0  # body bytes written
    stalled: bool = False  # a Fault.stall_after response, held open
    stall_ended: bool = False  # ... and closed by the server (when the hub stops, or after 30 s)


@dataclass
class FakeHub:
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    commits: dict[str, str] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)  # by file path in the repo
    log: list[Request] = field(default_factory=list)
    down: bool = False
    rate: int | None = None  # storage bytes per second, to make a transfer last long enough to watch
    released: threading.Event = field(default_factory=threading.Event)

    def add_repo(self, repo_id: str, files: dict[str, bytes | Path]) -> str:
        contents = {p: (c.read_bytes() if isinstance(c, Path) else c) for p, c in files.items()}
        self.repos[repo_id] = {p: HubFile(p, c, p.endswith(LFS_SUFFIXES)) for p, c in contents.items()}
        self.commits[repo_id] = hashlib.sha1(repo_id.encode()).hexdigest()
        return self.commits[repo_id]

    def add_folder(self, repo_id: str, folder: Path) -> str:
        return self.add_repo(repo_id, {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
                                       if p.is_file()})

    def recover(self) -> None:
        self.down = False

    def storage_bytes(self, path: str | None = None) -> int:
        """Body bytes the storage server sent (for one file, or in all)."""
        wanted = None if path is None else {f.sha256 for r in self.repos.values() for f in r.values() if f.path == path}
        return sum(r.sent for r in self.log if r.server == "storage"
                   and (wanted is None or r.path.rsplit("/", 1)[-1] in wanted))

    def file(self, path: str) -> HubFile:
        return next(f for r in self.repos.values() for f in r.values() if f.path == path)

    # --- serving ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._servers = {role: ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, role))
                         for role in ("hub", "storage")}
        self._threads = []
        for server in self._servers.values():
            server.daemon_threads = True
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.released.set()  # stalled responses end
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._servers['hub'].server_address[1]}"

    @property
    def storage(self) -> str:
        return f"http://127.0.0.1:{self._servers['storage'].server_address[1]}"


def _handler(hub: FakeHub, role: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
            pass

        def do_HEAD(self):  # noqa: N802
            self._serve(head=True)

        def do_GET(self):  # noqa: N802
            self._serve(head=False)

        def _serve(self, head: bool) -> None:
            request = Request(role, self.command, self.path, self.headers.get("Range"))
            hub.log.append(request)
            path = unquote(urlsplit(self.path).path)
            if role == "storage":
                return self._blob(path, head, request)
            parts = path.strip("/").split("/")
            if parts[:1] == ["api"] and len(parts) >= 6 and parts[1] == "models" and parts[4] == "tree":
                return self._tree("/".join(parts[2:4]), parts[5])
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), head, request)
            self._reply(404, {"X-Error-Code": "EntryNotFound"})

        def _repo(self, repo_id: str, revision: str) -> dict[str, HubFile] | None:
            if repo_id not in hub.repos:
                self._reply(401, {"X-Error-Code": "RepoNotFound"})
                return None
            if revision not in ("main", hub.commits[repo_id]):
                self._reply(404, {"X-Error-Code": "RevisionNotFound"})
                return None
            return hub.repos[repo_id]

        def _tree(self, repo_id: str, revision: str) -> None:
            files = self._repo(repo_id, revision)
            if files is None:
                return
            listing = [{"type": "file", "path": f.path, "size": len(f.content), "oid": f.git_blob,
                        **({"lfs": {"oid": f.sha256, "size": len(f.content), "pointerSize": 134}} if f.lfs else {})}
                       for f in files.values()]
            self._reply(200, {"Content-Type": "application/json"}, json.dumps(listing).encode())

        def _resolve(self, repo_id: str, revision: str, file_path: str, head: bool, request: Request) -> None:
            files = self._repo(repo_id, revision)
            if files is None:
                return
            f = files.get(file_path)
            if f is None:
                return self._reply(404, {"X-Error-Code": "EntryNotFound"})
            headers = {"X-Repo-Commit": hub.commits[repo_id], "ETag": f'"{f.git_blob}"'}
            if f.lfs:
                headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.content)),
                                "Location": f"{hub.storage}/blobs/{f.sha256}"})
                return self._reply(302, headers)
            self._send_file(f, head, request, headers)

        def _blob(self, path: str, head: bool, request: Request) -> None:
            sha = path.rsplit("/", 1)[-1]
            f = next((f for r in hub.repos.values() for f in r.values() if f.sha256 == sha), None)
            if f is None:
                return self._reply(404, {})
            if hub.down:
                return self._reply(503, {})
            self._send_file(f, head, request, {"ETag": f'"{f.sha256}"'})

        def _send_file(self, f: HubFile, head: bool, request: Request, headers: dict) -> None:
            content, start = f.content, 0
            if request.range:
                start = int(request.range.removeprefix("bytes=").split("-")[0])
                headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
            body = content[start:]
            fault = hub.faults.get(f.path) if request.server == "storage" and not head else None
            if fault and fault.corrupt:
                middle = len(body) // 2
                body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1:]
            self.send_response(206 if request.range else 200)
            for key, value in {**headers, "Accept-Ranges": "bytes", "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            if head:
                return
            if fault and fault.drop_after is not None:
                self._write(body[:fault.drop_after], request)
                fault.drop_after = None  # the connection drops once
                hub.down = fault.then_down
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault and fault.stall_after is not None:
                request.stalled = True
                self._write(body[:fault.stall_after], request)
                hub.released.wait(30)
                request.stall_ended = True
                self.close_connection = True
                return
            self._write(body, request)

        def _write(self, data: bytes, request: Request) -> None:
            block = 64 * 1024
            for start in range(0, len(data), block):
                self.wfile.write(data[start:start + block])
                self.wfile.flush()
                request.sent += len(data[start:start + block])
                if hub.rate and request.server == "storage" and hub.released.wait(block / hub.rate):
                    return

        def _reply(self, status: int, headers: dict, body: bytes = b"") -> None:
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler


def gguf_catalogue_model(folder: Path, repo_id: str, name: str = "Tiny", prefix: str = "gguf/") -> dict:
    """The resources/models.json description of a converted model folder published as repo_id/prefix…."""
    from inference.store.gguf_check import check_folder
    from inference.store.manifest import Manifest

    manifest, pair = Manifest.read(folder), check_folder(folder)
    keys = ("architecture", "context_length", "hidden_size", "n_layers", "n_kv_heads", "head_dim", "image_size",
            "image_tokens")
    return {
        "name": name, "base": f"tiny {pair.architecture}", "kind": "gguf", "repo_id": repo_id, "revision": "main",
        "architecture": {key: getattr(pair, key) for key in keys},
        "files": {manifest.text.quantization: {
            "text": {"file": prefix + manifest.text.file, "size_bytes": manifest.text.size_bytes,
                     "sha256": manifest.text.sha256},
            "mmproj": {"file": prefix + manifest.mmproj.file, "size_bytes": manifest.mmproj.size_bytes,
                       "sha256": manifest.mmproj.sha256},
            "mmproj_quantization": manifest.mmproj.quantization}},
    }


def publish(hub: FakeHub, folder: Path, repo_id: str, prefix: str = "gguf/") -> None:
    """Serve a converted model folder's two GGUF files from repo_id."""
    from inference.store.manifest import Manifest

    manifest = Manifest.read(folder)
    hub.add_repo(repo_id, {prefix + m.file: folder / m.file for m in (manifest.text, manifest.mmproj)})


@pytest.fixture
def fake_hub():
    hub = FakeHub()
    hub.start()
    yield hub
    hub.stop()
