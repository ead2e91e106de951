"""The conversation database's schema: the tables as first created, and one migration step per later version.

`PRAGMA user_version` holds the version a file is at; `migrate` brings it up to SCHEMA_VERSION inside the caller's
transaction, so a failed migration leaves the file as it was.
"""

from __future__ import annotations

import secrets
import sqlite3

SCHEMA_VERSION = 3

_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    study_key TEXT,
    study_info TEXT,
    model TEXT NOT NULL,
    settings TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    changes INTEGER NOT NULL  -- orders by last change: timestamps of quick changes can be equal
);
CREATE INDEX conversations_study ON conversations(study_key);
CREATE TABLE images (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL,
    png BLOB NOT NULL,
    label TEXT NOT NULL,
    PRIMARY KEY (conversation_id, sha256)
);
CREATE TABLE turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a late write for a deleted turn cannot hit another
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    question TEXT NOT NULL,
    image_shas TEXT NOT NULL,
    answer TEXT NOT NULL DEFAULT '',
    finish TEXT NOT NULL DEFAULT 'pending',
    answer_tokens TEXT,
    timings TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    UNIQUE (conversation_id, idx)
);
"""


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Brings the schema from `version` up to SCHEMA_VERSION (one step per version)."""
    if version < 1:
        for statement in _SCHEMA_V1.split(";"):  # not executescript: it would commit the open transaction
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO meta VALUES ('salt', ?)", (secrets.token_hex(32),))
    if version < 2:  # each answer's own sampling settings, and why it ended early
        db.execute("ALTER TABLE turns ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'")
        db.execute("ALTER TABLE turns ADD COLUMN note TEXT NOT NULL DEFAULT ''")
    if version < 3:  # where a study with conversations was opened from, to open it again
        db.execute("CREATE TABLE IF NOT EXISTS study_sources (study_key TEXT PRIMARY KEY, paths TEXT NOT NULL, "
                   "updated TEXT NOT NULL)")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def has_trigram_search() -> bool:
    """Whether this SQLite has FTS5 with the trigram tokenizer (3.34+); without it search uses LIKE."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x, tokenize='trigram')")
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()
    return True
