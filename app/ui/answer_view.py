"""Model answers on screen, for the chat and practice mode.

An answer is untrusted text: it is rendered by `app.rendering.answer_html` (its Markdown formatted, raw HTML in it
shown as text, no link, no image) and inserted as that HTML, never as Markdown or HTML read by Qt itself. An answer
being streamed is re-rendered in place, throttled.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QTextEdit

from app.rendering import answer_html

MIN_RENDER_INTERVAL_MS = 50


def insert_answer(cursor: QTextCursor, text: str) -> None:
    """Write an answer at the cursor: its Markdown rendered, nothing in it interpreted as HTML."""
    cursor.insertHtml(answer_html(text))


def at_end(view: QTextEdit) -> bool:
    bar = view.verticalScrollBar()
    return bar.value() >= bar.maximum() - 4


def scroll_to_end(view: QTextEdit) -> None:
    bar = view.verticalScrollBar()
    bar.setValue(bar.maximum())


class StreamedAnswer(QObject):
    """The answer being streamed at the end of a text view. Its pieces are collected as they come; the document from
    where the answer starts to its end is rendered again at most once per interval, and the interval is at least
    twice the time the last render took: a very long answer costs the GUI a bounded share of its time, and the work
    for the whole stream grows with the answer's length, not with its square. Only this answer is rendered again,
    never the rest of the document. A view at its end follows the answer as it grows."""

    def __init__(self, view: QTextEdit):
        super().__init__(view)
        self.view = view
        self.start = 0  # where the answer begins in the view's document; the answer runs to the document's end
        self._pieces: list[str] = []
        self.length = 0  # characters so far
        self._timer = QTimer(self, singleShot=True, interval=MIN_RENDER_INTERVAL_MS)
        self._timer.timeout.connect(self.render)

    @property
    def text(self) -> str:
        if len(self._pieces) > 1:
            self._pieces[:] = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    def reset(self, text: str = "") -> None:
        """A new answer: empty so far, or this text (not rendered here)."""
        self._timer.stop()
        self._timer.setInterval(MIN_RENDER_INTERVAL_MS)
        self._pieces[:] = [text] if text else []
        self.length = len(text)

    def add(self, piece: str) -> None:
        self._pieces.append(piece)
        self.length += len(piece)
        if not self._timer.isActive():
            self._timer.start()

    def stop(self) -> None:
        """No more rendering for this answer (its owner shows it whole, as it ended)."""
        self._timer.stop()

    def render(self) -> None:
        self._timer.stop()
        began = time.monotonic()
        following = at_end(self.view)
        cursor = QTextCursor(self.view.document())
        cursor.setPosition(min(self.start, cursor.document().characterCount() - 1))
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        insert_answer(cursor, self.text)
        if following:
            scroll_to_end(self.view)
        self._timer.setInterval(max(MIN_RENDER_INTERVAL_MS, round(2000 * (time.monotonic() - began))))
