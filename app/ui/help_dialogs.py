"""Help › Keyboard shortcuts and Help › About.

The shortcuts list is read from what is registered: the viewer's command table (which its keys and toolbar are
built from), every menu action with a shortcut, and every QShortcut in the window, so it cannot drift from them.
About is offline: versions from the installed packages' metadata, the active model's files and hashes from its
manifest, licences from the packages' own metadata.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import PySide6
from PySide6.QtCore import QRect, QSize, Qt, qVersion
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMenu,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import INTENDED_USE
from app.ui.keyboard_menu import MENU_KEYS, KeyboardMenu
from app.ui.viewer_tools import COMMANDS, MOUSE
from app.ui.window_size import resize_within_screen

APP_DISTRIBUTION = "huatuo-vision-desktop"
# Components built into the packages below, whose licences the package metadata does not name.
EMBEDDED = [("Qt 6 (in PySide6)", "LGPL-3.0-only"), ("llama.cpp and ggml (in llama-cpp-python)", "MIT")]
PREFERRED_SHORTCUTS_SIZE = QSize(760, 640)  # at most: no larger than the screen's free area
RUNTIME_FALLBACK = ["PySide6-Essentials", "llama-cpp-python", "pydicom", "python-gdcm", "pylibjpeg",
                    "pylibjpeg-openjpeg", "pylibjpeg-rle", "pyjpegls", "Pillow", "numpy", "gguf", "markdown-it-py"]


# --- keyboard shortcuts ----------------------------------------------------------------------------------------

def _text(sequence: QKeySequence) -> str:
    return sequence.toString(QKeySequence.SequenceFormat.NativeText)


def _menu_actions(menu: QMenu, path: str):
    for action in menu.actions():
        title = action.text().replace("&", "").rstrip("…").strip()
        if action.menu() is not None:
            yield from _menu_actions(action.menu(), f"{path} › {title}")
        elif not action.shortcut().isEmpty():
            yield f"{path} › {title}", action


def _owner(widget: QWidget | None) -> str:
    """Where a QShortcut works: the nearest panel or window with a name, and the widget it is bound to."""
    names = []
    while widget is not None:
        name = widget.accessibleName() or widget.windowTitle() or ""
        if not name and type(widget).__name__.endswith(("Panel", "Window", "Dialog")):
            name = re.sub(r"(?<!^)(?=[A-Z])", " ", type(widget).__name__).replace(" Panel", "").strip()
        if name:
            names.append(name)
        widget = widget.parentWidget()
    return names[0] if names else "Window"


def _where(widget: QWidget | None) -> str:
    """A QShortcut without a description: where it works (a text box by its placeholder)."""
    placeholder = widget.placeholderText() if widget is not None and hasattr(widget, "placeholderText") else ""
    box = placeholder.split("(")[0].strip()
    return f"in “{box}” ({_owner(widget)})" if box else f"in {_owner(widget)}"


def shortcut_rows(window: QWidget) -> list[tuple[str, str, str]]:
    """(group, keys, what they do) for every shortcut the window has registered."""
    rows = [("Viewer (click the image first)", " / ".join(c.keys), c.description) for c in COMMANDS]
    rows += [("Mouse in the viewer", gesture, meaning) for gesture, meaning in MOUSE]
    seen: set[int] = set()
    menu_bar = window.menuBar() if hasattr(window, "menuBar") else None
    if menu_bar is not None:
        for top in menu_bar.actions():
            if top.menu() is not None:
                for title, action in _menu_actions(top.menu(), top.text().replace("&", "")):
                    seen.add(id(action))
                    rows.append(("Menus", ", ".join(_text(s) for s in action.shortcuts()), title))
    for action in window.findChildren(QAction):
        if id(action) not in seen and not action.shortcut().isEmpty():
            rows.append(("Window", _text(action.shortcut()), action.text().replace("&", "")))
    for shortcut in window.findChildren(QShortcut):
        if shortcut.key().isEmpty():
            continue
        parent = shortcut.parent() if isinstance(shortcut.parent(), QWidget) else None
        description = shortcut.whatsThis() or _where(parent)
        rows.append((_group(parent), _text(shortcut.key()), description))
    for menu in window.findChildren(KeyboardMenu):  # keys a widget handles itself (see app.ui.keyboard_menu)
        rows += [(_group(menu.parent()), _text(keys), menu.description) for keys in MENU_KEYS]
    return rows


def _group(widget: QWidget | None) -> str:
    while widget is not None:
        name = type(widget).__name__
        if name.startswith("Chat"):
            return "Chat"
        if name.startswith("Practice"):
            return "Practice"
        if name.endswith("Panel"):
            return _owner(widget)
        widget = widget.parentWidget()
    return "Window"


class _WrappedLastColumn(QStyledItemDelegate):
    """A tree asks its delegate for row heights without saying how wide the column is, so wrapped text would get one
    line: here the last column's width is passed on, and a description gets as many lines as it wraps to."""

    def __init__(self, tree: QTreeWidget):
        super().__init__(tree)
        self.tree = tree

    def sizeHint(self, option: QStyleOptionViewItem, index) -> QSize:  # noqa: N802 (Qt override)
        last = self.tree.columnCount() - 1
        if index.column() != last:
            return super().sizeHint(option, index)
        sized = QStyleOptionViewItem(option)
        sized.rect = QRect(0, 0, max(1, self.tree.columnWidth(last)), max(1, option.rect.height()))
        return super().sizeHint(sized, index)


class ShortcutsDialog(QDialog):
    def __init__(self, window: QWidget):
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Keys", "Does"])
        # Descriptions wrap in the width the keys leave them: each is read in full, never cut off with "…".
        self.tree.setWordWrap(True)
        self.tree.setItemDelegate(_WrappedLastColumn(self.tree))
        self.tree.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.sectionResized.connect(lambda *_: self.tree.doItemsLayout())  # row heights follow the new width
        groups: dict[str, QTreeWidgetItem] = {}
        for group, keys, description in shortcut_rows(window):
            if group not in groups:
                groups[group] = QTreeWidgetItem([group])
                font = groups[group].font(0)
                font.setBold(True)
                groups[group].setFont(0, font)
                self.tree.addTopLevelItem(groups[group])
            groups[group].addChild(QTreeWidgetItem([keys, description]))
        self.tree.expandAll()
        self.tree.resizeColumnToContents(0)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree)
        layout.addWidget(buttons)
        resize_within_screen(self, PREFERRED_SHORTCUTS_SIZE)

    def rows(self) -> list[tuple[str, str, str]]:
        return [(self.tree.topLevelItem(g).text(0), item.text(0), item.text(1))
                for g in range(self.tree.topLevelItemCount())
                for item in (self.tree.topLevelItem(g).child(i) for i in range(self.tree.topLevelItem(g).childCount()))]


# --- about -----------------------------------------------------------------------------------------------------

def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def licence(distribution: str) -> str:
    """The licence a package's metadata names: License-Expression, a short License field, or its classifier."""
    try:
        md = metadata.metadata(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
    if md.get("License-Expression"):
        return md["License-Expression"]
    text = (md.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 60:
        return text
    classifiers = [c.split(" :: ")[-1] for c in md.get_all("Classifier") or [] if c.startswith("License ::")]
    return ", ".join(classifiers) or "see the package"


def runtime_distributions() -> list[str]:
    """The packages the app runs on, from its own metadata (no extras)."""
    try:
        requires = metadata.requires(APP_DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return RUNTIME_FALLBACK
    names = [re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r]
    return names or RUNTIME_FALLBACK


def about_html(model_folder: Path | None, manifest=None) -> str:
    """Everything About says, as HTML (all values escaped)."""
    from html import escape

    def row(name: str, value: str) -> str:
        return f"<tr><td>{escape(name)}</td><td>{escape(value)}</td></tr>"

    parts = [f"<h3>Huatuo Vision {escape(version(APP_DISTRIBUTION))}</h3><p>{escape(INTENDED_USE)}</p>",
             "<table cellspacing=4>",
             row("Qt", qVersion()), row("PySide6", PySide6.__version__),
             row("llama-cpp-python", version("llama-cpp-python")), row("pydicom", version("pydicom")), "</table>"]
    parts.append("<h4>Model in use</h4>")
    if manifest is None:
        parts.append("<p>None. Choose one in Models › Manage models.</p>")
    else:
        parts.append("<table cellspacing=4>" + row("name", manifest.name) + row("folder", str(model_folder)))
        for role, f in (("text model", manifest.text), ("vision projector", manifest.mmproj)):
            parts.append(row(role, f"{f.file} · {f.quantization} · {f.size_bytes:,} bytes"))
            parts.append(row(f"{role} sha256", f.sha256))
        for key, value in manifest.source.items():
            parts.append(row(f"source: {key}", str(value)))
        parts.append("</table>")
    parts.append("<h4>Licences</h4><table cellspacing=4>")
    parts.append(row("Huatuo Vision", licence(APP_DISTRIBUTION)))
    for name, text in EMBEDDED:
        parts.append(row(name, text))
    for name in runtime_distributions():
        parts.append(row(f"{name} {version(name)}", licence(name)))
    parts.append("</table><p>The model's weights come under their own licence: see its source.</p>")
    return "".join(parts)


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None, model_folder: Path | None, manifest=None):
        super().__init__(parent)
        self.setWindowTitle("About Huatuo Vision")
        self.resize(700, 620)
        self.text = QTextBrowser()
        self.text.setOpenLinks(False)
        self.text.setHtml(about_html(model_folder, manifest))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        note = QLabel("Nothing here is fetched from the network.")
        note.setAlignment(Qt.AlignmentFlag.AlignRight)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(note)
        layout.addWidget(buttons)
