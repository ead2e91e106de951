"""Model output for display: its Markdown rendered, nothing in it ever interpreted as HTML or followed.

Model output is untrusted text. Raw HTML in it (`<img>`, `<a>`, `<script>`, `<style>`, …) is shown as the text it
is; Markdown links and images are shown as their source text, never made clickable or loaded (a `file://` image
would read a local file, an `http://` one would reach the network). The chat, practice mode and every export render
answers through this one function. Qt-free.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

_MARKDOWN = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable(["table", "strikethrough"])
    .disable(["link", "image", "autolink"])
)


def answer_html(markdown: str) -> str:
    """An answer's Markdown as an HTML fragment that is safe to show: raw HTML escaped, no link, no image."""
    return _MARKDOWN.render(markdown)
