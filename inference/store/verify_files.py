"""Verify files: a full re-hash of an installed model's files against its manifest, on demand.

Loads trust a file whose identity is unchanged since it was hashed (verified.py), which cannot see damage that
leaves the identity alone (a failing disk, a bit flipped in place). This check reads every byte. A file that
matches is stamped as verified again; one that does not loses its stamp, so every load hashes it and refuses it.
The text model's repacked weights (repacked_weights.py) are removed too, so the next load writes them anew.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inference.cancellation import Cancelled
from inference.repacked_weights import remove_kept
from inference.store.gguf_check import ModelFileError
from inference.store.manifest import Manifest
from inference.store.verified import file_identity, forget_verified, record_verified

CHUNK = 8 * 1024 * 1024

# progress(done_bytes, total_bytes)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FilesCheck:
    folder: Path
    files: tuple[str, ...]  # the files checked, as the manifest names them
    problems: tuple[str, ...]  # one line for each file that does not match its manifest

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_files(folder: str | Path, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> FilesCheck:
    """Hash each file the manifest in folder names and compare it with the manifest. Raises ModelFileError when
    there is no readable manifest, Cancelled when cancel is set (the stamps are then left as they were)."""
    folder = Path(folder)
    try:
        manifest = Manifest.read(folder)
    except FileNotFoundError:
        raise ModelFileError(f"{folder}: no manifest.json (not an installed model folder)") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{folder}/manifest.json is unreadable ({exc})") from None
    entries = list(zip(manifest.paths(folder), (manifest.text, manifest.mmproj), strict=True))
    sizes = {}
    for path, _ in entries:
        try:
            sizes[path] = path.stat().st_size
        except OSError:
            sizes[path] = 0
    total, done = sum(sizes.values()), 0
    report = progress or (lambda done, total: None)
    report(0, total)
    outcomes: list[tuple[Path, str, str | None, dict | None]] = []  # path, its hash in the manifest, problem, identity
    for path, entry in entries:
        try:
            identity = file_identity(path)
            if identity["size"] != entry.size_bytes:
                raise _Mismatch(f"{entry.file}: {identity['size']:,} bytes, the manifest says {entry.size_bytes:,}")
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(CHUNK):
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("verifying the files was cancelled")
                    digest.update(block)
                    done += len(block)
                    report(done, total)
            if digest.hexdigest() != entry.sha256:
                raise _Mismatch(f"{entry.file}: its SHA-256 does not match the manifest (the file was changed or "
                                "damaged)")
            outcomes.append((path, entry.sha256, None, identity))
        except FileNotFoundError:
            outcomes.append((path, entry.sha256, f"{entry.file} is missing", None))
        except _Mismatch as exc:
            outcomes.append((path, entry.sha256, str(exc), None))
        except OSError as exc:
            outcomes.append((path, entry.sha256, f"{entry.file} cannot be read ({exc.strerror or exc})", None))
        done = sum(sizes[checked] for checked, *_ in outcomes)  # a file that stopped early counts as read
        report(done, total)
    for path, sha256, problem, identity in outcomes:  # only a whole check changes the stamps
        if problem is None and file_identity(path) == identity:  # not written to while it was read
            record_verified(folder, path, sha256, identity)
        elif problem is not None:
            forget_verified(folder, path)
    problems = tuple(problem for _, _, problem, _ in outcomes if problem)
    remove_kept(folder)  # derived from the weights as they were: the next load derives them from the checked ones
    return FilesCheck(folder, tuple(entry.file for _, entry in entries), problems)


class _Mismatch(Exception):
    pass
