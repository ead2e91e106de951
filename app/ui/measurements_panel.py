"""The list of the series' measurements: each with its slice; a click goes to that slice, Delete removes it. Its
context menu (the mouse's, or the Menu key's and Shift+F10's for the selected one) does what its buttons do."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.ui.keyboard_menu import KeyboardMenu, below_row
from app.ui.viewer import Viewer

EMPTY = ("No measurements. Ruler (M), Ellipse (E), Rectangle (B) or Probe (D), then drag on the image; "
         "Angle (G): three clicks, the vertex second.")


class MeasurementsPanel(QWidget):
    def __init__(self, viewer: Viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.itemClicked.connect(self._go_to_slice)
        self.list.itemActivated.connect(self._go_to_slice)
        self.list.currentRowChanged.connect(lambda _: self._update_buttons())
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu_from_mouse)
        KeyboardMenu(self.list, self._menu_from_keyboard, "the selected measurement")
        self.empty = QLabel(EMPTY)
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.empty.setStyleSheet("color: palette(placeholder-text);")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Delete the selected measurement (Del)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button = QPushButton("Clear all")
        self.clear_button.clicked.connect(viewer.clear_measurements)
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.list, activated=self.delete_selected,
                           context=Qt.ShortcutContext.WidgetShortcut)
        delete.setWhatsThis("Delete the selected measurement")  # Help › Keyboard shortcuts shows it
        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.addWidget(QLabel("<b>Measurements</b>"))
        layout.addWidget(self.empty, 1)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        viewer.measurements_changed.connect(self.refresh)
        viewer.frame_changed.connect(lambda *_: self._mark_current_slice())
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        frames = self.viewer.frames
        for m in self.viewer.measurements:
            slice_number = frames.index(m.source) + 1 if m.source in frames else 0
            item = QListWidgetItem(f"Slice {slice_number} · {m.text}")
            item.setData(Qt.ItemDataRole.UserRole, m)
            self.list.addItem(item)
        has_any = bool(self.viewer.measurements)
        self.list.setVisible(has_any)
        self.empty.setVisible(not has_any)
        self._mark_current_slice()
        self._update_buttons()

    def _mark_current_slice(self) -> None:
        """The measurements of the slice on show in bold: the others are on other slices."""
        on_slice = self.viewer.measurements_on_slice()
        for row in range(self.list.count()):
            item = self.list.item(row)
            font = item.font()
            font.setBold(any(item.data(Qt.ItemDataRole.UserRole) is m for m in on_slice))
            item.setFont(font)

    def _update_buttons(self) -> None:
        self.delete_button.setEnabled(self.list.currentItem() is not None)
        self.clear_button.setEnabled(bool(self.viewer.measurements))

    def _go_to_slice(self, item: QListWidgetItem) -> None:
        measurement = item.data(Qt.ItemDataRole.UserRole)
        if measurement.source in self.viewer.frames:
            self.viewer.go_to(self.viewer.frames.index(measurement.source))

    def delete_selected(self) -> None:
        """Delete the selected measurement; the one after it (or the new last) is selected, for the next Delete."""
        row = self.list.currentRow()
        if row >= 0:
            self.viewer.delete_measurement(self.list.item(row).data(Qt.ItemDataRole.UserRole))
            if self.list.count():
                self.list.setCurrentRow(min(row, self.list.count() - 1))

    # --- context menu ----------------------------------------------------------------------------
    def context_menu(self, item: QListWidgetItem) -> QMenu:
        """The menu for one measurement: what the list's click and the panel's buttons do."""
        menu = QMenu(self)
        menu.addAction("Go to its slice", lambda: self._go_to_slice(item))
        # "\t" puts the list's own key in the menu's shortcut column, without a second shortcut for it.
        delete_key = QKeySequence(QKeySequence.StandardKey.Delete).toString(QKeySequence.SequenceFormat.NativeText)
        menu.addAction(f"Delete\t{delete_key}", lambda: (self.list.setCurrentItem(item), self.delete_selected()))
        menu.addSeparator()
        menu.addAction("Clear all", self.viewer.clear_measurements)
        return menu

    def _menu_from_mouse(self, point: QPoint) -> None:
        item = self.list.itemAt(point)
        if item is not None:
            self.list.setCurrentItem(item)
            self._show_menu(item, self.list.viewport().mapToGlobal(point))

    def _menu_from_keyboard(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._show_menu(item, below_row(self.list, item))

    def _show_menu(self, item: QListWidgetItem, where: QPoint) -> None:
        menu = self.context_menu(item)
        menu.exec(where)
        menu.deleteLater()
