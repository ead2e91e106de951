"""Suggested questions for the chat, per modality and language (resources/suggested_questions.json)."""

from __future__ import annotations

import json
from importlib import resources


def suggested_questions(modality: str | None, language: str) -> list[str]:
    data = json.loads(resources.files("resources").joinpath("suggested_questions.json").read_text("utf-8"))
    language = language if language in ("en", "zh") else "en"
    return data.get(modality or "", {}).get(language, []) + data["any"][language]
