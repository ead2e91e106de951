"""The HuatuoGPT-Vision prompt format, byte for byte, and the chat template embedded in the GGUF."""

import jinja2
import pytest

from inference import prompt
from inference.prompt import Turn


def test_first_turn_with_an_image():
    assert prompt.render([Turn("What is shown?", n_images=1)]) == "<|user|>\n<image>\nWhat is shown?\n<|assistant|>\n"


def test_follow_up_keeps_the_space_before_the_newline():
    text = prompt.render([Turn("描述这张图。", 2, "一张胸片。"), Turn("Any effusion?")])
    assert (
        text
        == "<|user|>\n<image>\n<image>\n描述这张图。\n<|assistant|>\n一张胸片。 \n"
        "<|user|>\nAny effusion?\n<|assistant|>\n"
    )


def test_the_last_turn_must_be_open():
    with pytest.raises(ValueError):
        prompt.render([Turn("q", 0, "a")])
    with pytest.raises(ValueError):
        prompt.render([])


def test_chat_template_renders_the_same_text():
    template = jinja2.Environment().from_string(prompt.CHAT_TEMPLATE)
    messages = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "What?"}],
        },
        {"role": "assistant", "content": "A chest X-ray."},
        {"role": "user", "content": "左侧有积液吗？"},
    ]
    rendered = template.render(messages=messages, add_generation_prompt=True)
    expected = prompt.render([Turn("What?", 1, "A chest X-ray."), Turn("左侧有积液吗？")])
    assert rendered == expected
