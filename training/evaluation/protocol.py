"""The two evaluation protocols: how to decode, and which parser scores the reply.

``official``: the released evaluation's sampling (temperature 0.2, top-k 50, repetition penalty 1.2, at most
256 new tokens) and its letter parser, quirks included, so scores compare with the published ones. Sampled
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

from inference import prompt

from . import official, strict
from .benchmark import Item

NAMES = ("official", "deterministic")
TOP_K = 50  # transformers' default, which the released sampling leaves in place


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

    def sampling(self, item_id: int):
        from inference.sampling import SamplingSettings

        if self.greedy:
            return SamplingSettings.greedy_decoding(self.max_new_tokens)
        return SamplingSettings(temperature=prompt.DEFAULT_TEMPERATURE, top_k=TOP_K,
                                repetition_penalty=prompt.DEFAULT_REPETITION_PENALTY,
                                max_new_tokens=self.max_new_tokens, seed=self.item_seed(item_id))

    def settings(self) -> dict:
        """What a resumed run must share with the run it continues."""
        decoding = {"greedy": True} if self.greedy else {
            "temperature": prompt.DEFAULT_TEMPERATURE, "top_k": TOP_K,
            "repetition_penalty": prompt.DEFAULT_REPETITION_PENALTY, "seed": self.seed}
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
