"""The viewer's overlay text: outlined so that it reads over any pixels, and the header facts it shows."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QLabel

OUTLINE = QColor(0, 0, 0, 230)  # around overlay text: readable over white and inverted pixels


class OutlinedText(QLabel):
    """Plain overlay text drawn in its colour over a dark one-pixel outline, as viewers draw their annotations."""

    def __init__(self, parent, colour: str, bold: bool = False, monospace: bool = False):
        super().__init__(parent)
        self.colour = QColor(colour)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setMargin(1)  # room for the outline
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        font = self.font()
        if monospace:
            font.setFamily("monospace")
            font.setStyleHint(QFont.StyleHint.Monospace)
        font.setBold(bold)
        self.setFont(font)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.setFont(self.font())
        rect = self.contentsRect().adjusted(1, 1, -1, -1)
        flags = int(self.alignment())
        painter.setPen(OUTLINE)
        for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
            painter.drawText(rect.translated(dx, dy), flags, self.text())
        painter.setPen(self.colour)
        painter.drawText(rect, flags, self.text())


def slice_lines(ds) -> list[str]:
    """Slice location and thickness, when the header has them."""
    parts = []
    for keyword, name in (("SliceLocation", "loc"), ("SliceThickness", "thick")):
        try:
            value = float(ds.get(keyword))
        except (TypeError, ValueError):
            continue
        parts.append(f"{name} {value:.1f} mm")
    return ["  ".join(parts)] if parts else []
