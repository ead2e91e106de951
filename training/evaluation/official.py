"""The released HuatuoGPT-Vision evaluation, reproduced: its multiple-choice prompt and its answer-letter parser.

Sources (FreedomIntelligence/HuatuoGPT-Vision on GitHub):
- `eval.py`, ``TestDataset.llava_prompt``::

      self.query_prompt = "{}\\n{}\\nAnswer with the option's letter from the given choices directly."
      opt_title = ['A','B','C','D','E','F','G','H','I','J','K']
      if isinstance(da['options'],str):
          da['options'] = ast.literal_eval(da['options'])
      option_str = '\\n'.join(f'{opt}. {ops}' for opt,ops in zip(opt_title,da['options']))
      return self.query_prompt.format(da['question'],option_str)

  and ``bot.gen_kwargs['max_new_tokens'] = args.max_new_tokens`` with ``--max_new_tokens`` default 256.
- `cli.py`, ``HuatuoChatbot``: ``input_moderation`` removes ``<image>``, ``<s>``, ``</s>``; one ``<image>\\n``
  is put before the text per image (at most 6 images, the rest dropped); the whole user text is ``.strip()``-ed;
  sampling ``do_sample=True, temperature=.2, repetition_penalty=1.2`` (top-k: transformers' default), which
  ``inference.sampling.OFFICIAL`` holds;
  the reply is ``tokenizer.decode(..., skip_special_tokens=True).strip()``.
- `scorer.py`, ``match_choice3`` and ``test_choice_llava``::

      matches = list(re.finditer(
          r"(is |是|\\*|\\W|\\ |\\(|为|^|'|\\"|#)(?![aA] )([abcdefghijklmnABCDEFGHIJKLMN])(\\W|$)", text, re.S))
      if matches:
          ans = matches[0].group(2)
          return ans,1

  the answer text is turned into its letter (``opt_title[da['options'].index(da['answer'])]``), an answer of
  ``'?'`` counts as wrong, and a reply is right when ``ans[0] == da['answer']``.

Quirks kept on purpose, so that scores mean what the published ones mean:
- The first single letter A–N standing alone anywhere in the reply wins: "I think B" parses as "I" (wrong),
  "The answer is C" as "C", "答案是D" as "D" (是 is a word character, so it is listed explicitly).
- A letter "a"/"A" followed by a space is skipped (it reads as the article): "A lung" finds no letter at "A".
- Letters are kept as written and compared case-sensitively: a reply "c" is wrong even when C is right.
- Letters beyond the options (up to N) are accepted by the regex and simply count as wrong.
- The options beyond the 11th (K) are silently left out of the prompt.
- When the regex finds nothing, the released scorer's fallbacks (option text, then difflib similarity) are
  handed the whole record instead of the option mapping (``match_choice3(da['model_output'], da)``); the
  record holds a list, so ``.lower()`` raises, ``test_choice_llava`` turns that into ``assert False`` and the
  whole scoring run aborts. Here such a reply is counted wrong and reported as *unscorable*, so a run is
  never lost, and the count shows how far a run strays from what the released scorer could score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from inference import prompt

OPTION_LETTERS = prompt.MC_OPTION_LETTERS  # opt_title: the prompt shows at most 11 options
MAX_IMAGES = prompt.MAX_IMAGES_PER_CONVERSATION  # HuatuoChatbot.max_image_num
MAX_NEW_TOKENS = 256  # eval.py --max_new_tokens default
LETTER_PATTERN = re.compile(r"(is |是|\*|\W|\ |\(|为|^|'|\"|#)(?![aA] )([abcdefghijklmnABCDEFGHIJKLMN])(\W|$)", re.S)
_MODERATED = ("<image>", "<s>", "</s>")


def query(question: str, options: Sequence[str]) -> str:
    """llava_prompt: the question, one "X. option" line per option (at most 11), the instruction."""
    return prompt.multiple_choice(question, options)


def user_text(question: str, options: Sequence[str], n_images: int) -> str:
    """The text of the user turn exactly as the released chatbot sends it (after moderation and strip).

    The chatbot strips the whole turn *after* prepending the image markers, so with images only trailing
    whitespace goes; the image markers themselves are added by the prompt format."""
    text = query(question, options)
    for banned in _MODERATED:
        text = text.replace(banned, "")
    return text.rstrip() if n_images else text.strip()


def parse_letter(reply: str) -> str | None:
    """match_choice3's first stage: the letter as written, or None where the released scorer would fail."""
    match = LETTER_PATTERN.search(reply)  # the leftmost match, as matches[0] of finditer
    return match.group(2) if match else None


def is_correct(letter: str | None, answer_label: str | None) -> bool:
    """``ans[0] == da['answer']``: exact, case-sensitive; an unknown answer ('?') is never right."""
    return letter is not None and answer_label is not None and letter == answer_label
