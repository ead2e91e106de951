"""Light and dark themes: Qt's Fusion style with a calm palette, every text and control readable in both.

Text stands out from what is behind it by at least WCAG's 4.5:1 and check box / radio indicators by 3:1
(tests/app/test_theme.py measures both in the app's windows). Fusion outlines indicators in a shade darker than
the window, which vanishes on a dark one: `IndicatorStyle` draws them itself, from the palette.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle

DARK = {
    QPalette.ColorRole.Window: "#202124", QPalette.ColorRole.WindowText: "#e8eaed",
    QPalette.ColorRole.Base: "#17181a", QPalette.ColorRole.AlternateBase: "#26282b",
    QPalette.ColorRole.Text: "#e8eaed", QPalette.ColorRole.Button: "#2b2d31",
    QPalette.ColorRole.ButtonText: "#e8eaed", QPalette.ColorRole.Highlight: "#3d6fb4",
    QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2b2d31",
    QPalette.ColorRole.ToolTipText: "#e8eaed", QPalette.ColorRole.PlaceholderText: "#9aa0a6",
    QPalette.ColorRole.Link: "#8ab4f8",
}
# Fusion's own light palette, but for secondary text (Qt's default is the text colour at half opacity: 3.9:1)
# and the selection (white on Fusion's blue: 3.6:1).
LIGHT = {
    QPalette.ColorRole.PlaceholderText: "#5f6368", QPalette.ColorRole.Highlight: "#2a6bb0",
    QPalette.ColorRole.HighlightedText: "#ffffff",
}
ERROR_TEXT = {"light": "#b00020", "dark": "#f28b82"}


def apply_theme(app: QApplication, name: str) -> None:
    app.setStyle(IndicatorStyle())
    palette = app.style().standardPalette()
    for role, colour in (DARK if name == "dark" else LIGHT).items():
        palette.setColor(role, QColor(colour))
    if name == "dark":
        palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6f7378"))
        palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6f7378"))
        palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#6f7378"))
    app.setPalette(palette)
    # A style sheet that names a palette colour ("palette(placeholder-text)") resolves it when it is applied:
    # applied again, it takes the new theme's colour instead of keeping the old one (dark grey on dark).
    for widget in app.allWidgets():
        sheet = widget.styleSheet()
        if "palette(" in sheet:
            widget.setStyleSheet("")
            widget.setStyleSheet(sheet)


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightnessF() < 0.5


def error_colour(palette: QPalette) -> str:
    """The colour of an error message on this palette's window."""
    return ERROR_TEXT["dark" if is_dark(palette) else "light"]


def _mix(a: QColor, b: QColor, share_of_a: float) -> QColor:
    return QColor.fromRgbF(*(share_of_a * x + (1 - share_of_a) * y
                             for x, y in zip(a.getRgbF()[:3], b.getRgbF()[:3], strict=True)))


class IndicatorStyle(QProxyStyle):
    """Fusion, with check box and radio button indicators outlined between the text colour and the window's."""

    INDICATORS = (QStyle.PrimitiveElement.PE_IndicatorCheckBox, QStyle.PrimitiveElement.PE_IndicatorRadioButton,
                  QStyle.PrimitiveElement.PE_IndicatorItemViewItemCheck)

    def __init__(self):
        super().__init__("Fusion")

    def drawPrimitive(self, element, option, painter, widget=None) -> None:  # noqa: N802 (Qt override)
        if element not in self.INDICATORS:
            super().drawPrimitive(element, option, painter, widget)
            return
        palette, state = option.palette, option.state
        outline = _mix(palette.color(QPalette.ColorRole.WindowText), palette.color(QPalette.ColorRole.Window), 0.6)
        if state & QStyle.StateFlag.State_HasFocus and state & QStyle.StateFlag.State_KeyboardFocusChange:
            outline = palette.color(QPalette.ColorRole.Highlight)
        base, mark = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
        fill = _mix(mark, base, 0.2) if state & QStyle.StateFlag.State_Sunken else base
        rect = QRectF(option.rect).adjusted(0.5, 0.5, -0.5, -0.5)
        side = min(rect.width(), rect.height())
        box = QRectF(0, 0, side, side)
        box.moveCenter(rect.center())
        painter.save()
        painter.setRenderHint(painter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(outline, 1))
        painter.setBrush(fill)
        if element == QStyle.PrimitiveElement.PE_IndicatorRadioButton:
            painter.drawEllipse(box)
            if state & QStyle.StateFlag.State_On:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(mark)
                painter.drawEllipse(box.center(), side * 0.22, side * 0.22)
        else:
            painter.drawRoundedRect(box, 2, 2)
            pen = QPen(mark, max(1.5, side / 8))
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            painter.setPen(pen)
            x, y, s = box.x(), box.y(), side
            if state & QStyle.StateFlag.State_On:
                tick = QPainterPath(QPointF(x + 0.25 * s, y + 0.52 * s))
                tick.lineTo(QPointF(x + 0.43 * s, y + 0.70 * s))
                tick.lineTo(QPointF(x + 0.76 * s, y + 0.32 * s))
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawPath(tick)
            elif state & QStyle.StateFlag.State_NoChange:
                painter.drawLine(QPointF(x + 0.28 * s, y + 0.5 * s), QPointF(x + 0.72 * s, y + 0.5 * s))
        painter.restore()
