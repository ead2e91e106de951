"""The study browser: recently opened studies, and the patient → study → series tree of the open one."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from app.studies.scan import Library, Series


def patient_label(index: int, patient, show_identifiers: bool) -> str:
    """Patients are numbered unless the user chose to see identifiers."""
    if show_identifiers:
        return f"{patient.name or 'Unnamed'} ({patient.id or 'no ID'})"
    return f"Patient {index + 1}"


class StudyBrowser(QWidget):
    series_chosen = Signal(object)  # Series
    open_requested = Signal(str)  # a recent study's path

    def __init__(self, parent=None):
        super().__init__(parent)
        self.recent = QListWidget()
        self.recent.setMaximumHeight(140)
        self.recent.setToolTip("Click a study to open it")
        self.recent.itemClicked.connect(self._open_recent)  # one click, as on a start page's list
        # Enter opens the selected one (not itemActivated: it also fires on a double-click's second click).
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            shortcut = QShortcut(QKeySequence(key), self.recent, context=Qt.ShortcutContext.WidgetShortcut)
            shortcut.activated.connect(self._open_selected)
            shortcut.setWhatsThis("Open the selected recent study")
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.itemClicked.connect(self._on_item)
        self.tree.itemActivated.connect(self._on_item)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(QLabel("<b>Recent</b>"))
        layout.addWidget(self.recent)
        layout.addWidget(QLabel("<b>Open study</b>"))
        layout.addWidget(self.tree, 1)
        self._library: Library | None = None
        self._show_identifiers = False

    def set_recent(self, paths: list[str]) -> None:
        self.recent.clear()
        for path in paths:
            item = QListWidgetItem(Path(path).name or path)
            item.setToolTip(path)
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.recent.addItem(item)

    def _open_recent(self, item: QListWidgetItem) -> None:
        self.open_requested.emit(item.data(Qt.ItemDataRole.UserRole))

    def _open_selected(self) -> None:
        if self.recent.currentItem() is not None:
            self._open_recent(self.recent.currentItem())

    def set_library(self, library: Library | None, show_identifiers: bool) -> None:
        self._library, self._show_identifiers = library, show_identifiers
        self.tree.clear()
        if library is None:
            return
        for p, patient in enumerate(library.patients.values()):
            patient_item = QTreeWidgetItem([patient_label(p, patient, show_identifiers)])
            self.tree.addTopLevelItem(patient_item)
            for study in patient.studies.values():
                study_item = QTreeWidgetItem([study.description or "Study"])
                patient_item.addChild(study_item)
                for series in study.series.values():
                    if not series.is_image:
                        continue
                    text = f"{series.modality} · {series.description or 'series'} · {len(series.frames)} image(s)"
                    series_item = QTreeWidgetItem([text])
                    series_item.setData(0, Qt.ItemDataRole.UserRole, series)
                    study_item.addChild(series_item)
        self.tree.expandAll()

    def set_show_identifiers(self, on: bool) -> None:
        if self._library is not None and on != self._show_identifiers:
            self.set_library(self._library, on)

    def _on_item(self, item: QTreeWidgetItem) -> None:
        series = item.data(0, Qt.ItemDataRole.UserRole)
        if isinstance(series, Series):
            self.series_chosen.emit(series)
