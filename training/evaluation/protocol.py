"""The two evaluation protocols: how to decode, and which parser scores the reply.

``official``: the released sampling (`inference.sampling.OFFICIAL`), with the released evaluation's cap on new
tokens (256), and its letter parser, quirks included, so scores compare with the published ones. Sampled
runs are not repeatable by nature; each item gets its own seed (derived from --seed and the item id), so a
resumed or repeated run draws the same way for the same item.

``deterministic``: greedy decoding and the strict parser, which accepts only an unambiguous option: the run
is repeatable and a "right" answer really named the right option.

One known difference for GGUF models: the released code samples through transformers' generate from input
embeddings, so its repetition penalty sees only the generated tokens; the engine's penalty also covers the
prompt (the options' letters included). The reference backend (--reference) samples exactly as released.
"""

from __future__ import annotations

from dataclasses import dataclass

from inference.sampling import OFFICIAL, SamplingSettings

from . import official, strict
from .benchmark import Item

NAMES = ("official", "deterministic")


@dataclass(frozen=True)
class Protocol:
    name: str
    max_new_tokens: int = official.MAX_NEW_TOKENS
    seed: int = 42  # eval.py --seed default

    def __post_init__(self):
        if self.name not in NAMES:
            raise ValueError(f"unknown protocol {self.name!r} (choose {' or '.join(NAMES)})")

    @property
    def greedy(self) -> bool:
        return self.name == "deterministic"

    def item_seed(self, item_id: int) -> int:
        return (self.seed * 1_000_003 + item_id) & 0xFFFFFFFF

    def sampling(self, item_id: int) -> SamplingSettings:
        if self.greedy:
            return SamplingSettings.greedy_decoding(self.max_new_tokens)
        return SamplingSettings(max_new_tokens=self.max_new_tokens, seed=self.item_seed(item_id))  # official

    def settings(self) -> dict:
        """What a resumed run must share with the run it continues."""
        decoding = {"greedy": True} if self.greedy else {
            "temperature": OFFICIAL.temperature, "top_k": OFFICIAL.top_k,
            "repetition_penalty": OFFICIAL.repetition_penalty, "seed": self.seed}
        return {"protocol": self.name, "max_new_tokens": self.max_new_tokens, **decoding}

    def score(self, reply: str, item: Item) -> dict:
        """Both parsers' readings of a reply; `letter`/`correct` are this protocol's."""
        official_letter = official.parse_letter(reply)
        strict_parse = strict.parse(reply, item.options)
        strict_correct = strict_parse.letter is not None and strict_parse.letter == item.answer_label
        official_correct = official.is_correct(official_letter, item.answer_label)
        letter = strict_parse.letter if self.greedy else official_letter
        return {
            "letter": letter, "correct": strict_correct if self.greedy else official_correct,
            "official_letter": official_letter, "official_correct": official_correct,
            "strict_letter": strict_parse.letter, "strict_reason": strict_parse.reason,
            "strict_correct": strict_correct,
        }
