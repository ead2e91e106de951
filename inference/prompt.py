"""The HuatuoGPT-Vision prompt format: the one definition that inference, training and evaluation use.

The role tags are plain text, not special tokens, and there is no system prompt. Each image of a user
turn puts ``<image>\\n`` at the start of that turn. No BOS is added; generation stops at the tokenizer's
end-of-text token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

IMAGE_PLACEHOLDER = "<image>"
USER_TAG = "<|user|>\n"
ASSISTANT_TAG = "<|assistant|>\n"
MAX_IMAGES_PER_CONVERSATION = 6  # the limit of the official command line


@dataclass(frozen=True)
class Turn:
    """One exchange: the user's question with the images attached to it, and the answer (None while pending)."""

    question: str
    n_images: int = 0
    answer: str | None = None
    # The answer's token ids as generated, when known: lets the engine keep exactly the KV cache it built
    # instead of re-tokenizing the answer text (which need not give the same ids).
    answer_tokens: tuple[int, ...] | None = None


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return sum(t.n_images for t in self.turns)


def user_turn(question: str, n_images: int = 0, image_marker: str = IMAGE_PLACEHOLDER) -> str:
    return USER_TAG + (image_marker + "\n") * n_images + question + "\n"


def assistant_turn(answer: str) -> str:
    # The official code closes a finished answer with a space before the newline.
    return ASSISTANT_TAG + answer + " \n"


def render(turns: Sequence[Turn], image_marker: str = IMAGE_PLACEHOLDER) -> str:
    """The full prompt text; the last turn is the one to answer, so it must have no answer yet."""
    if not turns:
        raise ValueError("a prompt needs at least one turn")
    if turns[-1].answer is not None:
        raise ValueError("the last turn is already answered")
    parts: list[str] = []
    for turn in turns:
        parts.append(user_turn(turn.question, turn.n_images, image_marker))
        parts.append(assistant_turn(turn.answer) if turn.answer is not None else ASSISTANT_TAG)
    return "".join(parts)


def chat_template(image: str | None = None) -> str:
    """The same format as a Jinja chat template over OpenAI-style messages.

    `image` is the Jinja expression an image part of a user message becomes (inside the loop, the part is
    ``part``): by default the image placeholder; a front end that finds images by their URL in the rendered
    text (llama-cpp-python's Llava15ChatHandler) passes ``"part['image_url']['url']"``."""
    image_line = f"'{IMAGE_PLACEHOLDER}\n'" if image is None else f"{image} + '\n'"
    return (
        "{%- for message in messages -%}"
        "{%- if message['role'] == 'user' -%}"
        "{{- '" + USER_TAG + "' -}}"
        "{%- if message['content'] is string -%}{{- message['content'] + '\n' -}}"
        "{%- else -%}"
        "{%- for part in message['content'] if part['type'] == 'image' or part['type'] == 'image_url' -%}"
        "{{- " + image_line + " -}}{%- endfor -%}"
        "{%- for part in message['content'] if part['type'] == 'text' -%}{{- part['text'] + '\n' -}}{%- endfor -%}"
        "{%- endif -%}"
        "{%- elif message['role'] == 'assistant' -%}"
        "{{- '" + ASSISTANT_TAG + "' + message['content'] + ' \n' -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '" + ASSISTANT_TAG + "' -}}{%- endif -%}"
    )


# Embedded in the text GGUF so that any llama.cpp front end that honours `tokenizer.chat_template` formats
# conversations the way the model was trained.
CHAT_TEMPLATE = chat_template()


# The official evaluation's multiple-choice question (HuatuoGPT-Vision eval.py, TestDataset.llava_prompt):
# the question, one "X. option" line per option (at most 11: its letters end at K), then the instruction.
MC_OPTION_LETTERS = "ABCDEFGHIJK"
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def multiple_choice(question: str, options: Sequence[str]) -> str:
    lines = "\n".join(f"{letter}. {text}" for letter, text in zip(MC_OPTION_LETTERS, options, strict=False))
    return f"{question}\n{lines}\n{MC_INSTRUCTION}"


# --- a model family whose release brings its own chat template (Qwen2.5-VL) ------------------------------
# Qwen2.5-VL's template writes each image as <|vision_start|><|image_pad|><|vision_end|>; transformers expands
# the pad into the image's tokens, llama.cpp puts the image's embeddings at its place instead.
QWEN25VL_IMAGE_TOKEN = "<|image_pad|>"


def render_chat_template(template: str, turns: Sequence[Turn], image_marker: str | None = None,
                         image_token: str = QWEN25VL_IMAGE_TOKEN) -> str:
    """The prompt for `turns` in a release's own (Jinja) chat template, with the generation prompt.

    Images come first in their user turn, as in HuatuoGPT-Vision's prompts. With `image_marker`, each image
    token the template writes becomes that marker (the engine splits the prompt there)."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if not turns:
        raise ValueError("a prompt needs at least one turn")
    if turns[-1].answer is not None:
        raise ValueError("the last turn is already answered")
    messages: list[dict] = []
    for turn in turns:
        content = [{"type": "image"}] * turn.n_images + [{"type": "text", "text": turn.question}]
        messages.append({"role": "user", "content": content})
        if turn.answer is not None:
            messages.append({"role": "assistant", "content": turn.answer})

    def raise_exception(message):
        raise ValueError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    environment.globals["raise_exception"] = raise_exception
    text = environment.from_string(template).render(messages=messages, add_generation_prompt=True)
    if text.count(image_token) != sum(t.n_images for t in turns):
        raise ValueError(f"the chat template does not write one {image_token} per image")
    return text if image_marker is None else text.replace(image_token, image_marker)
