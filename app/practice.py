"""Practice mode without Qt: case decks, the model's question for an item, scoring, and saved progress.

A deck is a JSON file of items in the format of the HuatuoGPT-Vision evaluation set (read by
`inference.evalset`): `question`, `image` (paths relative to the deck file), `options` and `answer` (the text
of the correct option) for multiple choice, or only `answer` (a reference) for free text. The file is either
that list of items or an object with `title` and `items`.

`append_case` adds a free-text case to a deck of the user's own (creating it when there is none): its images are
written beside the deck, in a folder named after it.

Progress is kept per deck in `practice.sqlite3` in the data folder, keyed by the SHA-256 of the deck file, so
a moved or renamed deck keeps its progress and an edited deck starts afresh.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from app import privacy
from app.imaging import open_image
from app.paths import data_dir
from inference import evalset
from inference.prompt import MAX_IMAGES_PER_CONVERSATION, MC_OPTION_LETTERS, multiple_choice

LETTERS = MC_OPTION_LETTERS  # the evaluation prompt letters at most 11 options
PROGRESS_NAME = "practice.sqlite3"


class DeckError(Exception):
    """The deck cannot be used; the message names the file and, where it applies, the item."""


@dataclass(frozen=True)
class Item:
    number: int  # 1-based position in the deck, as shown to the trainee
    question: str
    images: tuple[Path, ...]
    options: tuple[str, ...] = ()
    correct: int | None = None  # index of the correct option; None for free text or an unkeyed choice
    reference: str | None = None  # the deck's reference answer (free text), when it has one
    source: str | None = None  # the benchmark or collection the item comes from

    @property
    def is_multiple_choice(self) -> bool:
        return bool(self.options)

    @property
    def auto_scored(self) -> bool:
        return self.correct is not None

    def option_label(self, index: int) -> str:
        return f"{LETTERS[index]}. {self.options[index]}"

    def reference_text(self) -> str | None:
        return self.option_label(self.correct) if self.correct is not None else self.reference


@dataclass(frozen=True)
class Deck:
    path: Path
    title: str
    items: tuple[Item, ...]
    sha256: str  # of the file's bytes: the key of its progress


def sample_deck_path() -> Path:
    """The small built-in deck of drawn, synthetic images."""
    return Path(str(resources.files("resources") / "decks" / "sample_deck.json"))


def load_deck(path: str | Path) -> Deck:
    path = Path(path)
    try:
        raw, data = evalset.read_json(path, path.name)
        title = path.stem.replace("_", " ")
        if isinstance(data, dict):
            title = str(data.get("title") or title)
            data = data.get("items")
        if not isinstance(data, list):
            raise DeckError(f"{path.name}: expected a list of items, or an object with a list under \"items\"")
        if not data:
            raise DeckError(f"{path.name}: the deck has no items")
        items = tuple(_deck_item(entry, number, path) for number, entry in enumerate(data, start=1))
    except evalset.EvalSetError as exc:
        raise DeckError(str(exc)) from None
    return Deck(path, title, items, hashlib.sha256(raw).hexdigest())


def _deck_item(raw: object, number: int, deck_path: Path) -> Item:
    """An evaluation-set item as a deck shows it: its images must be there (at most what the model reads), its
    options few enough to letter; a free-text item's answer is its reference."""
    where = f"{deck_path.name}, item {number}"
    item = evalset.parse_item(raw, where)
    if not item.images:
        raise DeckError(f"{where}: no image (\"image\" names a file, or a list of files, relative to the deck)")
    if len(item.images) > MAX_IMAGES_PER_CONVERSATION:
        raise DeckError(f"{where}: {len(item.images)} images; the model reads at most {MAX_IMAGES_PER_CONVERSATION}")
    images = tuple(deck_path.parent / name for name in item.images)
    for name, full in zip(item.images, images, strict=True):
        if not full.is_file():
            raise DeckError(f"{where}: image not found: {name} (looked for {full})")
    if len(item.options) > len(LETTERS):
        raise DeckError(f"{where}: {len(item.options)} options; at most {len(LETTERS)} can be lettered")
    reference = item.answer.strip() if item.answer is not None and not item.options else None
    return Item(number, item.question.strip(), images, tuple(o.strip() for o in item.options), item.correct,
                reference, item.dataset)


def append_case(deck_path: str | Path, question: str, reference: str, images: list[bytes], *,
                title: str | None = None, source: str = "Teaching cases") -> Deck:
    """Append a free-text case (the question, the reference answer, PNG images) to the deck at `deck_path`, or
    start a deck there. The images go into "<deck name>_images/" beside it, named by their SHA-256. The deck is
    written whole and then renamed over the old one, and read back as practice mode reads it; a deck that cannot
    be read is left as it is (DeckError)."""
    deck_path = Path(deck_path)
    question, reference = question.strip(), reference.strip()
    if not question or not reference:
        raise DeckError(f"{deck_path.name}: a practice case needs a question and a reference answer")
    if not 1 <= len(images) <= MAX_IMAGES_PER_CONVERSATION:
        raise DeckError(f"{deck_path.name}: a practice case has 1 to {MAX_IMAGES_PER_CONVERSATION} images, "
                        f"not {len(images)}")
    data: object = {"title": title or deck_path.stem.replace("_", " "), "items": []}
    if deck_path.exists():
        try:
            data = evalset.read_json(deck_path, deck_path.name)[1]
        except evalset.EvalSetError as exc:
            raise DeckError(str(exc)) from None
    items = data.get("items") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise DeckError(f"{deck_path.name}: expected a list of items, or an object with a list under \"items\"")
    folder = deck_path.parent / f"{deck_path.stem}_images"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        _give_user_mode(folder, privacy.user_folder_mode())
    names = []
    for png in images:
        name = f"{hashlib.sha256(png).hexdigest()[:16]}.png"
        if not (folder / name).exists():
            (folder / name).write_bytes(png)
            _give_user_mode(folder / name, privacy.user_file_mode())
        names.append(f"{folder.name}/{name}")
    items.append({"question": question, "answer": reference, "image": names, "dataset": source})
    _write_atomically(deck_path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    return load_deck(deck_path)


def _write_atomically(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        # The deck's own permissions, or the user's default ones for a new deck (the app's umask keeps what it
        # creates private; a deck is the user's, saved where the user chose).
        _give_user_mode(Path(temporary), path.stat().st_mode & 0o777 if path.exists() else privacy.user_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _give_user_mode(path: Path, mode: int) -> None:
    if os.name == "posix":
        path.chmod(mode)


def build_question(item: Item) -> str:
    """What the model is asked: the evaluation prompt for multiple choice, the question as written otherwise."""
    if not item.is_multiple_choice:
        return item.question
    return multiple_choice(item.question, item.options)


def image_png(path: Path) -> bytes:
    """A deck image as PNG bytes for the model (PNG, JPEG, TIFF or DICOM on disk)."""
    buffer = io.BytesIO()
    open_image(path).save(buffer, format="PNG")
    return buffer.getvalue()


def score_choice(item: Item, choice: int) -> bool | None:
    """Whether the chosen option is the deck's answer; None when the item cannot be scored automatically."""
    return None if item.correct is None else choice == item.correct


def model_choice(item: Item, text: str) -> int | None:
    """The option a model's reply names, read strictly: a reply that is an option's letter alone or followed by
    ".", ")" or ":" ("B", "B. …", "(B) …"), or exactly an option's text. None otherwise: the reply then speaks
    for itself (guessing a letter out of prose, as the evaluation scorer does, misreads replies like "I think")."""
    reply = text.strip()
    match = re.match(r"^\(?([A-Z])(?:$|[.):])", reply)
    if match and LETTERS.index(match.group(1)) < len(item.options):
        return LETTERS.index(match.group(1))
    exact = [i for i, option in enumerate(item.options) if option.casefold() == reply.rstrip(".").casefold()]
    return exact[0] if exact else None


def model_result(item: Item, model_answer: str | None) -> tuple[int | None, bool | None]:
    """The option the model's saved reply picks (None: no reply, or one that names no option) and whether it is
    the deck's answer (None where that cannot be scored: free text, an unkeyed choice, no reply)."""
    if not item.is_multiple_choice or not (model_answer or "").strip():
        return None, None
    choice = model_choice(item, model_answer)
    if item.correct is None:
        return choice, None
    return choice, choice == item.correct  # a reply that names no option is not the deck's answer


@dataclass(frozen=True)
class Attempt:
    number: int
    answer: str  # the trainee's own read, or the chosen option ("B. text")
    choice: int | None
    correct: bool | None  # scored (multiple choice) or self-marked; None until marked
    self_marked: bool
    seconds: float | None  # from showing the item to revealing the model's answer
    answered_at: str  # UTC ISO time
    model_answer: str | None


@dataclass(frozen=True)
class Summary:
    total: int
    answered: int
    correct: int
    scored: int  # answered multiple-choice items with a known answer
    scored_correct: int
    marked_right: int
    marked_wrong: int
    unmarked: int
    # The model on the same scored cases: those with its reply saved, how many it got right, how many replies
    # named no option (counted as not right).
    model_scored: int = 0
    model_correct: int = 0
    model_unclear: int = 0

    @property
    def scored_percent(self) -> float | None:
        return 100.0 * self.scored_correct / self.scored if self.scored else None

    @property
    def model_percent(self) -> float | None:
        return 100.0 * self.model_correct / self.model_scored if self.model_scored else None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    deck_sha256 TEXT NOT NULL,
    item INTEGER NOT NULL,
    answer TEXT NOT NULL,
    choice INTEGER,
    correct INTEGER,
    self_marked INTEGER NOT NULL DEFAULT 0,
    seconds REAL,
    answered_at TEXT NOT NULL,
    model_answer TEXT,
    PRIMARY KEY (deck_sha256, item)
);
CREATE TABLE IF NOT EXISTS decks (
    deck_sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    title TEXT NOT NULL,
    opened_at TEXT NOT NULL
);
"""


class Progress:
    """The trainee's answers per deck, in a small SQLite file (WAL: a crash loses at most the last answer)."""

    def __init__(self, path: Path | None = None):
        self.path = path or data_dir() / PROGRESS_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def record(self, deck: Deck, item: Item, answer: str, choice: int | None = None,
               seconds: float | None = None) -> Attempt:
        """Save the trainee's answer to an item (a multiple-choice answer is scored here)."""
        correct = score_choice(item, choice) if choice is not None else None
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO attempts (deck_sha256, item, answer, choice, correct, self_marked, seconds, "
                "answered_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (deck.sha256, item.number, answer, choice, _bool_to_db(correct), seconds, _now()))
        return self.attempts(deck)[item.number]

    def mark(self, deck: Deck, number: int, correct: bool) -> None:
        """The trainee's own judgement of a free-text answer against the reference."""
        with self._db:
            self._db.execute("UPDATE attempts SET correct = ?, self_marked = 1 WHERE deck_sha256 = ? AND item = ?",
                             (int(correct), deck.sha256, number))

    def set_model_answer(self, deck: Deck, number: int, text: str) -> None:
        with self._db:
            self._db.execute("UPDATE attempts SET model_answer = ? WHERE deck_sha256 = ? AND item = ?",
                             (text, deck.sha256, number))

    def attempts(self, deck: Deck) -> dict[int, Attempt]:
        rows = self._db.execute(
            "SELECT item, answer, choice, correct, self_marked, seconds, answered_at, model_answer FROM attempts "
            "WHERE deck_sha256 = ? ORDER BY item", (deck.sha256,))
        return {row[0]: Attempt(row[0], row[1], row[2], None if row[3] is None else bool(row[3]), bool(row[4]),
                                row[5], row[6], row[7]) for row in rows}

    def first_unanswered(self, deck: Deck) -> Item | None:
        done = self.attempts(deck)
        return next((item for item in deck.items if item.number not in done), None)

    def summary(self, deck: Deck) -> Summary:
        done = self.attempts(deck)
        auto = {item.number for item in deck.items if item.auto_scored}
        scored = [a for n, a in done.items() if n in auto]
        marked = [a for n, a in done.items() if n not in auto]
        model = [model_result(deck.items[a.number - 1], a.model_answer) for a in scored if a.model_answer]
        return Summary(
            total=len(deck.items), answered=len(done), correct=sum(bool(a.correct) for a in done.values()),
            scored=len(scored), scored_correct=sum(bool(a.correct) for a in scored),
            marked_right=sum(a.correct is True for a in marked), marked_wrong=sum(a.correct is False for a in marked),
            unmarked=sum(a.correct is None for a in marked),
            model_scored=len(model), model_correct=sum(correct is True for _, correct in model),
            model_unclear=sum(choice is None for choice, _ in model))

    def reset(self, deck: Deck) -> None:
        with self._db:
            self._db.execute("DELETE FROM attempts WHERE deck_sha256 = ?", (deck.sha256,))

    def remember_deck(self, deck: Deck) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO decks (deck_sha256, path, title, opened_at) VALUES (?, ?, ?, ?)",
                             (deck.sha256, str(deck.path.resolve()), deck.title, _now()))

    def recent_decks(self, limit: int = 5) -> list[tuple[Path, str]]:
        """Recently opened decks that are still where they were: (path, title), newest first."""
        rows = self._db.execute("SELECT path, title FROM decks ORDER BY opened_at DESC, rowid DESC")
        found: list[tuple[Path, str]] = []
        for path, title in rows:
            if Path(path).is_file() and all(Path(path) != p for p, _ in found):
                found.append((Path(path), title))
            if len(found) == limit:
                break
        return found


def _bool_to_db(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
