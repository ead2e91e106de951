"""Counting medical terms in a caption against a lexicon file (one term per line, ``#`` starts a comment).

Latin-script terms match whole words, case-insensitively, longest term first, and also in the plural with a
trailing "s" ("nodules" counts as "nodule"). Terms in Chinese or Japanese script have no word boundaries, so they
match as substrings. Each occurrence counts: "CT ... CT" is two terms.
"""

from __future__ import annotations

import re
from pathlib import Path

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")  # hyphenated words stay one token ("T2-weighted")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class Lexicon:
    def __init__(self, terms: list[str]) -> None:
        self.words: set[tuple[str, ...]] = set()
        cjk: set[str] = set()
        for term in terms:
            if _CJK.search(term):
                cjk.add(term)
            else:
                tokens = tuple(_tokens(term))
                if tokens:
                    self.words.add(tokens)
        self.max_words = max((len(t) for t in self.words), default=0)
        # Longest first, so that "肺结节" is counted once and not also as "肺".
        self._cjk = re.compile("|".join(map(re.escape, sorted(cjk, key=len, reverse=True)))) if cjk else None
        self.size = len(self.words) + len(cjk)

    @classmethod
    def from_file(cls, path: Path) -> Lexicon:
        terms = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                term = line.split("#", 1)[0].strip()
                if term:
                    terms.append(term)
        if not terms:
            raise ValueError(f"the lexicon {path} has no terms")
        return cls(terms)

    def count(self, text: str) -> int:
        return len(self.find(text))

    def find(self, text: str) -> list[str]:
        """The terms found, in order, each occurrence once."""
        found: list[str] = []
        tokens = _tokens(text)
        i = 0
        while i < len(tokens):
            for n in range(min(self.max_words, len(tokens) - i), 0, -1):
                gram = tuple(tokens[i : i + n])
                if gram in self.words or (len(gram[-1]) > 3 and gram[-1].endswith("s")
                                          and gram[:-1] + (gram[-1][:-1],) in self.words):
                    found.append(" ".join(gram))
                    i += n
                    break
            else:
                i += 1
        if self._cjk is not None:
            found.extend(self._cjk.findall(text))
        return found


def _tokens(text: str) -> list[str]:
    # CJK characters are left out of the word tokens: they are matched as substrings instead.
    return _WORD.findall(_CJK.sub(" ", text.lower()))
