"""The deterministic protocol's parser: it accepts a reply only when it names exactly one option.

Accepted: a bare letter ("B", "(b)", "B."), a leading letter with its option ("B. Lung", "(B) Lung"), an
option letter standing alone in a sentence ("The answer is C.", "答案是D", "选B", "the answer is c"), or the
text of one option without any letter ("Lung", "It is the lung."). Rejected: no option named, two different
letters ("B or C"), a letter whose option text contradicts it ("B. Liver" when Liver is A), two options'
texts, a letter beyond the options. Unlike the released parser, the pronoun "I" and the article "A" never
read as answers, and letters inside an option's own text ("Vitamin D deficiency") are not letters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .official import OPTION_LETTERS

_WIDE = str.maketrans({"（": "(", "）": ")", "：": ":", "，": ",", "。": ".", "【": "[", "】": "]"})
_BARE = re.compile(r"^[(\[]?([A-Ka-k])[)\]]?[.:]?$")
_LEADING = re.compile(r"^(?:\(([A-Ka-k])\)|\[([A-Ka-k])\]|([A-K])[.:)、,])\s*(.*)$", re.S)
_LEADING_SPACE = re.compile(r"^([A-K])\s+(.+)$", re.S)
_STANDALONE = re.compile(r"(?<![A-Za-z0-9\-])([A-K])(?![A-Za-z0-9\-])")
# Lower-case letters count only right after an answer phrase, and only where no word follows ("is a lung").
_PHRASE = re.compile(r"(?:(?i:answer|option|choice)\s*(?:(?i:is)\s*)?:?|答案|选项|选择|选)\s*(?:是|为|:)?\s*"
                     r"[(\[]?([a-k])[)\]]?(?![A-Za-z0-9])(?!\s+[A-Za-z])")
# Words after "A" that show it is a letter, not the article ("A and C", "A is correct").
_LETTER_WORDS = {"and", "or", "nor", "is", "was", "seems", "appears", "would", "because", "vs", "versus"}


@dataclass(frozen=True)
class StrictParse:
    letter: str | None
    reason: str  # bare letter | leading letter | letter | option text | ambiguous: … | no option | …


def parse(reply: str, options: Sequence[str]) -> StrictParse:
    options = list(options[:len(OPTION_LETTERS)])
    letters = OPTION_LETTERS[:len(options)]
    text = reply.translate(_WIDE).replace("**", "").replace("`", "").strip()
    if not text:
        return StrictParse(None, "empty reply")
    if m := _BARE.match(text):
        return _within(m.group(1).upper(), letters, "bare letter")

    leading, rest = None, text
    if m := _LEADING.match(text):
        leading, rest = next(g for g in m.groups()[:3] if g).upper(), m.group(4)
        named = _options_named(rest, options)
        if named and letters.find(leading) not in named:
            return StrictParse(None, f"ambiguous: {leading} with the text of {_names(named)}")
    elif (m := _LEADING_SPACE.match(text)) and _same(m.group(2), options, letters.find(m.group(1))):
        leading, rest = m.group(1), m.group(2)

    found = _letters_in(rest, options)
    if leading:
        found.add(leading)
    if len(found) > 1:
        return StrictParse(None, f"ambiguous: {', '.join(sorted(found))}")
    if found:
        return _within(found.pop(), letters, "leading letter" if leading else "letter")
    named = _options_named(text, options)
    if len(named) == 1:
        return StrictParse(letters[named[0]], "option text")
    if named:
        return StrictParse(None, f"ambiguous: {_names(named)}")
    return StrictParse(None, "no option")


def _letters_in(text: str, options: list[str]) -> set[str]:
    """Option letters standing alone in the text, outside the options' own words."""
    inside = [m.span() for option in options if len(option.strip()) > 1
              for m in re.finditer(re.escape(option.strip()), text, re.I)]
    found = set()
    for m in _STANDALONE.finditer(text):
        if any(a <= m.start() < b for a, b in inside):
            continue
        following = re.match(r"\s*([A-Za-z']+)", text[m.end():])
        word = following.group(1) if following else ""
        if m.group(1) == "A" and word[:1].islower() and word not in _LETTER_WORDS:  # the article
            continue
        if m.group(1) == "I" and (word[:1].islower() or word.startswith("'")):  # the pronoun
            continue
        found.add(m.group(1))
    found.update(m.group(1).upper() for m in _PHRASE.finditer(text)
                 if not any(a <= m.start(1) < b for a, b in inside))
    return found


def _within(letter: str, letters: str, reason: str) -> StrictParse:
    return StrictParse(letter, reason) if letter in letters else StrictParse(None, f"no option {letter}")


def _names(indices: list[int]) -> str:
    return ", ".join(OPTION_LETTERS[i] for i in indices)


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .,:;!?\"'")


def _same(text: str, options: list[str], index: int) -> bool:
    return 0 <= index < len(options) and _norm(text) == _norm(options[index])


def _options_named(text: str, options: list[str]) -> list[int]:
    """Indices of the options whose text the reply contains as whole words; an option found only inside a
    longer named option ("lung" inside "lung cancer") does not count."""
    body = _norm(text)
    if not body:
        return []
    exact = [i for i, o in enumerate(options) if _norm(o) == body]
    if exact:
        return exact
    spans: dict[int, list[tuple[int, int]]] = {}
    for i, option in enumerate(options):
        needle = _norm(option)
        if not needle:
            continue
        pattern = re.escape(needle)
        if needle[0].isascii() and needle[0].isalnum():
            pattern = r"(?<![0-9a-z])" + pattern
        if needle[-1].isascii() and needle[-1].isalnum():
            pattern += r"(?![0-9a-z])"
        if found := [m.span() for m in re.finditer(pattern, body)]:
            spans[i] = found

    def inside_longer(i: int) -> bool:
        return all(any(j != i and b - a > e - s and a <= s and e <= b for j in spans for a, b in spans[j])
                   for s, e in spans[i])

    return [i for i in spans if not inside_longer(i)]
