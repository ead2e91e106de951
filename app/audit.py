"""The append-only audit log: one JSON line per question asked, in a hash chain.

Each record says when, on which study (salted hash), with which images (sha256), with which model files
(names and sha256) and settings, a question was answered, and how it ended. It holds hashes only: no question
or answer text and no patient data. Each line carries `prev`, the sha256 of the line before it, so editing,
inserting or deleting an earlier line breaks the chain and `verify` names the line. Deleting a conversation
leaves the log as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .paths import data_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; the app writes from a single process
    fcntl = None

GENESIS = "0" * 64  # `prev` of the first line
FIELDS = ("study_key", "image_sha256", "model", "settings", "question_sha256", "answer_sha256", "finish")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


@dataclass(frozen=True)
class AskedQuestion:
    """What the log will say about a question, fixed when it is asked: the model and settings that answer it are
    those of that moment, whatever changes while the answer is written. The record is written when it ends."""

    study_key: str | None
    image_sha256: tuple[str, ...]
    model: dict
    settings: dict
    question: str  # hashed when the record is written, never stored


class AuditLog:
    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else data_dir() / "audit.jsonl"
        self._lock = threading.Lock()  # one writer at a time in this process (the file lock covers the others)

    def append(self, *, study_key: str | None, image_sha256: list[str], model: dict, settings: dict,
               question_sha256: str, answer_sha256: str, finish: str) -> dict:
        """Adds one record and forces it to disk; returns the record as written."""
        for name, value in [("study_key", study_key), ("question_sha256", question_sha256),
                            ("answer_sha256", answer_sha256), *(("image_sha256", s) for s in image_sha256)]:
            # Hashes only: a text passed here by mistake must never reach the log.
            if not (value is None and name == "study_key") and not _SHA256.fullmatch(str(value)):
                raise ValueError(f"audit field {name} must be a lowercase hex sha256, got {str(value)[:12]!r}…")
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "study_key": study_key,
                  "image_sha256": list(image_sha256), "model": model, "settings": settings,
                  "question_sha256": question_sha256, "answer_sha256": answer_sha256, "finish": finish}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._append_line(record)
        return record

    def _append_line(self, record: dict) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)  # no newline translation
        fd = os.open(self.path, flags, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # two app instances must not fork the chain
            last, complete = self._tail()
            record["prev"] = _line_hash(last) if last is not None else GENESIS
            line = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
            # A line torn by a crash is closed first (verify reports it) rather than glued to this one.
            os.write(fd, (b"" if complete else b"\n") + line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock

    def record_answer(self, asked: AskedQuestion, answer: str, finish: str) -> dict:
        """append() for a question whose answer has ended: the texts are hashed here, so they never reach the log."""
        return self.append(study_key=asked.study_key, image_sha256=list(asked.image_sha256), model=asked.model,
                           settings=asked.settings, question_sha256=sha256_text(asked.question),
                           answer_sha256=sha256_text(answer), finish=finish)

    def _tail(self) -> tuple[bytes | None, bool]:
        """The last line (None for an empty log) and whether the file ends with a newline."""
        with open(self.path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return None, True
            window = 4096
            while True:
                start = max(0, size - window)
                f.seek(start)
                data = f.read()
                complete = data.endswith(b"\n")
                body = data[:-1] if complete else data
                cut = body.rfind(b"\n")
                if cut >= 0 or start == 0:
                    return body[cut + 1:], complete
                window *= 4

    def verify(self) -> tuple[bool, str | None]:
        """(True, None) if every line is intact and chained to the one before; else (False, the first problem)."""
        if not self.path.exists():
            return True, None
        data = self.path.read_bytes()
        if not data:
            return True, None
        lines = data.split(b"\n")
        if lines[-1]:
            return False, f"{self.path}: line {len(lines)} is incomplete (a write was interrupted)"
        prev = GENESIS
        for number, line in enumerate(lines[:-1], start=1):
            try:
                record = json.loads(line)
            except ValueError:
                return False, f"{self.path}: line {number} is not a valid record"
            if not isinstance(record, dict):
                return False, f"{self.path}: line {number} is not a valid record"
            missing = [name for name in ("time", "prev", *FIELDS) if name not in record]
            if missing:
                return False, f"{self.path}: line {number} lacks {', '.join(missing)}"
            if record["prev"] != prev and number == 1:
                return False, f"{self.path}: line 1 does not follow the start of the log (lines were deleted)"
            if record["prev"] != prev:
                return False, (f"{self.path}: line {number} does not follow line {number - 1} "
                               f"(line {number - 1} was changed, or lines were inserted or deleted there)")
            prev = _line_hash(line)
        return True, None
