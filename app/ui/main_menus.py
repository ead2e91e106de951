"""The main window's menu bar: File, View, Window, Models and Help, each action calling one of the window's own."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

from app.ui.practice import open_practice
from app.ui.settings_dialog import FirstRunDialog
from app.ui.viewer import Viewer


def build_menus(window: QMainWindow) -> None:
    """The window's menus; it keeps `identifiers_action`, `window_menu` and `models_menu` to update them later."""
    bar = window.menuBar()
    menu = bar.addMenu("&File")
    _add(menu, window, "&Open image or DICOM…", window.choose_file, QKeySequence.StandardKey.Open)
    _add(menu, window, "Open &folder…", window.choose_folder)
    menu.addSeparator()
    _add(menu, window, "&Settings…", window.edit_settings, QKeySequence.StandardKey.Preferences)
    view_menu = bar.addMenu("&View")
    _add(view_menu, window, "DICOM &tags…", window.show_tags, QKeySequence("Ctrl+T"))
    window.identifiers_action = QAction("Show patient &identifiers", window, checkable=True)
    window.identifiers_action.setChecked(window.settings.show_identifiers)
    window.identifiers_action.toggled.connect(window._set_identifiers)
    view_menu.addAction(window.identifiers_action)
    window.window_menu = bar.addMenu("&Window")
    window.window_menu.aboutToShow.connect(window._fill_window_menu)
    view_menu.addSeparator()
    _add(view_menu, window, "&Practice cases…", lambda: open_practice(window.runner, window, window.audit),
         QKeySequence("Ctrl+P"))
    window.models_menu = bar.addMenu("&Models")
    window.models_menu.addAction("&Manage models…", window.show_model_manager)
    window.models_menu.addAction("&Refresh", window.refresh_models)
    help_menu = bar.addMenu("&Help")
    help_menu.addAction("Intended use…", lambda: FirstRunDialog(window).exec())
    _add(help_menu, window, "&Keyboard shortcuts…", window.show_shortcuts, QKeySequence("Ctrl+/"))
    help_menu.addAction("&About Huatuo Vision…", window.show_about)
    _add(menu, window, "&Quit", window.close, QKeySequence.StandardKey.Quit)


def fill_window_menu(menu: QMenu, viewer: Viewer) -> None:
    """From file, auto and invert for all data; the HU presets only for CT in Hounsfield units."""
    menu.clear()
    menu.addAction("From file", lambda: viewer.set_window(None))
    menu.addAction("Auto", viewer.auto_window)
    menu.addAction("Invert", viewer.toggle_invert)
    presets = viewer.presets()
    if presets:
        menu.addSeparator()
        for name in presets:
            menu.addAction(name.capitalize(), lambda name=name: viewer.apply_preset(name))


def _add(menu: QMenu, window: QMainWindow, text: str, slot, shortcut=None) -> QAction:
    action = QAction(text, window)
    if shortcut is not None:
        action.setShortcut(shortcut)
    action.triggered.connect(slot)
    menu.addAction(action)
    return action
