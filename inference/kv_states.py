"""Saved KV-cache states: a conversation prefix processed once is restored, not recomputed, after switching
conversations or restarting the app.

A state is llama.cpp's per-sequence state (the KV cells) of an exact prefix: the model files (their recorded
hashes), the llama.cpp build and the prefix's units (token ids and image hashes) make its key, so another model,
another build, a changed image or an edited turn can never match. Files live in one folder of the private data
folder, 0600, bounded in total size (least recently used go first). They are derived from patient images: every
removal overwrites the file before unlinking it. A damaged or foreign file is skipped, said on stderr, and removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"HUATUO-KV-STATE\x01"
SUFFIX = ".kvstate"
DEFAULT_LIMIT_BYTES = 2 * 1024**3
_HEADER_MAX = 1 << 20


@dataclass(frozen=True)
class Saved:
    units: list  # ints (token ids) and str "image:<sha256>"
    ends: list[int]  # the position after each unit
    blob: bytearray  # llama.cpp's sequence state
    cells: list[int]  # the KV cells in use after each unit (an M-RoPE image takes more cells than positions)


def encode_unit(unit) -> int | str:
    return unit if isinstance(unit, int) else f"image:{unit}"


class StateStore:
    def __init__(self, folder: str | Path, model_key: str, build: str, limit_bytes: int = DEFAULT_LIMIT_BYTES):
        self.folder = Path(folder)
        self.model_key, self.build, self.limit_bytes = model_key, build, limit_bytes
        self._index: dict[int, set[str]] = {}  # prefix length -> keys saved with that length (any model's)
        with contextlib.suppress(OSError):
            for path in self.folder.glob(f"*{SUFFIX}"):
                key, _, n = path.stem.partition("-")
                if n.isdigit():
                    self._index.setdefault(int(n), set()).add(key)

    # --- keys ------------------------------------------------------------------------------------
    def _keys(self, units: list, lengths: set[int]) -> dict[int, str]:
        """The key of each prefix units[:n], n in lengths, in one pass."""
        digest = hashlib.sha256(f"{self.model_key}\n{self.build}\n".encode())
        keys = {}
        if 0 in lengths:
            keys[0] = digest.hexdigest()
        for i, unit in enumerate(units, 1):
            digest.update(struct.pack("<q", unit) if isinstance(unit, int) else b"i" + unit.encode())
            if i in lengths:
                keys[i] = digest.copy().hexdigest()
        return keys

    def _path(self, key: str, n: int) -> Path:
        return self.folder / f"{key}-{n}{SUFFIX}"

    def has(self, units: list) -> bool:
        key = self._keys(units, {len(units)})[len(units)]
        return key in self._index.get(len(units), ())

    # --- restore ---------------------------------------------------------------------------------
    def find(self, units: list, longer_than: int, at_most: int) -> tuple[int, Path] | None:
        """The longest saved prefix of units with longer_than < length <= at_most."""
        lengths = {n for n in self._index if longer_than < n <= min(at_most, len(units))}
        if not lengths:
            return None
        keys = self._keys(units, lengths)
        for n in sorted(lengths, reverse=True):
            if keys[n] in self._index[n]:
                return n, self._path(keys[n], n)
        return None

    def load(self, path: Path, units: list) -> Saved | None:
        """The state in path if it is whole and is exactly the prefix `units` of this model and build."""
        try:
            with open(path, "rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    raise ValueError("not a saved state")
                (size,) = struct.unpack("<I", f.read(4))
                if size > _HEADER_MAX:
                    raise ValueError("damaged header")
                header = json.loads(f.read(size))
                blob = bytearray(f.read())
        except FileNotFoundError:
            self._forget_name(path)
            return None
        except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
            self.discard(path, f"unreadable ({exc})")
            return None
        wanted = [encode_unit(u) for u in units]
        problem = (
            "another model or llama.cpp build" if (header.get("model"), header.get("build")) != (self.model_key,
                                                                                                   self.build)
            else "another prefix" if header.get("units") != wanted
            else "wrong positions" if not isinstance(header.get("ends"), list) or len(header["ends"]) != len(wanted)
            or not isinstance(header.get("cells", []), list) or len(header.get("cells", header["ends"])) != len(wanted)
            else "truncated or damaged" if len(blob) != header.get("blob_bytes")
            or hashlib.sha256(blob).hexdigest() != header.get("blob_sha256")
            else None
        )
        if problem:
            self.discard(path, problem)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        # A state saved without cells is a LLaVA model's, where every position is one cell.
        cells = [int(c) for c in header.get("cells", header["ends"])]
        return Saved(wanted, [int(e) for e in header["ends"]], blob, cells)

    # --- save ------------------------------------------------------------------------------------
    def save(self, units: list, ends: list[int], blob, cells: list[int] | None = None) -> Path | None:
        """Save the state of the prefix units (a failure, e.g. a full disk, only means it is not saved); cells
        defaults to ends (one cell per position)."""
        n = len(units)
        key = self._keys(units, {n})[n]
        path = self._path(key, n)
        if key in self._index.get(n, ()) and path.exists():
            with contextlib.suppress(OSError):
                os.utime(path)
            return path
        header = json.dumps({"model": self.model_key, "build": self.build, "units": [encode_unit(u) for u in units],
                             "ends": list(ends), "cells": list(ends if cells is None else cells),
                             "blob_bytes": len(blob),
                             "blob_sha256": hashlib.sha256(blob).hexdigest()}).encode()
        if len(header) > _HEADER_MAX or len(blob) + len(header) > self.limit_bytes:
            return None
        partial = path.with_name(path.name + ".part")
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + struct.pack("<I", len(header)) + header)
                f.write(blob)
            os.replace(partial, path)
        except OSError as exc:
            _say(f"a prepared state was not saved: {exc}")
            with contextlib.suppress(OSError):
                partial.unlink()
            return None
        self._index.setdefault(n, set()).add(key)
        self._evict(keep=path)
        return path

    def _evict(self, keep: Path) -> None:
        """Least recently used first, until the folder is within its bound."""
        try:
            files = [(p.stat().st_mtime_ns, p.stat().st_size, p) for p in self.folder.glob(f"*{SUFFIX}")]
        except OSError:
            return
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.limit_bytes:
                break
            if path != keep:
                self.remove(path)
                total -= size

    # --- removal ---------------------------------------------------------------------------------
    def discard(self, path: Path, why: str) -> None:
        _say(f"a saved state was skipped and removed: {why}")
        self.remove(path)

    def remove(self, path: Path) -> None:
        self._forget_name(path)
        remove_file(path)

    def _forget_name(self, path: Path) -> None:
        key, _, n = path.stem.partition("-")
        if n.isdigit():
            self._index.get(int(n), set()).discard(key)


def remove_file(path: Path) -> None:
    """Overwrite, then unlink: the state's bytes do not stay on the disk's free blocks of this file."""
    try:
        size = path.stat().st_size
        with open(path, "r+b") as f:
            block = bytes(1 << 20)
            for _ in range(0, size, len(block)):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        pass
    with contextlib.suppress(OSError):
        path.unlink()


def remove_states_with_images(folder: str | Path, image_shas) -> int:
    """Remove every saved state whose prefix holds one of these images (a deleted conversation's); returns how many."""
    wanted = {f"image:{sha}" for sha in image_shas}
    removed = 0
    for path in Path(folder).glob(f"*{SUFFIX}"):
        try:
            with open(path, "rb") as f:
                if f.read(len(MAGIC)) != MAGIC:
                    raise ValueError
                (size,) = struct.unpack("<I", f.read(4))
                units = json.loads(f.read(min(size, _HEADER_MAX))).get("units", [])
        except (OSError, ValueError, struct.error, UnicodeDecodeError, AttributeError):
            units = None  # unreadable: it cannot be told apart, so it goes too
        if units is None or wanted.intersection(u for u in units if isinstance(u, str)):
            remove_file(path)
            removed += 1
    return removed


def clear_states(folder: str | Path) -> int:
    """Remove every saved state; returns how many."""
    paths = list(Path(folder).glob(f"*{SUFFIX}")) + list(Path(folder).glob(f"*{SUFFIX}.part"))
    for path in paths:
        remove_file(path)
    return len(paths)


def states_size(folder: str | Path) -> int:
    with contextlib.suppress(OSError):
        return sum(p.stat().st_size for p in Path(folder).glob(f"*{SUFFIX}"))
    return 0


def _say(message: str) -> None:
    print(f"huatuo engine: {message}", file=sys.stderr, flush=True)
