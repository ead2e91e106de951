"""Sampling settings with the official semantics (applied in the engine by inference/sampler_chain.py).

The defaults of `SamplingSettings` are the official sampling, defined here once: the released command line
samples with transformers' generate from embeddings, with a repetition penalty over the tokens generated so far
(the prompt is passed as embeddings, so the penalty never sees it), a temperature, transformers' default top-k
and a cap on new tokens. Everything else (the app's settings, the command line, the evaluation protocols, the
texts shown to users) takes these values from `OFFICIAL`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SamplingSettings:
    # The defaults are the released command line's sampling.
    temperature: float = 0.2
    repetition_penalty: float = 1.2
    max_new_tokens: int = 512
    top_k: int = 50  # transformers' default, which the released sampling leaves in place
    greedy: bool = False
    seed: int = 0

    @classmethod
    def greedy_decoding(cls, max_new_tokens: int | None = None) -> SamplingSettings:
        return cls(greedy=True, repetition_penalty=1.0,
                   max_new_tokens=OFFICIAL.max_new_tokens if max_new_tokens is None else max_new_tokens)

    def with_new_seed(self) -> SamplingSettings:
        """The same settings with a newly drawn seed, so that each answer (a regenerated one too) is a sample of its
        own and can be reproduced from the seed recorded with it; greedy decoding has no seed to draw."""
        return self if self.greedy else replace(self, seed=secrets.randbits(32))


OFFICIAL = SamplingSettings()


def describe(settings: SamplingSettings = OFFICIAL) -> str:
    """The settings in words, e.g. for the official ones "temperature 0.2, repetition penalty 1.2, top-k 50,
    at most 512 new tokens"."""
    if settings.greedy:
        return f"greedy, at most {settings.max_new_tokens} new tokens"
    return (f"temperature {settings.temperature:g}, repetition penalty {settings.repetition_penalty:g}, "
            f"top-k {settings.top_k}, at most {settings.max_new_tokens} new tokens")
