"""Model output rendered safely: raw HTML, links and images in an answer are shown as text, never interpreted,
followed or loaded, both in the HTML the app shows (`answer_html`) and in the Markdown it writes (`inert_markdown`),
read here the way a permissive Markdown viewer reads it (CommonMark with raw HTML allowed)."""

from __future__ import annotations

import random

import pytest

from app.rendering import answer_html, inert_markdown
from tests.support.untrusted_output import HOSTILE, LIVE, VIEWERS, Page, two_megabytes


def in_context(hostile: str) -> list[str]:
    """`hostile` where an answer might put it: in a paragraph, alone on a line, in a list, a quote, a heading,
    a table, next to a reference definition, after a backslash of the answer's own."""
    return [f"The finding: **{hostile}** and more.", hostile, f"- item\n- {hostile}", f"> {hostile}",
            f"## {hostile}", f"| a | b |\n|---|---|\n| {hostile} | x |", f"[r]: file:///etc/passwd\n{hostile}",
            f"{hostile}\n\n[r]: http://127.0.0.1:9/x.png", f"\\{hostile}", f"\\\\{hostile}",
            f"text\n{hostile}\n\nafter", f"`code` {hostile} `more`"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_answer_html_shows_html_links_and_images_as_text(hostile):
    for markdown in in_context(hostile):
        page = Page(answer_html(markdown))
        assert not LIVE & set(page.tags), (markdown, page.tags)
        assert not page.attributes or all(name in ("class", "style") for name, _ in page.attributes), markdown
        assert hostile in page.text.replace("\\", ""), markdown


def test_answer_html_keeps_the_markdown():
    page = Page(answer_html("**bold** *it*\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n`a<b`\n\n"
                            "```\nx = [1] < 2\n```\n\n## Heading"))
    for tag in ("strong", "em", "ul", "li", "table", "td", "code", "pre", "h2"):
        assert tag in page.tags, tag
    assert "a<b" in page.text and "x = [1] < 2" in page.text and "**" not in page.text


def test_a_two_megabyte_answer_renders_completely():
    answer = two_megabytes()
    count = answer.count("Paragraph ")
    page = Page(answer_html(answer))
    assert not LIVE & set(page.tags)
    assert [f"Paragraph {n:06d}" in page.text for n in range(count)] == [True] * count
    assert page.text.count('<img src="file:///etc/passwd">') == answer.count('<img src="file:///etc/passwd">')

    markdown = inert_markdown(answer)
    for name, viewer in VIEWERS.items():
        seen = Page(viewer.render(markdown))
        assert not LIVE & set(seen.tags), name
        assert [f"Paragraph {n:06d}" in seen.text for n in range(count)] == [True] * count
        assert seen.text.count("<script>alert(1)</script>") == count
        assert seen.text.count('<img src="file:///etc/passwd">') == answer.count('<img src="file:///etc/passwd">')


# --- inert_markdown


@pytest.mark.parametrize("hostile", HOSTILE)
def test_inert_markdown_shows_html_links_and_images_as_text(hostile):
    for markdown in in_context(hostile):
        written = inert_markdown(markdown)
        for name, viewer in VIEWERS.items():
            seen = Page(viewer.render(written))
            assert not LIVE & set(seen.tags), (name, markdown, written)
            assert hostile in seen.text.replace("\\", ""), (name, markdown, written)
        # A viewer with tables shows exactly the text the app shows (where the answer has no backslash of its own).
        if "\\" not in markdown:
            seen = Page(VIEWERS["commonmark+tables"].render(written))
            assert seen.text == Page(answer_html(markdown)).text, (markdown, written)


def test_inert_markdown_keeps_formatting_and_code_as_written():
    markdown = ("**bold** and *it*\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                "Inline `<img src=\"x\">` and ``a`<b`` code.\n\n"
                "```html\n<img src=\"file:///etc/passwd\">\n[x](y)\n```\n\n"
                "    <script>indented code</script>\n\n~~gone~~\n\n| `a|<b>` |\n|---|---|\n\n```\n<c>\n```")
    written = inert_markdown(markdown)
    assert "**bold**" in written and "- one" in written
    assert '`<img src="x">`' in written and "``a`<b``" in written  # code spans untouched
    assert '```html\n<img src="file:///etc/passwd">\n[x](y)\n```' in written  # code blocks untouched
    assert "    <script>indented code</script>" in written and written.endswith("```\n<c>\n```")
    seen = Page(VIEWERS["commonmark+tables"].render(written))
    for tag in ("strong", "em", "ul", "li", "table", "td", "code", "pre"):
        assert tag in seen.tags, tag
    assert not LIVE & set(seen.tags)
    assert '<img src="x">' in seen.text and "a`<b" in seen.text and "<script>indented code</script>" in seen.text
    assert "\\" not in seen.text


def test_inert_markdown_leaves_text_without_markup_alone():
    text = "Consolidation in the right lower lobe.\n\n- 右下肺可见斑片状阴影\n- 考虑肺炎 (a & b) **x**"
    assert inert_markdown(text) == text
    assert inert_markdown("a\r\nb\rc") == "a\nb\nc"


def test_inert_markdown_closes_a_fence_the_answer_leaves_open():
    for cut_off in ("```python\nx = 1", "text\n\n~~~~\ncode\n", "````\ncode\n```"):
        written = inert_markdown(cut_off) + "\n\nafter\n\n![Image 1](images/01.png)"
        page = Page(VIEWERS["commonmark"].render(written))
        assert page.tags[-2:] == ["p", "img"], (cut_off, page.tags)  # what follows is no longer code
    assert inert_markdown("```\nclosed\n```") == "```\nclosed\n```"


def test_inert_markdown_holds_for_any_mix_of_markup():
    """Random mixes of the characters that open tags, links, images, code spans and blocks: whatever the viewer
    makes of the structure, nothing in the result is live, and every character of the text is still there."""
    pieces = ["<img src=x>", "<script>", "</a>", "<http://a.b>", "[", "]", "](file:///x)", "](http://x)", "[x]: /u\n",
              "!", "`", "``", "\\", "\n", "\n\n", "    ", "> ", "- ", "1. ", "|", "|---|\n", "```", "~~~", "<!-- c -->",
              "a", " ", "*", "&lt;", "<div>\n"]
    rng = random.Random(12)
    for _ in range(1500):
        markdown = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
        written = inert_markdown(markdown)
        for name, viewer in VIEWERS.items():
            blocks = viewer.parse(written)
            tokens = blocks + [child for block in blocks for child in block.children or []]
            live = [t.type for t in tokens if t.type in ("html_block", "html_inline", "link_open", "image")]
            assert not live, (name, markdown, written, live)
        assert written.replace("\\", "").replace("\n", "").replace("`", "").replace("~", "") == \
            markdown.replace("\\", "").replace("\r", "").replace("\n", "").replace("`", "").replace("~", "")
