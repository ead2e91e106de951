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


def test_chat_template_with_images_found_by_url_renders_the_same_text():
    """The variant for front ends that splice each image in where its URL appears (llama-cpp-python's
    Llava15ChatHandler, which renders with trim_blocks and lstrip_blocks in a sandbox)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    source = prompt.chat_template(image="part['image_url']['url']")
    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(source)
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,BB"}},
                                     {"type": "text", "text": "Compare."}]},
        {"role": "assistant", "content": "Both are chest films."},
        {"role": "user", "content": "Any effusion?"},
    ]
    rendered = template.render(messages=messages, add_generation_prompt=True)
    expected = prompt.render([Turn("Compare.", 2, "Both are chest films."), Turn("Any effusion?")])
    assert rendered.replace("data:image/png;base64,AA", "<image>").replace("data:image/png;base64,BB", "<image>") \
        == expected
    assert rendered.index("AA") < rendered.index("BB")
