"""What the conversation store gives back: conversations, their turns and images, as plain records.

They hold no database handle: exports, the transcript and the teaching case read them without the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inference import prompt

FINISHED = ("stop", "length", "cancelled", "context_full")
FINISH_STATES = ("pending", "error", *FINISHED)


@dataclass
class ConversationSummary:
    id: int
    title: str
    study_key: str | None
    created: str
    updated: str
    n_turns: int
    preview: str  # the start of the last question


@dataclass
class StoredImage:
    sha256: str
    png: bytes
    label: str


@dataclass
class StoredTurn:
    id: int
    index: int
    question: str
    image_shas: list[str]
    answer: str
    finish: str  # "pending" (still generating, or interrupted by a crash) | "error" | one of FINISHED
    answer_tokens: list[int] | None
    timings: dict
    created: str
    settings: dict = field(default_factory=dict)  # the sampling this answer was asked with (seed included)
    note: str = ""  # why an answer ended early, in the engine's words (an error's message)


@dataclass
class StoredConversation:
    id: int
    title: str
    study_key: str | None
    study_info: dict | None
    model: dict
    settings: dict
    created: str
    updated: str
    turns: list[StoredTurn] = field(default_factory=list)
    images: dict[str, StoredImage] = field(default_factory=dict)


def model_identity(manifest) -> dict:
    """What a conversation, the audit log and exports record of a model (an inference.store.manifest.Manifest)."""
    return {
        "name": manifest.name,
        "text": {"file": manifest.text.file, "sha256": manifest.text.sha256,
                 "quantization": manifest.text.quantization},
        "mmproj": {"file": manifest.mmproj.file, "sha256": manifest.mmproj.sha256,
                   "quantization": manifest.mmproj.quantization},
    }


def to_history(conv: StoredConversation) -> list[prompt.Turn]:
    """The stored turns as prompt turns, with their token ids, so the engine can continue after a restart.

    A last turn that is still pending (interrupted) or failed comes back unanswered: reset it and ask the engine
    to answer it, or drop it before adding a new question.
    """
    turns = []
    for i, t in enumerate(conv.turns):
        if i == len(conv.turns) - 1 and t.finish in ("pending", "error"):
            turns.append(prompt.Turn(t.question, len(t.image_shas)))
            continue
        tokens = tuple(t.answer_tokens) if t.answer_tokens is not None and t.finish in FINISHED else None
        turns.append(prompt.Turn(t.question, len(t.image_shas), t.answer, tokens))
    return turns
