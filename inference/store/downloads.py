"""Downloads from the Hugging Face Hub: a ready GGUF pair (installed as a model), or a checkpoint to convert here.

Every file is written to ``NAME.part`` and renamed only once whole and verified (SHA-256 for LFS files, the git
blob hash for small ones), so nothing incomplete ever carries a final name. A ``.part`` left by an interrupted
or cancelled download is continued by the next call with an HTTP Range request. A dropped connection or a
server error is retried from where it stopped until no data has arrived for ``stall_timeout_s``; then the
download fails with "no data for N s" and keeps its ``.part`` for the next try.

huggingface_hub provides everything that talks to the Hub: the URL of a file at a revision (``hf_hub_url``),
its size, hash and download location (``get_hf_file_metadata``), the file list of a checkpoint
(``HfApi.list_repo_tree``), its HTTP client (``get_session``) and its error types. ``hf_hub_download`` and
``snapshot_download`` are not used: they write each file to a temporary name of their own and delete it when
the transfer fails, so a second call starts a multi-GB file from zero, and they cannot report a stall or be
cancelled.

Offline by default: the app starts with HF_HUB_OFFLINE=1, which huggingface_hub reads once at import into
``huggingface_hub.constants.HF_HUB_OFFLINE`` and checks before every request it makes. ``hub_online()`` lifts
that flag only while a user-started download runs (and restores it after the last one ends); the environment
variable stays set, so child processes stay offline too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from huggingface_hub import HfApi, RepoFile, get_hf_file_metadata, get_session, hf_hub_url
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, filter_repo_objects, hf_raise_for_status
from huggingface_hub.utils import httpx as hub_http

from inference.cancellation import Cancelled
from inference.sizes import size_text

from .catalogue import CHECKPOINT_PATTERNS, CatalogueEntry
from .gguf_check import ModelFileError
from .models import write_pair_manifest

# progress(done_bytes, total_bytes) over everything one call fetches; status(message) for each stage.
Progress = Callable[[int, int], None]
Status = Callable[[str], None]

POLL_S = 2.0  # longest wait on a silent connection before looking at cancel and the stall clock again
RETRY_WAIT_S = 1.0
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class DownloadError(Exception):
    """A download that cannot complete; the message says which file and why (and whether it can be resumed)."""


@dataclass(frozen=True)
class PairSpec:
    """A text GGUF + mmproj GGUF pair in a Hub repo. Hashes known in advance are checked against the Hub's."""

    repo_id: str
    text_file: str
    mmproj_file: str
    revision: str = "main"
    name: str | None = None
    text_sha256: str | None = None
    mmproj_sha256: str | None = None
    quantization: str | None = None
    mmproj_quantization: str | None = None

    @classmethod
    def from_entry(cls, entry: CatalogueEntry) -> PairSpec:
        if entry.kind != "gguf":
            raise DownloadError(f"{entry.id} is a checkpoint: download it with download_checkpoint and convert it")
        return cls(entry.repo_id, entry.text_file, entry.mmproj_file, entry.revision, entry.name,
                   entry.text_sha256, entry.mmproj_sha256, entry.quantization, entry.mmproj_quantization)


# --- offline by default ------------------------------------------------------------------------------------------

_online_lock = threading.Lock()
_online_users = 0
_saved_flags = (True, True)


@contextlib.contextmanager
def hub_online() -> Iterator[None]:
    """Let huggingface_hub reach the network while the block runs (telemetry stays off)."""
    global _online_users, _saved_flags
    with _online_lock:
        if _online_users == 0:
            _saved_flags = (hub_constants.HF_HUB_OFFLINE, hub_constants.HF_HUB_DISABLE_TELEMETRY)
            hub_constants.HF_HUB_OFFLINE = False
            hub_constants.HF_HUB_DISABLE_TELEMETRY = True
        _online_users += 1
    try:
        yield
    finally:
        with _online_lock:
            _online_users -= 1
            if _online_users == 0:
                hub_constants.HF_HUB_OFFLINE, hub_constants.HF_HUB_DISABLE_TELEMETRY = _saved_flags


# --- public entry points -----------------------------------------------------------------------------------------

def download_pair(
    entry_or_spec: CatalogueEntry | PairSpec,
    dest_folder: str | Path,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    stall_timeout_s: float = 60,
    *,
    status: Status | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """Both files of a GGUF pair into dest_folder, validated and described by a manifest.json (an installed model)."""
    spec = entry_or_spec if isinstance(entry_or_spec, PairSpec) else PairSpec.from_entry(entry_or_spec)
    folder = Path(dest_folder)
    job = _Job(progress, status, cancel, stall_timeout_s, endpoint, token)
    with hub_online():
        job.say(f"asking the Hub about {spec.repo_id}")
        text = job.locate(spec.repo_id, spec.text_file, spec.revision, spec.text_sha256)
        # Both files from the same commit, even if the branch moves between the two requests.
        mmproj = job.locate(spec.repo_id, spec.mmproj_file, text.commit or spec.revision, spec.mmproj_sha256)
        targets = [folder / PurePosixPath(r.path).name for r in (text, mmproj)]
        if targets[0] == targets[1]:
            raise DownloadError(f"{spec.repo_id}: the text model and the projector have the same file name")
        job.total = text.size + mmproj.size
        _check_free_space(folder, job.total - _bytes_present(zip((text, mmproj), targets, strict=True)))
        for remote, target in zip((text, mmproj), targets, strict=True):
            job.fetch(remote, target)
    job.say("checking the model files")
    try:
        write_pair_manifest(
            folder, *targets, name=spec.name or PurePosixPath(spec.text_file).stem,
            hashes=(text.sha256, mmproj.sha256) if text.sha256 and mmproj.sha256 else None,
            quantizations=(spec.quantization, spec.mmproj_quantization)
            if spec.quantization and spec.mmproj_quantization else None,
            source={"repo_id": spec.repo_id, "revision": text.commit or spec.revision,
                    "files": [spec.text_file, spec.mmproj_file]},
        )
    except ModelFileError as exc:
        # Whole and as published, but not a pair the engine can load: keeping them would only fill the disk.
        for target in targets:
            target.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()
        raise DownloadError(f"the files from {spec.repo_id} are not a usable HuatuoGPT-Vision pair: {exc}") from None
    return folder


def download_checkpoint(
    repo_id: str,
    dest: str | Path,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    stall_timeout_s: float = 60,
    *,
    revision: str = "main",
    allow_patterns: tuple[str, ...] | list[str] = CHECKPOINT_PATTERNS,
    status: Status | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> Path:
    """The files of a checkpoint repo that conversion needs (allow_patterns), into dest, resumable and verified."""
    dest = Path(dest)
    job = _Job(progress, status, cancel, stall_timeout_s, endpoint, token)
    with hub_online():
        job.say(f"listing the files of {repo_id}")
        api = HfApi(endpoint=endpoint, token=token)
        listing = job.retrying(
            f"{repo_id} at {revision}",
            lambda: [f for f in api.list_repo_tree(repo_id, revision=revision, recursive=True)
                     if isinstance(f, RepoFile)],
        )
        files = list(filter_repo_objects(listing, allow_patterns=list(allow_patterns), key=lambda f: f.path))
        if not files:
            raise DownloadError(f"{repo_id} at {revision} has no files matching {', '.join(allow_patterns)}")
        if any(".." in PurePosixPath(f.path).parts or f.path.startswith("/") for f in files):
            raise DownloadError(f"{repo_id}: the file list names a path outside the repository")
        remotes = [_Remote(f.path, f.size, f.lfs.sha256 if f.lfs else None, None if f.lfs else f.blob_id,
                           hf_hub_url(repo_id, f.path, revision=revision, endpoint=endpoint), None, None)
                   for f in files]
        targets = [dest / PurePosixPath(r.path) for r in remotes]
        job.total = sum(r.size for r in remotes)
        _check_free_space(dest, job.total - _bytes_present(zip(remotes, targets, strict=True)))
        for remote, target in zip(remotes, targets, strict=True):
            job.fetch(remote, target)
    return dest


# --- one download ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Remote:
    path: str  # inside the repo
    size: int
    sha256: str | None  # LFS files
    git_blob: str | None  # small files kept in git: their blob id is a SHA-1 of "blob <size>\0" + content
    resolve_url: str
    location: str | None  # where the bytes are served (a CDN for LFS files), as last reported
    commit: str | None


class _Checksum:
    """The running hash a remote file is verified with."""

    def __init__(self, remote: _Remote):
        self.remote = remote
        self.reset()

    def reset(self) -> None:
        if self.remote.sha256:
            self.hash = hashlib.sha256()
        else:
            self.hash = hashlib.sha1(f"blob {self.remote.size}\0".encode())  # git's object id, not for security

    def update(self, data: bytes) -> None:
        self.hash.update(data)

    def matches(self) -> bool:
        return self.hash.hexdigest() == (self.remote.sha256 or self.remote.git_blob)


class _Job:
    """Byte accounting, cancel, stall clock and Hub access shared by the files of one call."""

    def __init__(self, progress, status, cancel, stall_timeout_s, endpoint, token):
        self.progress = progress or (lambda done, total: None)
        self.status = status or (lambda message: None)
        self.cancel = cancel or threading.Event()
        self.stall_timeout_s = float(stall_timeout_s)
        self.endpoint = endpoint
        self.token = token
        self.total = 0
        self.done = 0

    def say(self, message: str) -> None:
        self.status(message)

    def advance(self, n: int) -> None:
        self.done += n
        self.progress(self.done, self.total)

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("download cancelled; what was downloaded is kept and the next download continues it")

    def pause(self, seconds: float) -> None:
        if seconds > 0 and self.cancel.wait(seconds):
            self.check_cancel()

    def retrying(self, what: str, call):
        """call() again after connection problems and server errors until the stall timeout runs out."""
        started, problem = time.monotonic(), ""
        while True:
            self.check_cancel()
            try:
                return call()
            except HfHubHTTPError as exc:
                if not _transient(exc):
                    raise DownloadError(_http_message(what, exc)) from None
                problem = _describe(exc)
            except hub_http.TransportError as exc:
                problem = _describe(exc)
            waited = time.monotonic() - started
            if waited >= self.stall_timeout_s:
                raise DownloadError(f"{what}: no answer from the Hub for {self.stall_timeout_s:g} s ({problem})")
            self.pause(min(RETRY_WAIT_S, self.stall_timeout_s - waited))

    def locate(self, repo_id: str, path: str, revision: str, sha256: str | None = None) -> _Remote:
        url = hf_hub_url(repo_id, path, revision=revision, endpoint=self.endpoint)
        meta = self.retrying(f"{repo_id}/{path}", lambda: self._metadata(url))
        etag = (meta.etag or "").lower()
        if meta.size is None:
            raise DownloadError(f"{repo_id}/{path}: the Hub did not report the file's size")
        if len(etag) == 64:  # LFS files: the ETag is the content's SHA-256
            if sha256 and sha256.lower() != etag:
                raise DownloadError(f"{repo_id}/{path} at {revision} is not the file the catalogue names "
                                    f"(SHA-256 {etag[:12]}…, expected {sha256[:12]}…)")
            return _Remote(path, meta.size, etag, None, url, meta.location, meta.commit_hash)
        if sha256:
            return _Remote(path, meta.size, sha256.lower(), None, url, meta.location, meta.commit_hash)
        if len(etag) == 40:
            return _Remote(path, meta.size, None, etag, url, meta.location, meta.commit_hash)
        raise DownloadError(f"{repo_id}/{path}: the Hub reported no checksum, so the download could not be verified")

    def _metadata(self, url: str):
        return get_hf_file_metadata(url, token=self.token, timeout=min(POLL_S * 5, self.stall_timeout_s),
                                    endpoint=self.endpoint)

    def fetch(self, remote: _Remote, final: Path) -> None:
        """remote -> final through final.part, continuing a .part an earlier call left; renamed once verified."""
        if final.is_file() and final.stat().st_size == remote.size:
            self.advance(remote.size)  # only a whole, verified file ever gets the final name
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(final.name + ".part")
        checksum = _Checksum(remote)
        with open(partial, "ab") as out:
            offset = out.tell()
            if offset > remote.size:
                out.truncate(0)
                offset = 0
            if offset:
                self.say(f"continuing {final.name} at {size_text(offset)} of {size_text(remote.size)}")
                _hash_prefix(partial, offset, checksum, self)
            self.advance(offset)
            self._stream(remote, out, offset, checksum, final.name)
        if not checksum.matches():
            partial.unlink()
            raise DownloadError(f"{final.name}: the downloaded data does not match the Hub's checksum "
                                f"({'SHA-256' if remote.sha256 else 'git hash'}); the damaged file was removed, "
                                f"download again")
        os.replace(partial, final)
        self.say(f"{final.name} downloaded and verified")

    def _stream(self, remote: _Remote, out, offset: int, checksum: _Checksum, name: str) -> None:
        size, location = remote.size, remote.location
        last_data, problem = time.monotonic(), ""
        while offset < size:
            self.check_cancel()
            if time.monotonic() - last_data >= self.stall_timeout_s:
                raise DownloadError(
                    f"{name}: no data for {self.stall_timeout_s:g} s ({problem}); stopped at "
                    f"{size_text(offset)} of {size_text(size)}; download again to continue from there")
            try:
                if location is None:  # signed CDN addresses expire: ask again after every interruption
                    location = self._metadata(remote.resolve_url).location
                with get_session().stream("GET", location, headers=self._headers(location, offset),
                                          timeout=min(POLL_S, self.stall_timeout_s)) as response:
                    hf_raise_for_status(response)
                    if offset and response.status_code != 206:  # the server ignored the Range: start over
                        out.seek(0)
                        out.truncate()
                        checksum.reset()
                        self.advance(-offset)
                        offset = 0
                    for chunk in response.iter_bytes():
                        self.check_cancel()
                        if offset + len(chunk) > size:
                            raise DownloadError(f"{name}: the server sent more than the {size:,} bytes it announced")
                        out.write(chunk)
                        checksum.update(chunk)
                        offset += len(chunk)
                        last_data = time.monotonic()
                        self.advance(len(chunk))
                problem = "the connection closed early"
            except HfHubHTTPError as exc:
                if not _transient(exc):
                    raise DownloadError(_http_message(name, exc)) from None
                problem = _describe(exc)
            except hub_http.TransportError as exc:
                problem = _describe(exc)
            if offset < size:
                location = None
                self.pause(min(RETRY_WAIT_S, self.stall_timeout_s - (time.monotonic() - last_data)))

    def _headers(self, url: str, offset: int) -> dict[str, str]:
        # The login token (if any) goes to the Hub only, never to the storage host it redirects to.
        on_hub = _same_origin(url, self.endpoint or hub_constants.ENDPOINT)
        headers = build_hf_headers(token=self.token) if on_hub else {}
        headers["Accept-Encoding"] = "identity"  # sizes and hashes are of the file as stored
        if offset:
            headers["Range"] = f"bytes={offset}-"
        return headers


def _hash_prefix(path: Path, length: int, checksum: _Checksum, job: _Job) -> None:
    """Feed the first length bytes of path (a .part being continued) to the checksum."""
    with open(path, "rb") as f:
        while length:
            job.check_cancel()
            block = f.read(min(length, 8 * 1024 * 1024))
            if not block:
                break
            checksum.update(block)
            length -= len(block)


def _bytes_present(files) -> int:
    """Bytes already on disk of (remote, target) pairs: whole files and .part files to continue."""
    present = 0
    for remote, final in files:
        for path in (final, final.with_name(final.name + ".part")):
            if path.is_file():
                present += min(path.stat().st_size, remote.size)
                break
    return present


def _check_free_space(folder: Path, needed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(f"not enough disk space in {folder}: the download needs {size_text(needed)} more, "
                            f"{size_text(free)} are free")


def _transient(exc: HfHubHTTPError) -> bool:
    response = getattr(exc, "response", None)
    return response is not None and response.status_code in _TRANSIENT_STATUS


def _http_message(what: str, exc: HfHubHTTPError) -> str:
    if isinstance(exc, GatedRepoError):
        return f"{what}: the repository is gated; accept its terms on the Hub and log in (huggingface-cli login)"
    if isinstance(exc, RepositoryNotFoundError):
        return f"{what}: no such repository on the Hub (or it is private)"
    if isinstance(exc, RevisionNotFoundError):
        return f"{what}: the repository has no such revision"
    if isinstance(exc, EntryNotFoundError):
        return f"{what}: no such file in the repository"
    status = getattr(getattr(exc, "response", None), "status_code", "?")
    return f"{what}: the Hub refused the request (HTTP {status}): {str(exc).splitlines()[0]}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, HfHubHTTPError) and getattr(exc, "response", None) is not None:
        return f"HTTP {exc.response.status_code}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
