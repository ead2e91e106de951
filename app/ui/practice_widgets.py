"""The small pieces practice mode's pages are made of: its style, cards, labels and a scaled image."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QButtonGroup, QFrame, QLabel, QSizePolicy, QVBoxLayout

STYLE = """
QFrame#card { background: palette(base); border: 1px solid rgba(127, 127, 127, 0.35); border-radius: 8px; }
QLabel#heading { font-weight: 600; }
QLabel#muted { color: palette(placeholder-text); }
/* White on a filled label: readable (5:1 and more) on the light and the dark theme alike. */
QLabel#right { color: #ffffff; background: #1e7e34; font-weight: 600; border-radius: 4px; padding: 1px 6px; }
QLabel#wrong { color: #ffffff; background: #b00020; font-weight: 600; border-radius: 4px; padding: 1px 6px; }
"""


class ScaledImage(QLabel):
    """An image that fills its space, aspect kept, rescaled when the window is resized."""

    def __init__(self):
        super().__init__()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(260, 260)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.setStyleSheet("background: #15171a; color: #d8d8d8; border-radius: 8px;")
        self.setWordWrap(True)
        self._pixmap = QPixmap()

    def set_image(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self._rescale()

    def set_message(self, text: str) -> None:
        self._pixmap = QPixmap()
        self.clear()
        self.setText(text)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if not self._pixmap.isNull():
            self.setPixmap(self._pixmap.scaled(self.size() - QSize(12, 12), Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))


def set_tone(label: QLabel, name: str) -> None:
    """Switch a label's style (see STYLE) by its object name; the style sheet is applied again for it."""
    label.setObjectName(name)
    label.style().unpolish(label)
    label.style().polish(label)


def discard(group: QButtonGroup, button) -> None:
    """Take a button out of its group and off the screen at once (not at the next turn of the event loop)."""
    group.removeButton(button)
    button.hide()
    button.setParent(None)


def card() -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame(objectName="card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(14, 12, 14, 12)
    return frame, layout


def label(text: str = "", name: str | None = None, wrap: bool = True) -> QLabel:
    """A selectable label; its text (from a deck, the trainee or the engine) is shown as written, never as HTML."""
    widget = QLabel(text)
    widget.setTextFormat(Qt.TextFormat.PlainText)
    if name:
        widget.setObjectName(name)
    widget.setWordWrap(wrap)
    widget.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return widget
