"""Repacked weights kept beside the model, so that an engine load maps them instead of repacking them.

On a CPU, llama.cpp copies each quantized weight of the text model into a layout its kernels read faster
("repacking"). That copy goes into freshly allocated memory at every load: 3.1 GB for a 7B Q4_K_M model, most of
the load's time (README, Performance). Our llama.cpp build
(native/llama-cpp/repacked-weights-cache.patch) writes the repacked weights to a file at the first load and maps
that file at the next ones: nothing is copied, and the pages are shared with the page cache.

The layout depends on the text model, the llama.cpp build and the CPU's features, so the file's name carries a key
of the three (`<model>.repacked-<key>.bin`); a file of another key is stale and is removed when the model loads.
The file is derived from the model alone (no conversation or image goes into it); deleting the model deletes it,
and verifying the model's files does too (the next load writes it again from the verified weights).

`build_key` and `loading_with` run in the engine's worker process, which loads llama.cpp; the rest (the files'
names, sizes and removal) needs no llama.cpp.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from .store.verified import file_identity

ENV = "LLAMA_REPACK_CACHE"  # read by the patched llama.cpp at load
MARK = ".repacked-"
SUFFIX = ".bin"


def _identity(path: Path) -> dict | None:
    """The file's identity (verified.py: what changes whenever its content can have), None when there is none."""
    try:
        return file_identity(path)
    except OSError:
        return None


def build_key() -> str:
    """What the layout depends on besides the model: the llama.cpp build (its version label and library files) and
    the CPU features it uses (llama.cpp's own list)."""
    import llama_cpp

    parts = [llama_cpp.__version__, llama_cpp.llama_print_system_info().decode(errors="replace")]
    for path in sorted((Path(llama_cpp.__file__).parent / "lib").glob("*ggml*")):
        identity = _identity(path)
        parts.append(f"{path.name}:{identity and (identity['size'], identity['mtime_ns'])}")
    return "\n".join(parts)


def weights_path(text_path: Path, text_sha256: str | None, build: str) -> Path:
    """Where the repacked weights of this text model, for this build and CPU, are kept. Without a recorded hash the
    model file's identity stands in for it (any change to the file then makes a new key)."""
    text_path = Path(text_path)
    model = text_sha256 or repr(_identity(text_path))
    key = hashlib.sha256(f"{model}\n{build}".encode()).hexdigest()[:16]
    return text_path.with_name(f"{text_path.stem}{MARK}{key}{SUFFIX}")


def kept_files(folder: Path, stem: str = "") -> list[Path]:
    """Every repacked-weights file in a model folder (of the text model named `stem`, or of any), and any left
    half-written."""
    pattern = f"{glob.escape(stem) if stem else '*'}{MARK}*{SUFFIX}"
    return sorted([*Path(folder).glob(pattern), *Path(folder).glob(pattern + ".*.partial")])


def remove_kept(folder: Path, keep: Path | None = None, stem: str = "") -> int:
    """Delete the folder's repacked-weights files (of the text model named `stem`, or of any; with `keep`, the other
    ones of its text model); returns the bytes freed. A process that has one mapped keeps its pages until it ends."""
    freed = 0
    for path in kept_files(folder, keep.name.split(MARK)[0] if keep is not None else stem):
        if keep is not None and path == keep:
            continue
        with contextlib.suppress(OSError):
            size = path.stat().st_size
            path.unlink()
            freed += size
    return freed


def kept_bytes(folder: Path) -> int:
    total = 0
    for path in kept_files(folder):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


@contextlib.contextmanager
def loading_with(path: Path | None) -> Iterator[dict]:
    """Around a text model's load: tells llama.cpp where its repacked weights are kept (stale ones of the same model
    removed first), and fills the yielded dict with what happened to them: "mapped" (an earlier load's file used),
    "written" (repacked now, and being written for the next load while this one is used), or "not kept" (nothing to
    repack on this CPU, or the folder cannot be written)."""
    outcome: dict = {}
    if path is None:
        yield outcome
        return
    path = Path(path)
    remove_kept(path.parent, keep=path)
    before = _identity(path)
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(path)
    try:
        yield outcome
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
    # llama.cpp writes the file on a thread of its own (the model waits for it when freed): this process's temporary
    # file is there from before the load returns until it is renamed to path, which gives path a new identity
    being_written = _identity(path.with_name(f"{path.name}.{os.getpid()}.partial")) is not None
    after = _identity(path)
    if being_written or (after is not None and after != before):
        outcome["repacked_weights"] = "written"
    else:
        outcome["repacked_weights"] = "not kept" if after is None else "mapped"
