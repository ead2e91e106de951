"""verified.json: which model files were hashed against their manifest, and the file identity they had then.

Hashing a 7B pair reads 5 GB (a 34B pair 22 GB) — seconds to minutes before every first question. A file is
therefore hashed once (when it is converted, downloaded, imported, or on its first load) and its identity is
recorded: size, modification and change times, inode and device. A later load that finds the same identity
trusts the recorded hash; any change (a write, a copy, a touched time) brings the full hash back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

VERIFIED_NAME = "verified.json"
FORMAT_VERSION = 1


def file_identity(path: Path) -> dict:
    """What changes whenever the file's content can have changed (st_ctime_ns moves on every write and every
    change of the times themselves, so restoring an old modification time does not hide a write)."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino,
            "dev": st.st_dev}


def _read(folder: Path) -> dict:
    try:
        data = json.loads((Path(folder) / VERIFIED_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


def is_verified(folder: Path, path: Path, sha256: str) -> bool:
    """True when path was hashed to sha256 and has not changed since (nothing of its content is read)."""
    entry = _read(folder).get(Path(path).name)
    if not isinstance(entry, dict) or entry.get("sha256") != sha256:
        return False
    try:
        identity = file_identity(path)
    except OSError:
        return False
    return all(entry.get(key) == value for key, value in identity.items())


def record_verified(folder: Path, path: Path, sha256: str, identity: dict | None = None) -> None:
    """Remember that path (as it is now, or as `identity` says it was when hashed) has the hash sha256.
    A folder that cannot be written (a read-only share) is left alone: its files are then hashed at each load."""
    folder = Path(folder)
    files = _read(folder)
    try:
        files[Path(path).name] = {"sha256": sha256, **(identity or file_identity(path))}
        target = folder / VERIFIED_NAME
        partial = target.with_name(target.name + ".part")
        partial.write_text(json.dumps({"format": FORMAT_VERSION, "files": files}, indent=1), encoding="utf-8")
        os.replace(partial, target)
    except OSError:
        pass


def forget_verified(folder: Path, path: Path | None = None) -> None:
    """Forget the record of one file (its next load hashes it in full), or with no path the whole record."""
    folder = Path(folder)
    if path is None:
        (folder / VERIFIED_NAME).unlink(missing_ok=True)
        return
    files = _read(folder)
    if files.pop(Path(path).name, None) is None:
        return
    try:
        target = folder / VERIFIED_NAME
        partial = target.with_name(target.name + ".part")
        partial.write_text(json.dumps({"format": FORMAT_VERSION, "files": files}, indent=1), encoding="utf-8")
        os.replace(partial, target)
    except OSError:  # not writable: then nothing could have recorded it as verified either
        pass
