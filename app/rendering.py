"""Model output for display: its Markdown rendered, nothing in it ever interpreted as HTML or followed.

Model output is untrusted text. Raw HTML in it (`<img>`, `<a>`, `<script>`, `<style>`, …) is shown as the text it
is; Markdown links and images are shown as their source text, never made clickable or loaded (a `file://` image
would read a local file, an `http://` one would reach the network). The chat, practice mode and every export render
answers through `answer_html`; the Markdown export writes them through `inert_markdown`. Qt-free.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

_MARKDOWN = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    .enable(["table", "strikethrough"])
    .disable(["link", "image", "autolink", "reference"])  # a link definition shown as the text it is, not hidden
)


def answer_html(markdown: str) -> str:
    """An answer's Markdown as an HTML fragment that is safe to show: raw HTML escaped, no link, no image."""
    return _MARKDOWN.render(markdown)


# --- Markdown that stays inert in a viewer
#
# Everything a Markdown viewer could turn into HTML, an autolink, a link or an image starts with `<` or `[`; a
# backslash before either makes it the literal character. Code blocks and code spans show backslashes literally,
# so they are left as they are: their content is never interpreted. The result is checked the way viewers read it
# (CommonMark with raw HTML allowed, with and without GitHub's tables); should it not hold up there, everything is
# escaped, code included: a stray backslash in code is better than a live tag. A bare URL is left as it is: a
# viewer that makes it clickable shows where it leads, and nothing is loaded.


def _viewer(tables: bool) -> MarkdownIt:
    """A Markdown viewer at its most permissive: raw HTML allowed, a link or an image made of any URL."""
    viewer = MarkdownIt("commonmark", {"html": True}).enable("table" if tables else [])
    viewer.validateLink = lambda url: True  # markdown-it itself refuses file: and javascript: links; not all viewers do
    return viewer


_VIEWERS = (_viewer(tables=False), _viewer(tables=True))
_LIVE = {"html_block", "html_inline", "link_open", "image"}
_PUNCTUATION = r"!-/:-@\[-`{-~"  # ASCII punctuation: what a backslash escapes
_TO_ESCAPE = re.compile(rf"\\[{_PUNCTUATION}]|[<\[]")  # an escape already there (kept as it is), or a bare < or [
_ESCAPE_OR_BACKTICKS = re.compile(rf"\\[{_PUNCTUATION}]|`+")


def inert_markdown(text: str) -> str:
    """`text` as Markdown that keeps its formatting (emphasis, lists, tables, code) but in which no CommonMark
    viewer finds raw HTML, a link or an image: they read as the characters the text has. Line ends become "\\n".
    A code fence the text leaves open is closed, so that what follows the text in a document is not swallowed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    tokens = _VIEWERS[0].parse(text)
    if "<" in text or "[" in text:  # without either, nothing can open a tag, an autolink, a link or an image
        escaped = _escape(text)  # inert by construction
        code = {n for t in tokens if t.type in ("fence", "code_block") and t.map for n in range(*t.map)}
        text = "\n".join(line if n in code else _escape_line(line) for n, line in enumerate(lines))
        viewers = _VIEWERS if "|" in text else _VIEWERS[:1]  # no table without a |
        if text != escaped and any(_is_live(viewer.parse(text)) for viewer in viewers):
            text = escaped
    return text + _closing_fence(tokens, lines)


def _escape(text: str) -> str:
    return _TO_ESCAPE.sub(lambda m: m[0] if len(m[0]) == 2 else "\\" + m[0], text)


def _escape_line(line: str) -> str:
    """One line escaped outside its code spans. A span is only taken on a line without `|`: in a table row a `|`
    splits cells, spans included."""
    if "`" not in line or "|" in line:
        return _escape(line)
    out, done, at = [], 0, 0
    while opening := _ESCAPE_OR_BACKTICKS.search(line, at):
        at = opening.end()
        if opening[0].startswith("\\"):
            continue
        closing = re.compile(f"(?<!`){opening[0]}(?!`)").search(line, at)
        if closing:  # a code span: shown as it is
            out += [_escape(line[done:opening.start()]), line[opening.start():closing.end()]]
            done = at = closing.end()
    out.append(_escape(line[done:]))
    return "".join(out)


def _is_live(tokens: list[Token]) -> bool:
    return any(t.type in _LIVE or (t.children and _is_live(t.children)) for t in tokens)


def _closing_fence(tokens: list[Token], lines: list[str]) -> str:
    last = tokens[-1] if tokens else None
    if last is None or last.type != "fence" or last.level != 0 or not last.map:
        return ""
    start, end = last.map
    closing = re.compile(rf" {{0,3}}{re.escape(last.markup[0])}{{{len(last.markup)},}}[ \t]*")
    if end - start >= 2 and closing.fullmatch(lines[end - 1]):
        return ""
    return ("" if lines[-1] == "" else "\n") + last.markup
