"""The model families the engine runs: for each, how a conversation becomes its prompt and how an image becomes
its input. The family a model folder belongs to is the one its manifest names (`Manifest.family`).

- ``llava`` (HuatuoGPT-Vision-7B/34B): the fixed HuatuoGPT prompt (`prompt.render`, role tags as plain text, no
  system prompt) and a padded square at the projector's size (576 image tokens).
- ``qwen2.5-vl`` (HuatuoGPT-Vision-7B-Qwen2.5VL): the release's own chat template, stored in the text GGUF
  (ChatML with the default system prompt), and the image at (close to) its own size and aspect ratio, smart-resized
  within an image-token budget.

Adding a family: a class with the same members, one entry in `FAMILIES`, and the converter's side
(`conversion/families.py`); docs/architecture.md lists every place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image

from . import prompt
from .imageprep import QWEN25VL_FACTOR, prepare_dynamic_png, prepare_png, smart_resize

Render = Callable[[Sequence[prompt.Turn], str], str]  # (turns, image marker) -> the prompt text


@dataclass(frozen=True)
class ModelImages:
    """What a model folder says about its images (a `Manifest` or a checked `PairInfo` has these fields)."""

    image_size: int
    image_tokens: int
    image_min_pixels: int | None = None
    image_max_pixels: int | None = None


class LlavaFamily:
    name = "llava"
    # The role tags are plain text: a question is never read as control tokens.
    parse_special = False
    image_budget_setting = False  # every image is the projector's square: 576 tokens for the 7B and 34B

    def renderer(self, chat_template: str | None) -> Render:
        return lambda turns, marker: prompt.render(turns, image_marker=marker)

    def default_context(self, model_context: int) -> int:
        return model_context  # 4096 for HuatuoGPT-Vision

    def image_tokens(self, model: ModelImages, image_max_tokens: int | None = None) -> int:
        return model.image_tokens

    def prepare_png(self, source: bytes | Image.Image, model: ModelImages, image_max_tokens: int | None = None,
                    ) -> bytes:
        return prepare_png(source, model.image_size)

    def input_size(self, width: int, height: int, model: ModelImages, image_max_tokens: int | None = None,
                   ) -> tuple[int, int, int]:
        """(width, height, image tokens) of what the model gets for an image of this size: always its square."""
        return model.image_size, model.image_size, model.image_tokens


class Qwen25VLFamily:
    name = "qwen2.5-vl"
    # ChatML's <|im_start|>/<|im_end|> are special tokens; the prompt is tokenized as transformers tokenizes it.
    parse_special = True
    image_budget_setting = True
    # The most image tokens per image the engine accepts: six such images and a conversation fit its default
    # context (6 x 1024 + 2048 = 8192), and 1024 is where Qwen2.5-VL's grounding becomes reliable.
    max_image_tokens = 1024
    # Default context: M-RoPE positions grow slowly (an image advances them by one side of its grid), but every
    # image token takes a KV cell; 8192 cells hold the most images at the most tokens. The 7B's KV cache at
    # 8192 cells is about 470 MB in F16.
    context = 8192

    def renderer(self, chat_template: str | None) -> Render:
        if not chat_template:
            raise ValueError("the text model carries no chat template (tokenizer.chat_template); reconvert it")
        return lambda turns, marker: prompt.render_chat_template(chat_template, turns, image_marker=marker)

    def default_context(self, model_context: int) -> int:
        return min(model_context, self.context)

    def image_tokens(self, model: ModelImages, image_max_tokens: int | None = None) -> int:
        """The most tokens one image takes: the setting, or the model's own (training) budget."""
        if image_max_tokens is None:
            return model.image_tokens
        if not 4 <= image_max_tokens <= self.max_image_tokens:
            raise ValueError(f"the image-token budget must be between 4 and {self.max_image_tokens} "
                             f"(it is {image_max_tokens})")
        return image_max_tokens

    def pixel_budget(self, model: ModelImages, image_max_tokens: int | None = None) -> tuple[int, int]:
        max_pixels = (model.image_max_pixels if image_max_tokens is None and model.image_max_pixels
                      else self.image_tokens(model, image_max_tokens) * QWEN25VL_FACTOR**2)
        min_pixels = min(model.image_min_pixels or 4 * QWEN25VL_FACTOR**2, max_pixels)
        return min_pixels, max_pixels

    def prepare_png(self, source: bytes | Image.Image, model: ModelImages, image_max_tokens: int | None = None,
                    ) -> bytes:
        min_pixels, max_pixels = self.pixel_budget(model, image_max_tokens)
        return prepare_dynamic_png(source, min_pixels, max_pixels, QWEN25VL_FACTOR)

    def input_size(self, width: int, height: int, model: ModelImages, image_max_tokens: int | None = None,
                   ) -> tuple[int, int, int]:
        """(width, height, image tokens) of what the model gets for an image of this size (no pixel is resampled)."""
        min_pixels, max_pixels = self.pixel_budget(model, image_max_tokens)
        h, w = smart_resize(height, width, QWEN25VL_FACTOR, min_pixels, max_pixels)
        return w, h, (w // QWEN25VL_FACTOR) * (h // QWEN25VL_FACTOR)


LLAVA = LlavaFamily()
QWEN25VL = Qwen25VLFamily()
FAMILIES = {f.name: f for f in (LLAVA, QWEN25VL)}
# A pair picked by hand (no manifest) is told by its projector type.
BY_PROJECTOR = {"mlp": LLAVA.name, "qwen2.5vl_merger": QWEN25VL.name}


def family(name: str):
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})") from None
