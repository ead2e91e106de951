"""Exporting a conversation to Markdown, HTML or PDF.

An export shows the model's identity (names and sha256 of both files), the sampling settings, each question with
the images exactly as the model saw them, and the answers (Markdown rendered in HTML and PDF), with the
intended-use label at the top and after the answers. It is de-identified unless the caller asks otherwise: the
study's identifying data is left out and the study key is never shown.

Answers are untrusted text: HTML and PDF render them through `app.rendering.answer_html`, the Markdown export
writes them through `app.rendering.inert_markdown`, so that no raw HTML, link or image in an answer is ever
interpreted, followed or loaded. Markdown and HTML need no Qt; PDF uses Qt's PDF writer (`app.export_pdf`,
imported only for a PDF export): the caller must have a QGuiApplication (the app's own, or pytest-qt's `qapp`);
this module creates none. An export is built in a temporary folder inside the private data folder and then moved
to where the user chose, with the user's own default permissions; the temporary folder is removed on success and on
failure, and a failed export leaves nothing under the final name.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from . import INTENDED_USE, privacy
from .finish import finish_sentence
from .paths import data_dir
from .rendering import answer_html, inert_markdown
from .store import StoredConversation, StoredImage, StoredTurn

FORMATS = ("md", "html", "pdf")

# An image's src in the HTML page, and any further <img> attributes.
ImageSource = Callable[[StoredImage], tuple[str, str]]


def export_conversation(conv: StoredConversation, path: Path, fmt: str, include_identifiers: bool = False) -> Path:
    """Writes `conv` to `path` as "md", "html" or "pdf"; returns the path. Identifying study data only with
    include_identifiers=True. PDF needs a QGuiApplication to exist."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")

    def build(built: Path) -> None:
        if fmt == "md":
            built.write_text(_markdown(conv, built, include_identifiers), encoding="utf-8")
        elif fmt == "html":
            built.write_text(_html(conv, include_identifiers, lambda img: (_data_uri(img), "")), encoding="utf-8")
        else:
            from .export_pdf import write_pdf  # Qt: only a PDF export needs it

            write_pdf(built, conv.title, lambda image_src: _html(conv, include_identifiers, image_src, _STYLE))
    return write_staged(Path(path), build)


def write_staged(path: Path, build: Callable[[Path], None]) -> Path:
    """`build(file)` writes the export (and any folder beside it) in a private temporary folder inside the data
    folder; what it wrote is then moved to `path`'s folder with the user's own default permissions. The temporary
    folder is removed on success and on failure; a failed export leaves nothing under the final name."""
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder")
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="export-", dir=folder))  # private, like everything in the data folder
    try:
        build(staging / path.name)
        _place(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _place(staging: Path, path: Path) -> None:
    """Move what was built in `staging` to `path`'s folder, each item under a temporary name first and then renamed
    (a move across volumes is a copy), with the user's own default permissions."""
    for item in sorted(staging.iterdir(), key=lambda p: p.is_file()):  # the images folder before the document
        target = path.parent / item.name
        partial = target.with_name(f".{item.name}.part")
        try:
            shutil.move(item, partial)
            _give_user_modes(partial)
            if target.is_dir() and partial.is_dir():
                shutil.rmtree(target)  # an earlier export's images under the same name
            os.replace(partial, target)
        finally:
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink(missing_ok=True)


def _give_user_modes(item: Path) -> None:
    if os.name != "posix":
        return
    for p in [item, *item.rglob("*")] if item.is_dir() else [item]:
        p.chmod(privacy.user_folder_mode() if p.is_dir() else privacy.user_file_mode())


# --- what every format shows


def _facts(conv: StoredConversation, include_identifiers: bool) -> list[tuple[str, str]]:
    model = conv.model or {}
    facts = [("Conversation started", conv.created), ("Exported", datetime.now(UTC).isoformat(timespec="seconds")),
             ("Model", str(model.get("name", "not recorded")))]
    for key, name in (("text", "Text model file"), ("mmproj", "Vision projector file")):
        part = model.get(key) or {}
        if part:
            facts.append((name, f"{part.get('file', '?')} (sha256 {part.get('sha256', '?')})"))
    if include_identifiers and conv.study_info:
        facts += [(str(k).replace("_", " ").capitalize(), str(v)) for k, v in conv.study_info.items()]
    return facts


def _answer_facts(conv: StoredConversation, turn: StoredTurn) -> list[str]:
    """Under each answer: how it ended when it ended early (with the reason, if the engine gave one), and the
    sampling it was asked with (each answer its own: settings and seed can change between turns)."""
    facts = []
    if finish_sentence(turn.finish):
        facts.append(f"{finish_sentence(turn.finish)} The answer may be incomplete."
                     + (f" Reason: {turn.note}" if turn.note else ""))
    settings = turn.settings or conv.settings  # a turn stored before answers kept their own: the conversation's
    facts.append("Sampling: " + (", ".join(f"{k} {v}" for k, v in settings.items()) or "not recorded"))
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
    # Text the export did not write itself (answers above all, but also titles, labels and study data) goes
    # through inert_markdown: nothing in it may become HTML, a link or an image in a viewer.
    out = [f"# {inert_markdown(conv.title)}", "", f"> {INTENDED_USE}", ""]
    out += [f"- **{inert_markdown(name)}:** {inert_markdown(value)}"
            for name, value in _facts(conv, include_identifiers)]
    for turn in conv.turns:
        out += ["", f"## Question {turn.index + 1}", "", inert_markdown(turn.question), ""]
        for sha in turn.image_shas:
            number = numbers[sha]
            out += [f"![Image {number}]({quote(folder.name)}/{files[sha]})", "",
                    f"*{inert_markdown(_caption(number, conv.images[sha]))}*", ""]
        out += ["**Answer**", "", inert_markdown(turn.answer) if turn.answer else "*(no answer)*"]
        out += [line for fact in _answer_facts(conv, turn) for line in ("", f"*{inert_markdown(fact)}*")]
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


def _html(conv: StoredConversation, include_identifiers: bool, image_src: ImageSource,
          style: str = _STYLE + _BROWSER_STYLE) -> str:
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
        out += ["<h3>Answer</h3>", answer_html(turn.answer) if turn.answer else "<p><i>(no answer)</i></p>"]
        out += [f"<p><i>{esc(fact)}</i></p>" for fact in _answer_facts(conv, turn)]
    out += ["<hr>", f"<p class=\"label\">{esc(INTENDED_USE)}</p>", "</body></html>"]
    return "\n".join(out)


def _data_uri(image: StoredImage) -> str:
    return "data:image/png;base64," + base64.b64encode(image.png).decode("ascii")
