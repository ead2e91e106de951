"""The small pieces practice mode's pages are made of: its style, cards and labels."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QButtonGroup, QFrame, QLabel, QVBoxLayout

STYLE = """
QFrame#card { background: palette(base); border: 1px solid rgba(127, 127, 127, 0.35); border-radius: 8px; }
QLabel#heading { font-weight: 600; }
QLabel#muted { color: palette(placeholder-text); }
/* White on a filled label: readable (5:1 and more) on the light and the dark theme alike. */
QLabel#right { color: #ffffff; background: #1e7e34; font-weight: 600; border-radius: 4px; padding: 1px 6px; }
QLabel#wrong { color: #ffffff; background: #b00020; font-weight: 600; border-radius: 4px; padding: 1px 6px; }
"""


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
