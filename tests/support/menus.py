"""Popups in widget tests (context menus, message boxes): act on the next one while its event loop runs."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox

TRIES = 300  # looked for every 10 ms: a few seconds, then given up (the test then fails on what it expected)


def _on_next(find, act) -> None:
    tries = []

    def look():
        popup = find()
        if popup is None:
            tries.append(1)
            if len(tries) < TRIES:
                QTimer.singleShot(10, look)
            return
        act(popup)
    QTimer.singleShot(0, look)


def on_next_menu(act) -> None:
    """Act on the next context menu once it is up."""
    _on_next(lambda: m if isinstance(m := QApplication.activePopupWidget(), QMenu) else None, act)


def answer_next_box(button_text: str | None, seen: list) -> None:
    """Answer the next modal message box (the button with this text; None: Cancel), noting its text."""

    def answer(box: QMessageBox) -> None:
        seen.append(box.text())
        for button in box.buttons():
            if (button_text is None and box.buttonRole(button) == QMessageBox.ButtonRole.RejectRole) or \
                    button.text() == button_text:
                button.click()
                return
    _on_next(lambda: b if isinstance(b := QApplication.activeModalWidget(), QMessageBox) else None, answer)
