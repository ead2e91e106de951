"""The llama.cpp sampler chain that applies SamplingSettings; used only inside the engine's worker process."""

from __future__ import annotations

import llama_cpp

from .sampling import SamplingSettings


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

    def sample(self, ctx) -> int:
        """Sample from the last logits (the chosen token is accepted into the penalty history)."""
        return llama_cpp.llama_sampler_sample(self.chain, ctx, -1)

    def close(self) -> None:
        if self.chain is not None:
            llama_cpp.llama_sampler_free(self.chain)
            self.chain = None
