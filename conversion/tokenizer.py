"""The reference tokenizer of a checkpoint: what transformers (or SentencePiece) make of a text.

Conversion's verification, training's data pipeline and the evaluation's reference backend all tokenize
through this one function. Needs the ``train`` extra (transformers; sentencepiece for Llama-family models).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from .medical_texts import ALL as TEXTS


def reference_tokenizer(folder: Path, family: str) -> tuple[Callable[[str], list[int]], str, list[str]]:
    """The tokenizer the checkpoint in `folder` was trained with, as (encode, name, notes): transformers' for
    byte-level BPE; for Llama-family models what transformers' slow (legacy) LlamaTokenizer does: split at
    special and added tokens, SentencePiece on each piece of text."""
    if family == "llama":
        import sentencepiece as spm
        from transformers import AutoTokenizer

        folder = Path(folder)
        sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
        tokenizer_json = folder / "tokenizer.json"
        added = json.loads(tokenizer_json.read_text()).get("added_tokens", []) if tokenizer_json.is_file() else []
        special = {t["content"]: t["id"] for t in added}
        special.update({sp.id_to_piece(i): i for i in range(sp.get_piece_size()) if sp.is_control(i)})
        splitter = re.compile("(" + "|".join(map(re.escape, sorted(special, key=len, reverse=True))) + ")")

        def encode(text: str) -> list[int]:
            ids: list[int] = []
            for part in splitter.split(text) if special else [text]:
                if part in special:
                    ids.append(special[part])
                elif part:
                    ids.extend(sp.encode(part))
            return ids

        notes = []
        try:
            fast = AutoTokenizer.from_pretrained(folder)
            deviations = sum(fast(t, add_special_tokens=False).input_ids != encode(t) for t in TEXTS)
            if deviations:
                notes.append(f"transformers' converted fast tokenizer differs from SentencePiece on {deviations} "
                             f"of {len(TEXTS)} texts (leading whitespace); SentencePiece is the reference")
        except Exception as exc:  # the fast conversion is informational only
            notes.append(f"transformers could not build a fast tokenizer: {exc}")
        return encode, "sentencepiece", notes
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    return (lambda text: tok(text, add_special_tokens=False).input_ids), "transformers", []
