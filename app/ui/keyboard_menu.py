"""Context menus in reach of the keyboard: the Menu key and Shift+F10 (as elsewhere on the desktop) open a widget's
context menu for what has the keyboard's attention there (the current row, the text cursor), shown beside it rather
than where the mouse happens to be."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QContextMenuEvent, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

MENU_KEYS = (QKeySequence(Qt.Key.Key_Menu), QKeySequence(Qt.Modifier.SHIFT | Qt.Key.Key_F10))


def is_menu_key(event: QKeyEvent) -> bool:
    modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    return (event.key() == Qt.Key.Key_Menu and modifiers == Qt.KeyboardModifier.NoModifier) or \
        (event.key() == Qt.Key.Key_F10 and modifiers == Qt.KeyboardModifier.ShiftModifier)


class KeyboardMenu(QObject):
    """While `widget` has the focus, the Menu key and Shift+F10 call `open_menu`. A platform may announce the key as
    a keyboard context menu event before the key press itself (X11 does, for the Menu key): the menu opens from that
    event, and the press, coming while the menu is open, opens no second one. The widget's own context menu handler
    then only ever sees the mouse's."""

    def __init__(self, widget: QWidget, open_menu: Callable[[], None], of_what: str):
        """`of_what` names what the menu is for, as Help › Keyboard shortcuts lists it ("the current
        conversation")."""
        super().__init__(widget)
        self._open_menu = open_menu
        self.description = f"Context menu of {of_what}"
        self._showing = False
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        keyboard_event = event.type() == QEvent.Type.ContextMenu and \
            event.reason() == QContextMenuEvent.Reason.Keyboard
        if not keyboard_event and not (event.type() == QEvent.Type.KeyPress and is_menu_key(event)):
            return False
        event.accept()  # taken: the window makes no context menu event of a key press
        if not self._showing:
            self._showing = True
            try:
                self._open_menu()  # returns when the menu has closed
            finally:
                self._showing = False
        return True


def below_row(view: QListWidget, item: QListWidgetItem) -> QPoint:
    """Where a keyboard menu for a list's row is shown: dropping from the row, not over its text."""
    rect = view.visualItemRect(item)
    return view.viewport().mapToGlobal(rect.bottomLeft() + QPoint(rect.width() // 4, 0))
