"""Validated replies stored by the hash of what was asked, so that a rerun sends no request it already paid for.

The key covers the model, the sampling settings, the prompt version and text, and the bytes of every image:
a changed caption, image or prompt is asked again, an unchanged one never is. SQLite keeps each stored reply
across a kill (one commit per reply) and lets the worker threads share one file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path


def cache_key(model: str, params: dict, prompt_version: str, texts: list[str], image_digests: list[str]) -> str:
    payload = json.dumps({"model": model, "params": params, "prompt": prompt_version, "texts": texts,
                          "images": image_digests}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ReplyCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL loses nothing when the process is killed (only on power loss), and spares an
            # fsync per stored reply.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL, "
                "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, created REAL NOT NULL)")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise RuntimeError(f"cannot open the reply cache {path}: {exc}") from exc

    def get(self, key: str) -> tuple[dict, int, int] | None:
        """(reply, prompt tokens, completion tokens) paid for when it was asked, or None."""
        with self._lock:
            row = self._db.execute("SELECT reply, prompt_tokens, completion_tokens FROM replies WHERE key = ?",
                                   (key,)).fetchone()
        if row is None:
            return None
        return json.loads(row[0]), row[1], row[2]

    def contains(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM replies WHERE key = ?", (key,)).fetchone() is not None

    def put(self, key: str, reply: dict, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?)",
                             (key, json.dumps(reply, ensure_ascii=False), prompt_tokens, completion_tokens,
                              time.time()))
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
