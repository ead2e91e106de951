"""Sampling settings and the llama.cpp sampler chain that applies them with the official semantics.

The official command line samples with transformers' generate: repetition penalty 1.2 over every token
seen (prompt included), temperature 0.2, top-k 50 (transformers' default), at most 512 new tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import llama_cpp

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


class SamplerChain:
    """penalties -> top-k -> temperature -> draw (or plain argmax for greedy)."""

    def __init__(self, settings: SamplingSettings, n_vocab: int, n_ctx: int):
        self.chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = lambda sampler: llama_cpp.llama_sampler_chain_add(self.chain, sampler)  # noqa: E731
        if settings.repetition_penalty != 1.0:
            add(llama_cpp.llama_sampler_init_penalties(n_vocab, n_ctx, settings.repetition_penalty, 0.0, 0.0))
        if settings.greedy or settings.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            add(llama_cpp.llama_sampler_init_top_k(settings.top_k))
            add(llama_cpp.llama_sampler_init_temp(settings.temperature))
            add(llama_cpp.llama_sampler_init_dist(settings.seed & 0xFFFFFFFF))

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self.chain, token)

    def sample(self, ctx) -> int:
        """Sample from the last logits (the chosen token is accepted into the penalty history)."""
        return llama_cpp.llama_sampler_sample(self.chain, ctx, -1)

    def close(self) -> None:
        if self.chain is not None:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None
