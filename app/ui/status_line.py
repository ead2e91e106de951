"""The main window's status line: a standing message (what is open, or why it could not be opened) stays until a
newer one replaces it; a transient one (a hint, the outcome of an action) shows for a few seconds and then gives
the line back to the standing message, so that nothing old lingers."""

from __future__ import annotations

from PySide6.QtWidgets import QStatusBar

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
