"""The chat's question box: Enter sends and Shift+Enter starts a new line (as in LM Studio and Jan), or, with the
setting turned off, Ctrl+Enter sends and Enter starts a new line. Ctrl+Enter sends in both modes."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QPlainTextEdit

ENTER_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter)


def send_keys_text(enter_sends: bool) -> str:
    """The keys, in words, for the placeholder, the tooltip and the shortcuts list."""
    if enter_sends:
        return "Enter to send, Shift+Enter for a new line"
    return "Ctrl+Enter to send, Enter for a new line"


class QuestionBox(QPlainTextEdit):
    send_requested = Signal()
    cancel_requested = Signal()  # Esc: leave an edit

    def __init__(self, enter_sends: bool = True, parent=None):
        super().__init__(parent)
        # Ctrl+Enter is a registered shortcut (listed in Help › Keyboard shortcuts). Plain Enter cannot be one: a
        # text box takes it for itself before any shortcut sees it, so keyPressEvent handles it.
        self._send_shortcut = QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.send_requested.emit,
                                        context=Qt.ShortcutContext.WidgetShortcut)
        self.enter_sends = enter_sends
        self.set_enter_sends(enter_sends)

    def set_enter_sends(self, on: bool) -> None:
        self.enter_sends = on
        keys = send_keys_text(on)
        self.setPlaceholderText(f"Ask about the attached images…  ({keys})")
        self.setToolTip(f"Your question: {keys}. The setting is in File › Settings.")
        self.setWhatsThis(f"Type your question about the attached images. {keys}; change this in File › Settings.")
        self._send_shortcut.setWhatsThis(f"Send the question ({keys})")

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.key() == Qt.Key.Key_Escape:
            self.cancel_requested.emit()
        if event.key() not in ENTER_KEYS:
            super().keyPressEvent(event)
            return
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if modifiers == Qt.KeyboardModifier.ControlModifier or \
                (self.enter_sends and modifiers == Qt.KeyboardModifier.NoModifier):
            event.accept()
            self.send_requested.emit()
        elif modifiers in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.ShiftModifier):
            self.insertPlainText("\n")  # a real new line (Qt's Shift+Enter would insert a line separator)
            event.accept()
        else:
            super().keyPressEvent(event)
