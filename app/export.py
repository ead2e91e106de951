"""Exporting a conversation to Markdown, HTML or PDF.

An export shows the model's identity (names and sha256 of both files), the sampling settings, each question with
the images exactly as the model saw them, and the answers (Markdown rendered in HTML and PDF), with the
intended-use label at the top and after the answers. It is de-identified unless the caller asks otherwise: the
study's identifying data is left out and the study key is never shown.

HTML and PDF use Qt's Markdown renderer and PDF writer: the caller must have a QGuiApplication (the app's own, or
pytest-qt's `qapp`); this module creates none. Every export is written to a temporary file and renamed, so a
failed export leaves nothing under the final name.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from PySide6.QtCore import QMarginsF, QRectF, QSizeF, QUrl
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QFont,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPalette,
    QPdfWriter,
    QTextDocument,
)

from . import INTENDED_USE
from .finish import finish_sentence
from .store import StoredConversation, StoredImage

FORMATS = ("md", "html", "pdf")
PDF_MARGIN_MM = 18


def export_conversation(conv: StoredConversation, path: Path, fmt: str, include_identifiers: bool = False) -> Path:
    """Writes `conv` to `path` as "md", "html" or "pdf"; returns the path. Identifying study data only with
    include_identifiers=True. HTML and PDF need a QGuiApplication to exist."""
    path = Path(path)
    if fmt == "md":
        _write_atomic(path, lambda tmp: tmp.write_text(_markdown(conv, path, include_identifiers), encoding="utf-8"))
    elif fmt == "html":
        page = _html(conv, include_identifiers, lambda img: (_data_uri(img), ""))
        _write_atomic(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    elif fmt == "pdf":
        _write_atomic(path, lambda tmp: _write_pdf(conv, tmp, include_identifiers))
    else:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return path


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.part")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- what every format shows


def _facts(conv: StoredConversation, include_identifiers: bool) -> list[tuple[str, str]]:
    model = conv.model or {}
    facts = [("Conversation started", conv.created), ("Exported", datetime.now(UTC).isoformat(timespec="seconds")),
             ("Model", str(model.get("name", "not recorded")))]
    for key, name in (("text", "Text model file"), ("mmproj", "Vision projector file")):
        part = model.get(key) or {}
        if part:
            facts.append((name, f"{part.get('file', '?')} (sha256 {part.get('sha256', '?')})"))
    settings = ", ".join(f"{k} {v}" for k, v in (conv.settings or {}).items())
    facts.append(("Sampling", settings or "not recorded"))
    if include_identifiers and conv.study_info:
        facts += [(str(k).replace("_", " ").capitalize(), str(v)) for k, v in conv.study_info.items()]
    return facts


def _numbered_images(conv: StoredConversation) -> dict[str, int]:
    """Each image's number, in the order the conversation first showed it."""
    numbers: dict[str, int] = {}
    for turn in conv.turns:
        for sha in turn.image_shas:
            numbers.setdefault(sha, len(numbers) + 1)
    return numbers


def _caption(number: int, image: StoredImage) -> str:
    return f"Image {number}" + (f" ({image.label})" if image.label else "") + f", sha256 {image.sha256}"


# --- Markdown


def _markdown(conv: StoredConversation, path: Path, include_identifiers: bool) -> str:
    folder = path.parent / f"{path.stem}_images"
    numbers = _numbered_images(conv)
    files = {sha: f"{n:02d}-{sha[:12]}.png" for sha, n in numbers.items()}
    if files:
        folder.mkdir(exist_ok=True)
        for sha, name in files.items():
            (folder / name).write_bytes(conv.images[sha].png)
    out = [f"# {conv.title}", "", f"> {INTENDED_USE}", ""]
    out += [f"- **{name}:** {value}" for name, value in _facts(conv, include_identifiers)]
    for turn in conv.turns:
        out += ["", f"## Question {turn.index + 1}", "", turn.question, ""]
        for sha in turn.image_shas:
            number = numbers[sha]
            out += [f"![Image {number}]({quote(folder.name)}/{files[sha]})", "",
                    f"*{_caption(number, conv.images[sha])}*", ""]
        out += ["**Answer**", "", turn.answer or "*(no answer)*"]
        if finish_sentence(turn.finish):
            out += ["", f"*{finish_sentence(turn.finish)} The answer may be incomplete.*"]
    out += ["", "---", "", f"> {INTENDED_USE}", ""]
    return "\n".join(out)


# --- HTML (also the source of the PDF)

_STYLE = """
.label { font-weight: bold; color: #8a4b00; }
.question { white-space: pre-wrap; }
.caption { font-size: small; color: #555; }
td { padding: 0 1em 0 0; vertical-align: top; }
"""
# Browsers only: Qt's renderer applies a line height to image lines too, and the PDF page has its own margins.
_BROWSER_STYLE = """
body { font-family: sans-serif; max-width: 52em; margin: 2em auto; line-height: 1.4; }
img { max-width: 100%; }
"""


def _html(conv: StoredConversation, include_identifiers: bool,
          image_src: Callable[[StoredImage], tuple[str, str]], style: str = _STYLE + _BROWSER_STYLE) -> str:
    """The whole export as HTML; image_src gives each image's src and extra <img> attributes."""
    esc = html.escape
    numbers = _numbered_images(conv)
    out = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">", f"<title>{esc(conv.title)}</title>",
           f"<style>{style}</style></head><body>", f"<h1>{esc(conv.title)}</h1>",
           f"<p class=\"label\">{esc(INTENDED_USE)}</p>", "<table>"]
    out += [f"<tr><td><b>{esc(name)}</b></td><td>{esc(value)}</td></tr>"
            for name, value in _facts(conv, include_identifiers)]
    out.append("</table>")
    for turn in conv.turns:
        out += [f"<h2>Question {turn.index + 1}</h2>",
                f"<p class=\"question\">{esc(turn.question).replace(chr(10), '<br>')}</p>"]
        for sha in turn.image_shas:
            image = conv.images[sha]
            src, attributes = image_src(image)
            out += [f"<p><img src=\"{esc(src)}\" alt=\"Image {numbers[sha]}\"{attributes}></p>",
                    f"<p class=\"caption\">{esc(_caption(numbers[sha], image))}</p>"]
        out += ["<h3>Answer</h3>", _answer_html(turn.answer) if turn.answer else "<p><i>(no answer)</i></p>"]
        if finish_sentence(turn.finish):
            out.append(f"<p><i>{esc(finish_sentence(turn.finish))} The answer may be incomplete.</i></p>")
    out += ["<hr>", f"<p class=\"label\">{esc(INTENDED_USE)}</p>", "</body></html>"]
    return "\n".join(out)


def _answer_html(answer: str) -> str:
    """The answer's Markdown as an HTML fragment. Raw HTML in the answer is shown as text, not interpreted,
    and images it refers to are dropped: opening the export must not fetch a URL or embed a local file."""
    doc = QTextDocument()
    features = QTextDocument.MarkdownFeature.MarkdownDialectGitHub | QTextDocument.MarkdownFeature.MarkdownNoHTML
    doc.setMarkdown(answer, features)
    body = re.search(r"<body[^>]*>(.*)</body>", doc.toHtml(), re.S)
    fragment = body.group(1) if body else html.escape(answer)
    return re.sub(r"<img\b[^>]*>", "", fragment)


def _data_uri(image: StoredImage) -> str:
    return "data:image/png;base64," + base64.b64encode(image.png).decode("ascii")


# --- PDF


def _write_pdf(conv: StoredConversation, path: Path, include_identifiers: bool) -> None:
    if QGuiApplication.instance() is None:
        raise RuntimeError("a PDF export needs a QGuiApplication; create one before exporting")
    writer = QPdfWriter(str(path))
    writer.setTitle(conv.title)
    writer.setCreator("Huatuo Vision Desktop")
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(*[PDF_MARGIN_MM] * 4), QPageLayout.Unit.Millimeter)
    # The document is laid out in its own pixels on a page as large as the printable area, then scaled
    # onto each PDF page.
    screen = QGuiApplication.primaryScreen()
    scale = writer.logicalDpiX() / (screen.logicalDotsPerInchX() if screen is not None else 96.0)
    page = QSizeF(writer.width() / scale, writer.height() / scale)

    doc = QTextDocument()
    doc.setPageSize(page)
    font = QFont()
    font.setPointSizeF(10)
    doc.setDefaultFont(font)
    fit_width = page.width() - 2 * doc.documentMargin() - 2
    fit_height = page.height() * 0.8  # room for the caption on the same page

    def image_src(image: StoredImage) -> tuple[str, str]:
        name = f"image-{image.sha256}.png"
        picture = QImage.fromData(image.png)
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), picture)
        fit = min(1.0, fit_width / max(1, picture.width()), fit_height / max(1, picture.height()))
        return name, f" width=\"{int(picture.width() * fit)}\""

    doc.setHtml(_html(conv, include_identifiers, image_src, _STYLE))
    _paint_pages(doc, writer, scale)
    del writer  # closes the file
    if not path.exists() or path.stat().st_size == 0:
        raise OSError(f"{path}: the PDF could not be written")


def _paint_pages(doc: QTextDocument, writer: QPdfWriter, scale: float) -> None:
    """Like QTextDocument.print_, but with images stored losslessly (print_ would re-encode them as JPEG)."""
    painter = QPainter()
    if not painter.begin(writer):
        return
    painter.setRenderHint(QPainter.RenderHint.LosslessImageRendering)
    painter.scale(scale, scale)
    context = QAbstractTextDocumentLayout.PaintContext()
    palette = context.palette
    palette.setColor(QPalette.ColorRole.Text, QColor("black"))  # not the desktop theme's text colour
    context.palette = palette
    height = doc.pageSize().height()
    for number in range(doc.pageCount()):
        if number:
            writer.newPage()
        painter.save()
        painter.translate(0, -number * height)
        context.clip = QRectF(0, number * height, doc.pageSize().width(), height)
        painter.setClipRect(context.clip)
        doc.documentLayout().draw(painter, context)
        painter.restore()
    painter.end()
