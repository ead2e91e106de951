"""Untrusted model output for tests: answers that try to run, load or link something, a 2 MB answer, and how a
reader sees an HTML page or a Markdown file (a permissive viewer)."""

from __future__ import annotations

from html.parser import HTMLParser

from markdown_it import MarkdownIt

# Raw HTML that would load, link or run something, and Markdown links and images (inline, reference, autolink).
HOSTILE = ['<img src="http://127.0.0.1:9/x.png">', '<img src="file:///etc/passwd">',
           '<a href="file:///etc/passwd">x</a>', "<script>alert(1)</script>", "<style>body{display:none}</style>",
           "![x](file:///etc/passwd)", "[x](file:///etc/passwd)", "![x](http://127.0.0.1:9/x.png)",
           "[x](http://127.0.0.1:9/)", "<http://127.0.0.1:9/>", "![x][r]", "[x][r]", "[r]"]
LIVE = {"img", "a", "script", "style", "iframe", "object", "embed", "link", "meta", "base", "svg", "form"}


def viewer(tables: bool) -> MarkdownIt:
    """A permissive Markdown viewer: raw HTML allowed, links and images made of any URL (file: included)."""
    md = MarkdownIt("commonmark", {"html": True}).enable("table" if tables else [])
    md.validateLink = lambda url: True
    return md


VIEWERS = {"commonmark": viewer(tables=False), "commonmark+tables": viewer(tables=True)}


class Page(HTMLParser):
    """The elements of an HTML text, and the text a reader sees."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.parts: list[str] = []
        self.feed(html)
        self.close()
        self.text = "".join(self.parts)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.parts.append(data)


def two_megabytes() -> str:
    """An answer of 2 MB: numbered paragraphs, each with every hostile snippet, and a code block now and then."""
    def paragraph(n: int) -> str:
        code = f"```\n<img src=\"file:///etc/passwd\"> {n}\n```\n\n" if n % 100 == 0 else ""
        return f"Paragraph {n:06d}: **finding** `a<b` {' '.join(HOSTILE)}\n\n{code}"
    text, size = [], 0
    while size < 2_000_000:
        text.append(paragraph(len(text)))
        size += len(text[-1])
    return "".join(text)
