"""Top-level windows open at their preferred size, but no larger than the free area of their screen (a 1366×768
laptop screen is common), and placed inside that area: a window reaching past the screen's edge, or under a panel,
hides its buttons there. A window that belongs to another opens on that one's screen, centred over it."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, QSize
from PySide6.QtWidgets import QWidget

WINDOW_FRAME = QSize(16, 40)  # room for the borders and title bar the window manager adds


def resize_within_screen(window: QWidget, preferred: QSize, available: QRect | None = None) -> None:
    """Size and place `window` within `available` (its screen's free area: QScreen.availableGeometry), never
    smaller than its layout's minimum, so that nothing in it is squeezed out."""
    owner = window.parentWidget().window() if window.parentWidget() is not None else None
    if available is None:
        available = (owner or window).screen().availableGeometry()
    room = available.size() - WINDOW_FRAME
    window.resize(preferred.boundedTo(room).expandedTo(window.minimumSizeHint()))
    centre = owner.frameGeometry().center() if owner is not None and owner.isVisible() else available.center()
    frame = QRect(QPoint(0, 0), window.size() + WINDOW_FRAME)
    frame.moveCenter(centre)
    # Inside the free area; a window larger than it (its layout's minimum) keeps its top-left corner in view.
    left = max(available.left(), min(frame.left(), available.right() + 1 - frame.width()))
    top = max(available.top(), min(frame.top(), available.bottom() + 1 - frame.height()))
    window.move(left, top)
