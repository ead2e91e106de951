"""The status lines: a standing message (what is open, why it could not be opened, why an answer failed) stays
until a newer one replaces it; a transient one (a hint, the outcome of an action) shows for a few seconds and then
gives the line back (to the standing message in the main window's, to nothing under the chat), so that nothing old
lingers."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QStatusBar

TRANSIENT_MS = 8000


class StatusLine(QStatusBar):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.standing = ""
        self.transient_ms = TRANSIENT_MS
        self.messageChanged.connect(self._back_to_standing)

    def showMessage(self, text: str, timeout: int = 0) -> None:  # noqa: N802 (Qt override)
        """Without a timeout: the new standing message."""
        if timeout <= 0:
            self.standing = text
        self.setToolTip(text)  # the whole message, when the line is too narrow for it
        super().showMessage(text, timeout)

    def flash(self, text: str) -> None:
        """A transient message: the standing one comes back after `transient_ms`."""
        self.showMessage(text, self.transient_ms)

    def clearMessage(self) -> None:  # noqa: N802 (Qt override)
        self.standing = ""
        self.setToolTip("")
        super().clearMessage()

    def _back_to_standing(self, text: str) -> None:
        if not text and self.standing:  # a transient message timed out
            self.setToolTip(self.standing)
            super().showMessage(self.standing)


class MessageLine(QLabel):
    """The chat's line under the question box: plain text, wrapped (a long engine error is read whole)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.transient_ms = TRANSIENT_MS
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self.clear)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt override)
        """A standing message: it stays until a newer one replaces it."""
        self._timer.stop()
        super().setText(text)

    def clear(self) -> None:
        self._timer.stop()
        super().clear()

    def flash(self, text: str) -> None:
        """A transient message: cleared after `transient_ms` unless a newer one has replaced it."""
        self.setText(text)
        self._timer.start(self.transient_ms)
