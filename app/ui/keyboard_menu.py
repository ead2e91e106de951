"""Context menus in reach of the keyboard: the Menu key and Shift+F10 (as elsewhere on the desktop) open a widget's
context menu for what has the keyboard's attention there (the current row, the text cursor), shown beside it rather
than where the mouse happens to be."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QContextMenuEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

MENU_KEYS = (QKeySequence(Qt.Key.Key_Menu), QKeySequence(Qt.Modifier.SHIFT | Qt.Key.Key_F10))


class KeyboardMenu(QObject):
    """While `widget` has the focus, the Menu key and Shift+F10 call `open_menu`; so does a context menu event the
    platform sends for the keyboard. The widget's own context menu handler then only ever sees the mouse's."""

    def __init__(self, widget: QWidget, open_menu: Callable[[], None], of_what: str):
        """`of_what` names what the menu is for, as Help › Keyboard shortcuts lists it ("the current
        conversation")."""
        super().__init__(widget)
        self._open_menu = open_menu
        for keys in MENU_KEYS:
            # Taken as a shortcut, the key press never reaches the widget, so the window makes no second,
            # keyboard context menu event of it.
            shortcut = QShortcut(keys, widget)
            shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)  # this widget's own, beside other lists'
            shortcut.activated.connect(open_menu)
            shortcut.setWhatsThis(f"Context menu of {of_what}")
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.ContextMenu and event.reason() == QContextMenuEvent.Reason.Keyboard:
            self._open_menu()
            return True
        return False


def below_row(view: QListWidget, item: QListWidgetItem) -> QPoint:
    """Where a keyboard menu for a list's row is shown: dropping from the row, not over its text."""
    rect = view.visualItemRect(item)
    return view.viewport().mapToGlobal(rect.bottomLeft() + QPoint(rect.width() // 4, 0))
