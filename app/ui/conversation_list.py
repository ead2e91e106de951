"""The chat's list of conversations: those about the study on screen, or those a search finds."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.store import Store


class ConversationList(QWidget):
    opened = Signal(int)  # the user chose a conversation (its id)
    new_requested = Signal()
    delete_confirmed = Signal(int)  # the user confirmed deleting a conversation

    def __init__(self, store: Store, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.study_key: str | None = None
        self.current_id: int | None = None
        self.search = QLineEdit(placeholderText="Search conversations")
        self.search.textChanged.connect(self.refresh)
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Start a new conversation about this study")
        self.new_button.clicked.connect(self.new_requested)
        self.list = QListWidget()
        self.list.itemActivated.connect(self._choose)
        self.list.itemClicked.connect(self._choose)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.new_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.list)

    def show_study(self, study_key: str | None) -> int | None:
        """List the conversations about this study; returns the newest one's id (None: there is none)."""
        self.study_key = study_key
        self.refresh()
        return self.list.item(0).data(Qt.ItemDataRole.UserRole) if self.list.count() else None

    def set_current(self, conversation_id: int | None) -> None:
        """Mark the conversation on screen (None: a new one, not stored yet)."""
        self.current_id = conversation_id
        self.list.clearSelection()
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == conversation_id:
                self.list.setCurrentRow(row)

    def refresh(self) -> None:
        query = self.search.text().strip()
        summaries = self.store.search(query) if query else self.store.conversations(self.study_key)
        self.list.clear()
        for s in summaries:
            when = s.updated[:16].replace("T", " ")
            item = QListWidgetItem(f"{s.title}\n{when} · {s.n_turns} question(s)")
            # A tool tip is read as rich text when it looks like HTML: this one is always shown as the text it is.
            item.setToolTip(f"<p style='white-space:pre-wrap'>{html.escape(s.preview)}</p>")
            item.setData(Qt.ItemDataRole.UserRole, s.id)
            self.list.addItem(item)
            if s.id == self.current_id:
                self.list.setCurrentItem(item)

    def _choose(self, item: QListWidgetItem) -> None:
        self.opened.emit(item.data(Qt.ItemDataRole.UserRole))

    def _menu(self, position) -> None:
        item = self.list.itemAt(position)
        if item is None:
            return
        conversation_id = item.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.opened.emit(conversation_id))
        menu.addAction("Delete…", lambda: self._confirm_delete(conversation_id))
        menu.exec(self.list.viewport().mapToGlobal(position))

    def _confirm_delete(self, conversation_id: int) -> None:
        answer = QMessageBox.question(self, "Delete conversation",
                                      "Delete this conversation and its images for good? This cannot be undone.")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_confirmed.emit(conversation_id)
