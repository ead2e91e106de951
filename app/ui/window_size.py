"""Top-level windows open at their preferred size, but no larger than the free area of their screen (a 1366×768
laptop screen is common): a window reaching past the screen's edge hides its buttons there."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QWidget

WINDOW_FRAME = QSize(16, 40)  # room for the borders and title bar the window manager adds


def resize_within_screen(window: QWidget, preferred: QSize) -> None:
    available = window.screen().availableGeometry().size()
    window.resize(preferred.boundedTo(available - WINDOW_FRAME))
