"""What the engine is given before the chat's next question, and editing an earlier question.

Editing a question branches the conversation from there: the question is replaced, and its answer and every later
turn are removed from the conversation (the user confirms, told how many). They are not kept as another branch:
a conversation is one line of turns in the store, in exports and in the audit trail. The engine needs no telling:
it keeps the longest prefix its cache shares with the shortened conversation (the earlier turns and their images)
and processes only what follows.

A conversation's title is made from its first question; edited, that question takes the title along, unless the
user has renamed the conversation (its title is then no longer the one the question gives).
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from app.store import StoredConversation, StoredTurn, to_history
from inference.prompt import Turn

TITLE_QUESTION_CHARS = 48  # the most of the question a title holds


def question_title(modality: str | None, question: str) -> str:
    """A new conversation's title: the modality and the question. Titles go into lists and exports: never a
    description or file name (they can carry identifiers)."""
    short = question if len(question) <= TITLE_QUESTION_CHARS else \
        question[:TITLE_QUESTION_CHARS - 1].rstrip() + "…"
    return f"{modality or 'Image'} · {short}"


def title_after_edit(conversation: StoredConversation, turn_id: int, question: str) -> str | None:
    """The title once question `turn_id` reads `question`: a title made from the first question follows it
    (its modality kept); a title the user gave stays. None: the title does not change."""
    if not conversation.turns or conversation.turns[0].id != turn_id:
        return None
    modality = conversation.title.partition(" · ")[0]
    if conversation.title != question_title(modality, conversation.turns[0].question):
        return None  # renamed by the user
    title = question_title(modality, question)
    return title if title != conversation.title else None


def next_question_history(conversation: StoredConversation) -> list[Turn]:
    """The conversation's turns as its next question will send them (see ChatAnswer): a last answer that was
    interrupted is then an earlier turn, with the text it got to."""
    turns = to_history(conversation)
    last = conversation.turns[-1] if conversation.turns else None
    if last is not None and turns[-1].answer is None:
        turns[-1] = Turn(last.question, len(last.image_shas), last.answer)
    return turns


def before_question(conversation: StoredConversation | None, new_images: list[bytes],
                    editing: int | None = None) -> tuple[list[Turn], list[bytes], int]:
    """What comes before the next question: the earlier turns, every image up to it and how many of those belong
    to the question itself. Editing the turn `editing`: the turns before it, and its own images."""
    if conversation is None:
        return [], list(new_images), len(new_images)
    index = next((i for i, t in enumerate(conversation.turns) if t.id == editing), None)
    if index is None:
        turns, own = conversation.turns, list(new_images)
        history = next_question_history(conversation)
    else:
        turns = conversation.turns[:index + 1]
        own = [conversation.images[sha].png for sha in turns[-1].image_shas]
        history = to_history(conversation)[:index]  # every turn before it is answered: none is the last
        turns = turns[:-1]
    images = [conversation.images[sha].png for turn in turns for sha in turn.image_shas]
    return history, images + own, len(own)


def turn_with_id(conversation: StoredConversation | None, turn_id: int) -> StoredTurn | None:
    return next((t for t in conversation.turns if t.id == turn_id), None) if conversation else None


def later_turns(conversation: StoredConversation, turn_id: int) -> int:
    """How many turns come after this one."""
    ids = [t.id for t in conversation.turns]
    return len(ids) - ids.index(turn_id) - 1


def _turns(n: int) -> str:
    return f"{n} later turn" if n == 1 else f"{n} later turns"


def editing_note(conversation: StoredConversation, turn: StoredTurn) -> str:
    position = conversation.turns.index(turn) + 1
    dropped = later_turns(conversation, turn.id)
    removes = f", and removes the {_turns(dropped)}" if dropped else ""
    return (f"Editing question {position} of {len(conversation.turns)}: Send replaces it and its answer{removes}. "
            f"Esc cancels.")


def confirm_branch(parent: QWidget, dropped: int) -> bool:
    """Whether the user goes on with an edit that removes `dropped` later turns (True when there are none)."""
    if dropped == 0:
        return True
    box = QMessageBox(QMessageBox.Icon.Question, "Send the edited question?",
                      f"The conversation goes on from the edited question: the {_turns(dropped)} after it "
                      f"(questions and answers) will be removed.", parent=parent)
    box.setInformativeText("They cannot be brought back. Export the conversation first to keep them.")
    proceed = box.addButton(f"Send and remove {_turns(dropped)}", QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(box.addButton(QMessageBox.StandardButton.Cancel))
    box.exec()
    return box.clickedButton() is proceed
