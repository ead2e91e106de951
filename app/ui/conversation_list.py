"""The chat's list of conversations: all of them, those about the study on screen on top ("This study"), the
others below ("Other studies"); a search lists what it finds, grouped the same way. The context menu opens,
renames, exports and deletes one; the Menu key and Shift+F10 open it for the current one."""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtGui import QContextMenuEvent, QFont, QPalette
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.store import ConversationSummary, Store
from app.ui.keyboard_menu import KeyboardMenu, below_row

EXPORT_FORMATS = (("Markdown…", "md"), ("HTML…", "html"), ("PDF…", "pdf"))
RENAME_MIN_WIDTH = 400  # px: the Rename dialog's text field is never narrower
HEADING_ROLE = Qt.ItemDataRole.UserRole + 1  # a heading's colour role in the palette (None: a conversation)


def when(timestamp: str) -> str:
    """A stored UTC time as the list shows it: "2026-12-03 10:00"."""
    return timestamp[:16].replace("T", " ")


class _Conversations(QListWidget):
    """The list itself. Its context menu opens from the mouse (for the conversation under the pointer) and from
    the keyboard (see app.ui.keyboard_menu: for the current conversation, beside it), so every action in it is in
    reach without a mouse."""

    menu_requested = Signal(object, QPoint)  # the item (None: no conversation there), where to show the menu

    def __init__(self):
        super().__init__()
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)
        KeyboardMenu(self, self.menu_from_keyboard, "the current conversation")

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.RightButton:  # the menu acts on the conversation under the pointer;
            event.accept()  # the one open stays marked
            return
        super().mousePressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 (Qt override)
        self.menu_requested.emit(self.itemAt(event.pos()), event.globalPos())
        event.accept()

    def menu_from_keyboard(self) -> None:
        item = self.currentItem()
        if item is not None:
            self.menu_requested.emit(item, below_row(self, item))


class ConversationList(QWidget):
    opened = Signal(int)  # the user chose a conversation (its id)
    other_study_opened = Signal(int, str)  # the chosen conversation is about another study: id, its study key
    new_requested = Signal()
    delete_confirmed = Signal(int)  # the user confirmed deleting a conversation
    renamed = Signal(int)
    export_requested = Signal(int, str)  # conversation id, format ("md", "html", "pdf")

    def __init__(self, store: Store, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.study_key: str | None = None
        self.current_id: int | None = None
        self.summaries: dict[int, ConversationSummary] = {}  # those listed, by id
        self._wanted: tuple[str, int] | None = None  # reopen this conversation when its study comes on screen
        self.search = QLineEdit(placeholderText="Search conversations")
        self.search.textChanged.connect(self.refresh)
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Start a new conversation about this study")
        self.new_button.clicked.connect(self.new_requested)
        self.list = _Conversations()
        self.list.itemActivated.connect(self._choose)
        self.list.itemClicked.connect(self._choose)
        self.list.menu_requested.connect(self._menu)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.new_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.list)

    def show_study(self, study_key: str | None) -> int | None:
        """The study on screen: its conversations move to the top. Returns the one to show: the conversation
        whose study was being reopened (see `want`), else the study's newest; None when it has none."""
        self.study_key = study_key
        self.refresh()
        if self._wanted is not None and self._wanted[0] == study_key:
            wanted, self._wanted = self._wanted[1], None
            if wanted in self.summaries:
                return wanted
        return next((s.id for s in self.summaries.values() if s.study_key == study_key), None) \
            if study_key is not None else None

    def want(self, study_key: str | None, conversation_id: int | None = None) -> None:
        """When this study comes on screen, show this conversation rather than its newest (None: forget it)."""
        self._wanted = (study_key, conversation_id) if study_key is not None else None

    def set_current(self, conversation_id: int | None) -> None:
        """Mark the conversation on screen (None: a new one, not stored yet)."""
        self.current_id = conversation_id
        item = self.item_of(conversation_id) if conversation_id is not None else None
        if item is not None:
            self.list.setCurrentItem(item)
        else:
            self.list.setCurrentRow(-1)  # nothing marked: not even the last one open
            self.list.scrollToTop()

    def refresh(self) -> None:
        query = self.search.text().strip()
        summaries = self.store.search(query) if query else self.store.conversations()
        self.summaries = {s.id: s for s in summaries}
        self.list.clear()
        self._fill(summaries, query)
        current = self.item_of(self.current_id) if self.current_id is not None else None
        if current is not None:
            self.list.scrollToItem(current)
        else:
            self.list.scrollToTop()  # from the first heading, not scrolled as the last list was

    def _fill(self, summaries: list[ConversationSummary], query: str) -> None:
        if self.study_key is None:  # nothing open: one list, newest first
            for s in summaries:
                self._add(s)
            return
        here = [s for s in summaries if s.study_key == self.study_key]
        others = [s for s in summaries if s.study_key != self.study_key]
        self._add_header("This study")
        if not here:
            self._add_header("No conversation about it yet" if not query else "Nothing found", muted=True)
        for s in here:
            self._add(s)
        if others:
            self._add_header("Other studies")
            for s in others:
                self._add(s)

    def _add(self, s: ConversationSummary) -> None:
        item = QListWidgetItem(f"{s.title}\n{when(s.updated)} · {s.n_turns} question(s)")
        # A tool tip is read as rich text when it looks like HTML: this one is always shown as the text it is.
        item.setToolTip(f"<p style='white-space:pre-wrap'>{html.escape(s.preview)}</p>")
        item.setData(Qt.ItemDataRole.UserRole, s.id)
        self.list.addItem(item)
        if s.id == self.current_id:
            self.list.setCurrentItem(item)

    def _add_header(self, text: str, muted: bool = False) -> None:
        item = QListWidgetItem(text)
        item.setFlags(Qt.ItemFlag.NoItemFlags)  # a heading: not chosen, not selected, skipped by the arrow keys
        # ... yet not a disabled entry: drawn in the theme's text colours, not its faint disabled one.
        role = QPalette.ColorRole.PlaceholderText if muted else QPalette.ColorRole.Text
        item.setForeground(self.palette().brush(QPalette.ColorGroup.Active, role))
        item.setData(HEADING_ROLE, role)
        font = item.font()
        if muted:
            font.setItalic(True)
        else:
            font.setWeight(QFont.Weight.DemiBold)
        item.setFont(font)
        self.list.addItem(item)

    def changeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):  # the theme changed
            for row in range(self.list.count()):
                item = self.list.item(row)
                if (role := item.data(HEADING_ROLE)) is not None:
                    item.setForeground(self.palette().brush(QPalette.ColorGroup.Active, role))

    def headings(self) -> list[str]:
        """The list as shown, headings included: a conversation by its title, a heading as "# text"."""
        rows = []
        for row in range(self.list.count()):
            item = self.list.item(row)
            conversation_id = item.data(Qt.ItemDataRole.UserRole)
            rows.append(self.summaries[conversation_id].title if conversation_id is not None else f"# {item.text()}")
        return rows

    def _choose(self, item: QListWidgetItem) -> None:
        conversation_id = item.data(Qt.ItemDataRole.UserRole)
        if conversation_id is None:
            return
        self.opened.emit(conversation_id)
        self.set_current(self.current_id)  # the one open now: the chosen one, or the last one if it could not open
        study_key = self.summaries[conversation_id].study_key
        if study_key is not None and study_key != self.study_key:
            self.other_study_opened.emit(conversation_id, study_key)

    def item_of(self, conversation_id: int) -> QListWidgetItem | None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == conversation_id:
                return self.list.item(row)
        return None

    # --- context menu ----------------------------------------------------------------------------
    def context_menu(self, conversation_id: int) -> QMenu:
        menu = QMenu(self)
        menu.addAction("Open", lambda: self._choose(self.item_of(conversation_id)))
        menu.addAction("Rename…", lambda: self.rename(conversation_id))
        export = menu.addMenu("Export")
        for label, fmt in EXPORT_FORMATS:
            export.addAction(label, lambda fmt=fmt: self.export_requested.emit(conversation_id, fmt))
        menu.addSeparator()
        menu.addAction("Delete…", lambda: self.confirm_delete(conversation_id))
        return menu

    def _menu(self, item: QListWidgetItem | None, where: QPoint) -> None:
        if item is None or item.data(Qt.ItemDataRole.UserRole) is None:  # a heading, or below the last one
            return
        menu = self.context_menu(item.data(Qt.ItemDataRole.UserRole))
        menu.exec(where)
        menu.deleteLater()

    def rename_dialog(self, conversation_id: int) -> QInputDialog:
        """The Rename dialog: the old title whole in view and selected, so typing replaces it."""
        old = self.summaries[conversation_id].title
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Rename conversation")
        dialog.setLabelText("Title:")
        dialog.setTextValue(old)
        field = dialog.findChild(QLineEdit)
        # The dialog takes its size from its layout: the field is made wide enough for the whole title and room
        # to type, within what a small screen shows.
        screen = self.screen().availableGeometry().width()
        wanted = field.fontMetrics().horizontalAdvance(old + "MMMM")
        field.setMinimumWidth(min(max(RENAME_MIN_WIDTH, wanted), screen * 3 // 4))
        field.selectAll()
        return dialog

    def rename(self, conversation_id: int) -> None:
        old = self.summaries[conversation_id].title
        dialog = self.rename_dialog(conversation_id)
        ok = dialog.exec() == QInputDialog.DialogCode.Accepted
        title = dialog.textValue()
        dialog.deleteLater()
        if ok and title.strip() and title.strip() != old:
            self.store.rename_conversation(conversation_id, title)
            self.refresh()
            self.renamed.emit(conversation_id)

    def confirm_delete(self, conversation_id: int) -> None:
        s = self.summaries[conversation_id]
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete conversation",
                          f"Delete “{s.title}” (started {when(s.created)}, {s.n_turns} question(s))?", parent=self)
        box.setTextFormat(Qt.TextFormat.PlainText)  # the title is the user's or the model's text, never markup
        box.setInformativeText("Its questions, answers and images are erased for good. This cannot be undone.")
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(box.addButton(QMessageBox.StandardButton.Cancel))
        box.exec()
        if box.clickedButton() is delete:
            self.delete_confirmed.emit(conversation_id)
