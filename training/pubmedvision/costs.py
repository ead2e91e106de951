"""Token estimates for the --dry-run and the cost of tokens at the configured prices."""

from __future__ import annotations

import re

from training.pubmedvision.config import ReformatConfig

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per chat message


def text_tokens(text: str) -> int:
    """About 4 characters a token for Latin script, one token a character for Chinese/Japanese."""
    cjk = len(_CJK.findall(text))
    return cjk + -(-(len(text) - cjk) // 4)


def cost_usd(prompt_tokens: int, completion_tokens: int, settings: ReformatConfig) -> float:
    return (prompt_tokens * settings.price_input_per_mtok + completion_tokens * settings.price_output_per_mtok) / 1e6
