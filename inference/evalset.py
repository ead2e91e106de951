"""The item format of the HuatuoGPT-Vision evaluation set (FreedomIntelligence/Medical_Multimodal_Evaluation_Data),
read in one place for the evaluation harness (training/evaluation/benchmark.py) and the app's practice decks
(app/practice.py). What each does with an item (which items a benchmark keeps, how a deck shows them) stays
with it.

An item is a JSON object:

- ``question``: the question's text.
- ``options``: the option texts, as a list, as that list's Python literal in a string (the released file has
  some), or as ``{"A": ..., "B": ...}`` (in letter order); absent or empty for an open question.
- ``answer``: the right option's text (or its letter), ``"?"`` where the answer is unknown; for an open
  question, a reference answer.
- ``answer_idx`` (optional): the right option's letter or 0-based index; used instead of ``answer``.
- ``image`` (or ``images``): a path or a list of paths, relative to the file (or to a folder given with it).
- ``dataset`` (or ``source``), ``subset``, ``question_type`` (``"open"`` in the released file).

The right option is the first option equal to the answer (as the released scorer's ``list.index``); where none
is, one equal to it but for case and surrounding spaces, or the option its letter names.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

from .prompt import MC_OPTION_LETTERS

UNKNOWN_ANSWER = "?"


class EvalSetError(ValueError):
    """The file or an item cannot be used; the message names the file and, where it applies, the item."""


@dataclass(frozen=True)
class EvalItem:
    question: str  # as written
    options: tuple[str, ...]  # as written; empty for an open question
    answer: str | None  # as written; None where absent, blank or unknown ("?")
    correct: int | None  # index of the right option; None for an open question or an unknown answer
    images: tuple[str, ...]  # paths as written, relative to the file
    dataset: str | None = None
    subset: str | None = None
    question_type: str | None = None


def read_json(path: Path, label: str) -> tuple[bytes, object]:
    """The file's bytes (for its fingerprint) and its decoded JSON; `label` names the file in messages."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EvalSetError(f"{label}: cannot read the file ({exc.strerror or exc})") from None
    try:
        return raw, json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise EvalSetError(f"{label}: not a text file (UTF-8 JSON is expected)") from None
    except json.JSONDecodeError as exc:
        raise EvalSetError(f"{label}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def parse_item(raw: object, where: str) -> EvalItem:
    """One item; `where` names it in messages (such as "deck.json, item 3")."""
    if not isinstance(raw, dict):
        raise EvalSetError(f"{where}: expected an object with a question, got {type(raw).__name__}")
    question = raw.get("question")
    if not isinstance(question, str) or not question.strip():
        raise EvalSetError(f"{where}: the item has no question")
    options = _options(raw.get("options"), where)
    answer = raw.get("answer")
    answer = None if answer is None or str(answer).strip() in ("", UNKNOWN_ANSWER) else str(answer)
    source = raw.get("dataset") or raw.get("source")
    return EvalItem(
        question=question, options=options, answer=answer,
        correct=_correct(raw.get("answer_idx"), answer, options, where) if options else None,
        images=_images(raw.get("image", raw.get("images")), where),
        dataset=str(source) if source else None, subset=str(raw["subset"]) if raw.get("subset") else None,
        question_type=str(raw["question_type"]) if raw.get("question_type") else None,
    )


def _options(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):  # the list's Python literal, as the released loader accepts
        try:
            value = ast.literal_eval(value) if value.strip() else []
        except (ValueError, SyntaxError):
            raise EvalSetError(f"{where}: \"options\" is text that is not a list") from None
    if isinstance(value, dict):
        value = [value[key] for key in sorted(value)]
    if not isinstance(value, list | tuple) or any(isinstance(o, dict | list) for o in value):
        raise EvalSetError(f"{where}: \"options\" must be a list of answer texts")
    return tuple(str(o) for o in value)


def _correct(key: object, answer: str | None, options: tuple[str, ...], where: str) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        if 0 <= key < len(options):
            return key
        raise EvalSetError(f"{where}: answer_idx {key} is outside its {len(options)} options")
    if isinstance(key, str) and key.strip():
        answer = key.strip()
    if answer is None:
        return None
    if answer in options:
        return options.index(answer)
    folded = answer.strip().casefold()
    same = [i for i, option in enumerate(options) if option.strip().casefold() == folded]
    if same:
        return same[0]
    letter = answer.strip().rstrip(".)").upper()
    if len(letter) == 1 and letter in MC_OPTION_LETTERS[: len(options)]:
        return MC_OPTION_LETTERS.index(letter)
    raise EvalSetError(f"{where}: the answer {answer!r} is not one of its options")


def _images(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise EvalSetError(f"{where}: \"image\" must name a file, or a list of files, relative to the file")
    return tuple(names)
