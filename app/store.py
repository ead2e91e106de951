"""Conversations kept in a local SQLite file: questions, the images exactly as the model saw them, and answers.

A conversation is linked to its study only through a salted hash (`Store.study_key`); identifying data is stored
only when the caller passes it as `study_info`. Where a study with conversations was opened from (its file or
folder paths) is kept per study key, so that opening one of its conversations can open the study again; it is
erased with the study's last conversation. Every write is its own short transaction, so an answer streamed
piece by piece survives a crash up to its last piece. Deleting a conversation erases it from the file
(`secure_delete`, search index rebuilt, `VACUUM`).

The records it gives back are in app/store_records.py, the schema and its migrations in app/store_schema.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .paths import data_dir
from .store_records import (
    FINISH_STATES,
    FINISHED,
    ConversationSummary,
    StoredConversation,
    StoredImage,
    StoredTurn,
    model_identity,
    to_history,
)
from .store_schema import SCHEMA_VERSION, has_trigram_search, migrate

__all__ = ["FINISHED", "FINISH_STATES", "SCHEMA_VERSION", "ConversationSummary", "Store", "StoreError",
           "StoredConversation", "StoredImage", "StoredTurn", "model_identity", "to_history"]


class StoreError(Exception):
    """The conversation database cannot be opened or written; the message names the file and the reason."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            # Autocommit mode: every write below opens and commits its own short transaction.
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the conversation database: {exc}") from exc
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise StoreError(f"{self.path} is not a conversation database (damaged or not SQLite): {exc}") from exc
        except StoreError:
            self._db.close()
            raise

    @classmethod
    def open_default(cls) -> Store:
        path = data_dir() / "conversations.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def open_or_set_aside(cls, path: Path) -> tuple[Store, str | None]:
        """Open the database; one that cannot be opened is renamed (kept whole, for recovery) and a new one
        started, so the app still comes up. Returns the store and, when that happened, what to tell the user."""
        try:
            return cls(path), None
        except StoreError as exc:
            if not path.exists():
                raise
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            aside = path.with_name(f"{path.name}.unreadable-{stamp}")
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    os.replace(f"{path}{suffix}", f"{aside}{suffix}")
            return cls(path), f"{exc}\n\nThe file was kept as {aside.name}; a new conversation database was started."

    def _setup(self) -> None:
        db = self._db
        # Checked before any PRAGMA that would change the file: refuse what is not ours untouched.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer version of the app (schema {version})")
        if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise StoreError(f"{self.path} is an SQLite file of another program, not a conversation database")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA secure_delete=ON")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
        if version < SCHEMA_VERSION:
            with self._write():
                migrate(db, version)
        self._salt = bytes.fromhex(db.execute("SELECT value FROM meta WHERE key = 'salt'").fetchone()[0])
        self._fts = has_trigram_search()
        if self._fts:
            self._ensure_search_index()

    def _ensure_search_index(self) -> None:
        """A trigram full-text index of finished turns: trigrams find any substring of three or more
        characters, Chinese included (the default unicode61 tokenizer does not split Chinese into words)."""
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'turn_index'").fetchone():
            return
        with self._write() as db:
            db.execute("CREATE VIRTUAL TABLE turn_index "
                       "USING fts5(conversation_id UNINDEXED, body, tokenize='trigram')")
            db.execute("INSERT INTO turn_index(rowid, conversation_id, body) SELECT id, conversation_id, "
                       "question || char(10) || answer FROM turns WHERE finish != 'pending'")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; on any error it is rolled back, so earlier data stays as it was."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite may already have rolled back (e.g. when the disk is full)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise StoreError(f"disk full: {self.path}: {exc}; nothing was changed") from exc
            raise StoreError(f"{self.path}: {exc}") from exc

    def study_key(self, identifier: str) -> str:
        """The only link between a conversation and its study: a salted hash of the StudyInstanceUID (or the
        resolved path of a plain image). The salt is random per installation, so the key reveals nothing."""
        return hashlib.sha256(self._salt + identifier.encode()).hexdigest()

    # --- conversations

    def create_conversation(self, title: str, study_key: str | None = None, study_info: dict | None = None,
                            model: dict | None = None, settings: dict | None = None) -> int:
        now = _now()
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO conversations (title, study_key, study_info, model, settings, created, updated, changes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(changes), 0) + 1 FROM conversations))",
                (title, study_key, _json(study_info) if study_info is not None else None, _json(model or {}),
                 _json(settings or {}), now, now))
        return cur.lastrowid

    _SUMMARY = """
        SELECT c.id, c.title, c.study_key, c.created, c.updated,
               (SELECT count(*) FROM turns t WHERE t.conversation_id = c.id),
               coalesce((SELECT question FROM turns t WHERE t.conversation_id = c.id ORDER BY idx DESC LIMIT 1), '')
        FROM conversations c
    """

    def conversations(self, study_key: str | None = None) -> list[ConversationSummary]:
        """Newest first (by last change); only those of one study when study_key is given."""
        if study_key is None:
            rows = self._db.execute(self._SUMMARY + " ORDER BY c.changes DESC")
        else:
            rows = self._db.execute(self._SUMMARY + " WHERE c.study_key = ? ORDER BY c.changes DESC",
                                    (study_key,))
        return [_summary(row) for row in rows]

    def search(self, text: str) -> list[ConversationSummary]:
        """Conversations whose title, questions or answers contain `text` (case-insensitive substring)."""
        text = text.strip()
        if not text:
            return self.conversations()
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matches = ["SELECT id FROM conversations WHERE title LIKE :like ESCAPE '\\'"]
        if self._fts and len(text) >= 3:  # a trigram index finds substrings of three characters or more
            matches.append("SELECT conversation_id FROM turn_index WHERE turn_index MATCH :phrase")
            # Answers still being written (or interrupted) are not in the index yet.
            matches.append("SELECT conversation_id FROM turns WHERE finish = 'pending' "
                           "AND (question LIKE :like ESCAPE '\\' OR answer LIKE :like ESCAPE '\\')")
        else:
            matches.append("SELECT conversation_id FROM turns "
                           "WHERE question LIKE :like ESCAPE '\\' OR answer LIKE :like ESCAPE '\\'")
        query = (self._SUMMARY + " WHERE c.id IN (" + " UNION ".join(matches) + ")"
                 " ORDER BY c.changes DESC")
        rows = self._db.execute(query, {"like": like, "phrase": '"' + text.replace('"', '""') + '"'})
        return [_summary(row) for row in rows]

    def load(self, conversation_id: int) -> StoredConversation:
        row = self._db.execute("SELECT id, title, study_key, study_info, model, settings, created, updated "
                               "FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise KeyError(f"no conversation {conversation_id} in {self.path}")
        conv = StoredConversation(row[0], row[1], row[2], json.loads(row[3]) if row[3] is not None else None,
                                  json.loads(row[4]), json.loads(row[5]), row[6], row[7])
        for t in self._db.execute("SELECT id, idx, question, image_shas, answer, finish, answer_tokens, timings, "
                                  "created, settings, note FROM turns WHERE conversation_id = ? ORDER BY idx",
                                  (conversation_id,)):
            conv.turns.append(StoredTurn(t[0], t[1], t[2], json.loads(t[3]), t[4], t[5],
                                         json.loads(t[6]) if t[6] is not None else None, json.loads(t[7]), t[8],
                                         json.loads(t[9]), t[10]))
        for sha, png, label in self._db.execute(
                "SELECT sha256, png, label FROM images WHERE conversation_id = ?", (conversation_id,)):
            conv.images[sha] = StoredImage(sha, png, label)
        return conv

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        title = title.strip()
        if not title:
            raise ValueError("a conversation's title cannot be empty")
        with self._write() as db:
            if db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)).rowcount == 0:
                raise KeyError(f"no conversation {conversation_id} in {self.path}")

    def delete_conversation(self, conversation_id: int) -> None:
        """Deletes for real: the rows are overwritten (secure_delete), the search index is rebuilt without them,
        and the file is vacuumed and its write-ahead log emptied, so no copy of the text or images remains. The
        study's source paths go with its last conversation."""
        with self._write() as db:
            if self._fts:
                db.execute("DELETE FROM turn_index WHERE conversation_id = ?", (conversation_id,))
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))  # cascades to turns, images
            db.execute("DELETE FROM study_sources WHERE study_key NOT IN "
                       "(SELECT study_key FROM conversations WHERE study_key IS NOT NULL)")
            if self._fts:  # merge the index segments so that deleted entries are dropped, not just marked
                db.execute("INSERT INTO turn_index(turn_index) VALUES ('optimize')")
        self._compact()

    def _compact(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path}: the deleted data could not be erased from the file: {exc}") from exc

    # --- where studies were opened from

    def remember_sources(self, study_key: str, paths: list[str]) -> None:
        """The file(s) or folder(s) the study was opened from, as opened (the latest replaces an earlier one).
        Kept only for a study that has a conversation."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO study_sources (study_key, paths, updated) SELECT ?, ?, ? "
                       "WHERE EXISTS (SELECT 1 FROM conversations WHERE study_key = ?)",
                       (study_key, _json([str(p) for p in paths]), _now(), study_key))

    def sources(self, study_key: str) -> list[str]:
        """Where the study was last opened from; [] when not known (never recorded, or before the app kept it)."""
        row = self._db.execute("SELECT paths FROM study_sources WHERE study_key = ?", (study_key,)).fetchone()
        return json.loads(row[0]) if row else []

    # --- images and turns

    def add_image(self, conversation_id: int, png: bytes, label: str = "") -> str:
        """Stores an image (as the model saw it) once per conversation; returns its sha256."""
        sha = hashlib.sha256(png).hexdigest()
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO images (conversation_id, sha256, png, label) VALUES (?, ?, ?, ?)",
                       (conversation_id, sha, png, label))
        return sha

    def add_turn(self, conversation_id: int, question: str, image_shas: list[str]) -> int:
        with self._write() as db:
            _changed(db, conversation_id)
            known = {r[0] for r in db.execute("SELECT sha256 FROM images WHERE conversation_id = ?",
                                               (conversation_id,))}
            missing = [s for s in image_shas if s not in known]
            if missing:
                raise ValueError(f"images not stored in conversation {conversation_id}: {', '.join(missing)}")
            idx = db.execute("SELECT coalesce(max(idx) + 1, 0) FROM turns WHERE conversation_id = ?",
                             (conversation_id,)).fetchone()[0]
            cur = db.execute("INSERT INTO turns (conversation_id, idx, question, image_shas, created) "
                             "VALUES (?, ?, ?, ?, ?)", (conversation_id, idx, question, _json(image_shas), _now()))
        return cur.lastrowid

    def append_answer(self, turn_id: int, piece: str) -> None:
        """One streamed piece, committed at once so that a crash keeps the answer up to here."""
        with self._write() as db:
            if db.execute("UPDATE turns SET answer = answer || ? WHERE id = ?", (piece, turn_id)).rowcount == 0:
                raise KeyError(f"no turn {turn_id} in {self.path}")

    def record_settings(self, turn_id: int, settings: dict) -> None:
        """The sampling settings (seed included) the turn's answer is being asked with."""
        with self._write() as db:
            if db.execute("UPDATE turns SET settings = ? WHERE id = ?", (_json(settings), turn_id)).rowcount == 0:
                raise KeyError(f"no turn {turn_id} in {self.path}")

    def finish_answer(self, turn_id: int, finish: str, answer_tokens: list[int] | None = None,
                      timings: dict | None = None, text: str | None = None, note: str = "") -> None:
        """How the answer ended; `note` says why when it ended early (an error's message)."""
        if finish not in FINISH_STATES or finish == "pending":
            raise ValueError(f"unknown finish {finish!r}; expected one of {', '.join(FINISH_STATES[1:])}")
        with self._write() as db:
            if text is not None:
                db.execute("UPDATE turns SET answer = ? WHERE id = ?", (text, turn_id))
            db.execute("UPDATE turns SET finish = ?, answer_tokens = ?, timings = ?, note = ? WHERE id = ?",
                       (finish, _json(list(answer_tokens)) if answer_tokens is not None else None,
                        _json(timings or {}), note, turn_id))
            self._touch(db, turn_id)
            self._index(db, turn_id)

    def reset_answer(self, turn_id: int) -> None:
        """Regenerate: the answer starts again, empty and pending."""
        with self._write() as db:
            db.execute("UPDATE turns SET answer = '', finish = 'pending', answer_tokens = NULL, timings = '{}', "
                       "note = '' WHERE id = ?", (turn_id,))
            self._touch(db, turn_id)
            self._index(db, turn_id)

    def edit_question(self, turn_id: int, question: str, title: str | None = None) -> None:
        """Edit and resend: the new question replaces the old one, its answer starts again and every later turn
        of the conversation is deleted (the model will not have seen them), with the images only they used. What
        was deleted is erased from the file as `delete_conversation` erases a conversation. `title`: the
        conversation's new title, where it changes with the question."""
        with self._write() as db:
            dropped = self._delete_after(db, turn_id)
            db.execute("UPDATE turns SET question = ?, answer = '', finish = 'pending', answer_tokens = NULL, "
                       "timings = '{}', note = '' WHERE id = ?", (question, turn_id))
            if title is not None and title.strip():
                db.execute("UPDATE conversations SET title = ? WHERE id = ?",
                           (title.strip(), self._turn(db, turn_id)[0]))
            self._touch(db, turn_id)
            self._index(db, turn_id)
            if dropped:
                self._delete_unused_images(db, self._turn(db, turn_id)[0])
                if self._fts:  # deleted index entries dropped, not just marked
                    db.execute("INSERT INTO turn_index(turn_index) VALUES ('optimize')")
        if dropped:
            self._compact()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- helpers inside a transaction

    def _turn(self, db: sqlite3.Connection, turn_id: int) -> tuple[int, int]:
        row = db.execute("SELECT conversation_id, idx FROM turns WHERE id = ?", (turn_id,)).fetchone()
        if row is None:
            raise KeyError(f"no turn {turn_id} in {self.path}")
        return row

    def _delete_after(self, db: sqlite3.Connection, turn_id: int) -> int:
        """Deletes the turns after this one; returns how many."""
        conversation_id, idx = self._turn(db, turn_id)
        if self._fts:
            db.execute("DELETE FROM turn_index WHERE rowid IN "
                       "(SELECT id FROM turns WHERE conversation_id = ? AND idx > ?)", (conversation_id, idx))
        return db.execute("DELETE FROM turns WHERE conversation_id = ? AND idx > ?", (conversation_id, idx)).rowcount

    @staticmethod
    def _delete_unused_images(db: sqlite3.Connection, conversation_id: int) -> None:
        """The conversation's images that none of its turns uses any more (overwritten: secure_delete)."""
        used = {sha for (shas,) in db.execute("SELECT image_shas FROM turns WHERE conversation_id = ?",
                                               (conversation_id,)) for sha in json.loads(shas)}
        stored = [sha for (sha,) in db.execute("SELECT sha256 FROM images WHERE conversation_id = ?",
                                               (conversation_id,))]
        db.executemany("DELETE FROM images WHERE conversation_id = ? AND sha256 = ?",
                       [(conversation_id, sha) for sha in stored if sha not in used])

    def _touch(self, db: sqlite3.Connection, turn_id: int) -> None:
        _changed(db, self._turn(db, turn_id)[0])

    def _index(self, db: sqlite3.Connection, turn_id: int) -> None:
        """Keeps the search index of one turn current (pending turns are searched directly instead)."""
        if not self._fts:
            return
        db.execute("DELETE FROM turn_index WHERE rowid = ?", (turn_id,))
        db.execute("INSERT INTO turn_index(rowid, conversation_id, body) "
                   "SELECT id, conversation_id, question || char(10) || answer FROM turns "
                   "WHERE id = ? AND finish != 'pending'", (turn_id,))


def _changed(db: sqlite3.Connection, conversation_id: int) -> None:
    """Marks the conversation as changed now (for the newest-first order); KeyError if there is none."""
    if db.execute("UPDATE conversations SET updated = ?, changes = (SELECT max(changes) + 1 FROM conversations) "
                  "WHERE id = ?", (_now(), conversation_id)).rowcount == 0:
        raise KeyError(f"no conversation {conversation_id}")


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _summary(row) -> ConversationSummary:
    return ConversationSummary(row[0], row[1], row[2], row[3], row[4], row[5], row[6][:120])
