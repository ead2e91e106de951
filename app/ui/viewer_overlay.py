"""The viewer's overlay text: outlined so that it reads over any pixels, the header facts it shows, and the
orientation letters at the edges."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QLabel

from app.studies.frames import PixelDecodeError
from app.studies.orientation import edge_letters

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


class OverlayText:
    """Part of `Viewer`: the text over the image's corner and the orientation letters at its edges."""

    def _update_overlay(self) -> None:
        try:
            ds = self.header
        except PixelDecodeError:  # not even the header can be read: the notice says so
            ds = None
        if ds is None:
            self.overlay.setText("")
            self._place_edge_letters()
            return
        lines = []
        if self.show_identifiers:
            lines.append(f"{ds.get('PatientName', '')}  {ds.get('PatientID', '')}")
        lines.append(f"{ds.get('Modality', '')}  {self.position + 1}/{len(self.frames)}".strip())  # PNG: none
        if self._decoded is not None:  # nothing on show (yet): no window, zoom or letters that would describe nothing
            if self.view.window is not None:
                lines.append(f"W {self.view.window.width:.0f}  L {self.view.window.centre:.0f}")
            lines.append(f"zoom {self.zoom() * 100:.0f}%")
            lines += slice_lines(ds)
            if str(ds.get("LossyImageCompression", "00")) == "01":
                lines.append("LOSSY")
            lines += [text for text in (self.probe_text, self.measurement) if text]
        self.overlay.setText("\n".join(lines))
        self.overlay.adjustSize()
        self._place_edge_letters()

    def _place_edge_letters(self) -> None:
        letters = None
        if self._decoded is not None and self.frames and self.header is not None:
            value = self.header.get("ImageOrientationPatient")
            letters = edge_letters(tuple(float(v) for v in value) if value is not None and len(value) == 6 else None,
                                   self.view)
        width, height = self.viewport().width(), self.viewport().height()
        if self.slider.isVisible():
            width -= self.slider.width()
        for edge, label in self.edge_labels.items():
            label.setText(letters[edge] if letters else "")
            label.adjustSize()
            x = {"left": 6, "right": width - label.width() - 6}.get(edge, (width - label.width()) // 2)
            y = {"top": 6, "bottom": height - label.height() - 6}.get(edge, (height - label.height()) // 2)
            label.move(x, y)
        self._keep_labels_clear()
