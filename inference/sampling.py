"""Sampling settings with the official semantics (applied in the engine by inference/sampler_chain.py).

The official command line samples with transformers' generate from embeddings: repetition penalty 1.2 over
the tokens generated so far (the prompt is passed as embeddings, so the penalty never sees it), temperature
0.2, top-k 50 (transformers' default), at most 512 new tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import prompt


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = prompt.DEFAULT_TEMPERATURE
    repetition_penalty: float = prompt.DEFAULT_REPETITION_PENALTY
    max_new_tokens: int = prompt.DEFAULT_MAX_NEW_TOKENS
    top_k: int = 50
    greedy: bool = False
    seed: int = 0

    @classmethod
    def greedy_decoding(cls, max_new_tokens: int = prompt.DEFAULT_MAX_NEW_TOKENS) -> SamplingSettings:
        return cls(greedy=True, repetition_penalty=1.0, max_new_tokens=max_new_tokens)
