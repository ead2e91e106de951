"""How an answer ended, in words: one definition for the chat, practice, exports and the command line."""

# finish reason (inference.engine.Answer.finish, or the store's "pending" / "error") -> one phrase
FINISH_PHRASES = {
    "cancelled": "stopped",
    "length": "reached the answer length limit",
    "context_full": "the conversation no longer fits the model's context",
    "error": "interrupted by an error",
    "pending": "interrupted (the app stopped while the answer was being written)",
}


def finish_phrase(finish: str) -> str:
    """The phrase for an answer that did not end normally; "" for one that did ("stop")."""
    return FINISH_PHRASES.get(finish, "")


def finish_sentence(finish: str) -> str:
    """The phrase as a sentence ("Reached the answer length limit."); "" for a normal end."""
    phrase = finish_phrase(finish)
    return f"{phrase[0].upper()}{phrase[1:]}." if phrase else ""
