"""Context menus in widget tests: act on one while its event loop runs."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMenu


def on_next_menu(act) -> None:
    """Act on the next context menu once it is up."""
    tries = []

    def look():
        menu = QApplication.activePopupWidget()
        if not isinstance(menu, QMenu):
            tries.append(1)
            if len(tries) < 300:
                QTimer.singleShot(10, look)
            return
        act(menu)
    QTimer.singleShot(0, look)
