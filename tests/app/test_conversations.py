"""The conversation list as a user meets it: every conversation listed, the study on screen's on top; a
conversation of another study opens that study again (or says its files are gone); attaching across studies asks
first; rename, export and delete from the context menu (from the mouse or the keyboard), the delete dialog naming
the conversation."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog, QLineEdit, QMenu, QMessageBox

from app.settings import Settings
from app.store import Store
from app.ui.conversation_list import ConversationList
from app.ui.main import MainWindow
from tests.support.menus import on_next_menu

CT_UID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"  # CT_small.dcm's study
ANSWER_TIMEOUT_MS = 120_000


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "conversations.sqlite3") as s:
        yield s


@pytest.fixture
def listed(qtbot, store):
    widget = ConversationList(store)
    qtbot.addWidget(widget)
    widget.resize(320, 500)
    widget.show()
    return widget


def click(widget: ConversationList, row: int) -> None:
    item = widget.list.item(row)
    QTest.mouseClick(widget.list.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     widget.list.visualItemRect(item).center())


def answer_next_dialog(seen: list, act) -> None:
    """Act on the next modal dialog (a message box or an input dialog) once it is up, noting its text."""
    tries = []

    def look():
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, (QMessageBox, QInputDialog)):
            tries.append(1)
            if len(tries) < 300:
                QTimer.singleShot(10, look)
            return
        seen.append(dialog.text() if isinstance(dialog, QMessageBox) else dialog.labelText())
        act(dialog)
    QTimer.singleShot(0, look)


def press(button_text: str):
    def act(box: QMessageBox):
        next(b for b in box.buttons() if b.text() == button_text).click()
    return act


# --- the list --------------------------------------------------------------------------------------------------

def test_all_conversations_are_listed_the_study_on_screen_on_top(listed, store, qtbot):
    ct, mr = store.study_key("ct"), store.study_key("mr")
    ct_old = store.create_conversation("CT · first look", ct)
    mr_one = store.create_conversation("MR · knee", mr)
    ct_new = store.create_conversation("CT · follow-up", ct)

    assert listed.show_study(mr) == mr_one  # the study's newest is the one to show
    assert listed.headings() == ["# This study", "MR · knee", "# Other studies", "CT · follow-up",
                                 "CT · first look"]
    assert listed.show_study(ct) == ct_new
    assert listed.headings() == ["# This study", "CT · follow-up", "CT · first look", "# Other studies",
                                 "MR · knee"]
    assert listed.show_study(store.study_key("new")) is None  # a study without conversations hides no other
    assert listed.headings() == ["# This study", "# No conversation about it yet", "# Other studies",
                                 "CT · follow-up", "MR · knee", "CT · first look"]
    assert listed.show_study(None) is None  # nothing open: one list
    assert listed.headings() == ["CT · follow-up", "MR · knee", "CT · first look"]

    listed.show_study(ct)
    listed.search.setText("knee")  # a search keeps the grouping
    assert listed.headings() == ["# This study", "# Nothing found", "# Other studies", "MR · knee"]
    listed.search.clear()

    opened, other = [], []
    listed.opened.connect(opened.append)
    listed.other_study_opened.connect(lambda cid, key: other.append((cid, key)))
    click(listed, 0)  # a heading is not a conversation
    click(listed, 1)
    click(listed, 4)
    assert opened == [ct_new, mr_one] and other == [(mr_one, mr)]
    assert not listed.list.item(0).flags() & Qt.ItemFlag.ItemIsSelectable
    listed.set_current(ct_old)
    assert listed.list.currentItem().data(Qt.ItemDataRole.UserRole) == ct_old


def test_rename_export_and_delete_from_the_context_menu(listed, store, qtbot):
    key = store.study_key("ct")
    keep = store.create_conversation("CT · keep", key)
    gone = store.create_conversation("CT <b>chest</b> · 2nd", key)
    listed.show_study(key)
    menu = listed.context_menu(gone)
    assert [a.text() for a in menu.actions() if a.text()] == ["Open", "Rename…", "Export", "Delete…"]
    export = next(a for a in menu.actions() if a.text() == "Export").menu()
    exported = []
    listed.export_requested.connect(lambda cid, fmt: exported.append((cid, fmt)))
    for action in export.actions():
        action.trigger()
    assert exported == [(gone, "md"), (gone, "html"), (gone, "pdf")]

    seen, renamed = [], []
    listed.renamed.connect(renamed.append)

    def rename(dialog: QInputDialog):
        assert dialog.textValue() == "CT <b>chest</b> · 2nd"  # starts from the old title
        dialog.setTextValue("Chest CT: nodule")
        dialog.accept()
    answer_next_dialog(seen, rename)
    next(a for a in menu.actions() if a.text() == "Rename…").trigger()
    assert renamed == [gone] and store.load(gone).title == "Chest CT: nodule"
    assert "Chest CT: nodule" in listed.headings()

    deleted = []
    listed.delete_confirmed.connect(deleted.append)
    answer_next_dialog(seen, press("Cancel"))
    listed.context_menu(gone).actions()[-1].trigger()
    assert deleted == []
    created = store.load(gone).created[:16].replace("T", " ")
    assert seen[-1] == f"Delete “Chest CT: nodule” (started {created}, 0 question(s))?"  # names the conversation
    answer_next_dialog(seen, press("Delete"))
    listed.confirm_delete(gone)
    assert deleted == [gone]
    assert keep in listed.summaries


def test_the_context_menu_opens_from_the_keyboard_for_the_current_conversation(listed, store, qtbot):
    key = store.study_key("ct")
    ids = [store.create_conversation(f"CT · question {i}", key) for i in range(12)]
    listed.show_study(key)
    asked, shown = [], []
    build = listed.context_menu
    listed.context_menu = lambda cid: (asked.append(cid), build(cid))[1]

    def note_and_close(menu: QMenu):
        shown.append(([a.text() for a in menu.actions() if a.text()], menu.geometry()))
        menu.close()

    newest = ids[-1]  # the top row: not the one under the middle of the list, where a menu key's event points
    listed.set_current(newest)
    centre = listed.list.viewport().rect().center()
    assert listed.list.itemAt(centre).data(Qt.ItemDataRole.UserRole) != newest
    on_next_menu(note_and_close)
    QApplication.sendEvent(listed.list, QContextMenuEvent(QContextMenuEvent.Reason.Keyboard, centre,
                                                          listed.list.viewport().mapToGlobal(centre)))
    assert asked == [newest] and shown[-1][0] == ["Open", "Rename…", "Export", "Delete…"]
    row = listed.list.visualItemRect(listed.item_of(newest))  # the menu drops from that conversation
    assert shown[-1][1].top() == listed.list.viewport().mapToGlobal(row.bottomLeft()).y()

    def press_again_then_close(menu: QMenu):  # X11 sends the key press after that event, while its menu is open
        QTest.keyClick(listed.list, Qt.Key.Key_Menu)
        shown.append((QApplication.activePopupWidget() is menu, None))
        menu.close()
    on_next_menu(press_again_then_close)
    QApplication.sendEvent(listed.list, QContextMenuEvent(QContextMenuEvent.Reason.Keyboard, centre,
                                                          listed.list.viewport().mapToGlobal(centre)))
    assert asked == [newest, newest] and shown[-1][0] is True  # the same menu: no second one

    listed.activateWindow()
    listed.list.setFocus()
    qtbot.waitUntil(listed.list.hasFocus)
    QTest.keyClick(listed.list, Qt.Key.Key_Down)  # the keyboard moves the current conversation
    on_next_menu(note_and_close)
    QTest.keyClick(listed.list, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    assert asked == [newest, newest, ids[-2]]
    QTest.keyClick(listed.list, Qt.Key.Key_Down)
    on_next_menu(note_and_close)
    listed.activateWindow()  # back from the menu (the offscreen platform gives the focus back to no one)
    listed.list.setFocus()
    qtbot.waitUntil(listed.list.hasFocus)
    QTest.keyClick(listed.list, Qt.Key.Key_Menu)  # the Menu key itself, pressed
    assert asked == [newest, newest, ids[-2], ids[-3]]
    row = listed.list.visualItemRect(listed.item_of(ids[-3]))
    assert shown[-1][1].top() == listed.list.viewport().mapToGlobal(row.bottomLeft()).y()

    fourth = listed.item_of(ids[-4])  # the mouse: the conversation under the pointer
    at = listed.list.visualItemRect(fourth).center()
    on_next_menu(note_and_close)
    QApplication.sendEvent(listed.list.viewport(), QContextMenuEvent(
        QContextMenuEvent.Reason.Mouse, at, listed.list.viewport().mapToGlobal(at)))
    assert asked == [newest, newest, ids[-2], ids[-3], ids[-4]]
    heading = listed.list.visualItemRect(listed.list.item(0)).center()  # a heading has no menu
    QApplication.sendEvent(listed.list.viewport(), QContextMenuEvent(
        QContextMenuEvent.Reason.Mouse, heading, listed.list.viewport().mapToGlobal(heading)))
    assert len(asked) == 5 and QApplication.activePopupWidget() is None


def test_the_rename_dialog_shows_a_long_title_whole_and_selected(listed, store, qtbot):
    title = "Chest CT, 2026-12-03: the 8 mm nodule in the right upper lobe, compared with spring"
    cid = store.create_conversation(title, store.study_key("ct"))
    listed.show_study(store.study_key("ct"))
    seen, shown = [], {}

    def look(dialog: QInputDialog):
        field = dialog.findChild(QLineEdit)
        shown.update(field_width=field.width(), title_width=field.fontMetrics().horizontalAdvance(title),
                     selected=field.selectedText(), focused=field.hasFocus())
        QTest.keyClicks(field, "Nodule follow-up")  # typing replaces the selected title
        dialog.accept()
    answer_next_dialog(seen, look)
    next(a for a in listed.context_menu(cid).actions() if a.text() == "Rename…").trigger()
    assert shown["field_width"] > shown["title_width"]  # the whole title fits in the field
    assert shown["selected"] == title
    assert store.load(cid).title == "Nodule follow-up"


def test_the_study_sources_are_kept_with_its_conversations_only(store, tmp_path):
    key, other = store.study_key("a"), store.study_key("b")
    store.remember_sources(key, [str(tmp_path / "a")])
    assert store.sources(key) == []  # a study without conversations leaves nothing behind
    first = store.create_conversation("one", key)
    second = store.create_conversation("two", key)
    store.create_conversation("elsewhere", other)
    store.remember_sources(key, [str(tmp_path / "a"), str(tmp_path / "b.dcm")])
    store.remember_sources(other, [str(tmp_path / "other")])
    assert store.sources(key) == [str(tmp_path / "a"), str(tmp_path / "b.dcm")]
    store.delete_conversation(first)
    assert store.sources(key) != []  # one conversation of the study is left
    store.delete_conversation(second)
    assert store.sources(key) == [] and store.sources(other) == [str(tmp_path / "other")]
    assert str(tmp_path / "a").encode() not in store.path.read_bytes()  # erased, not just unlinked


def test_a_database_of_the_second_schema_is_upgraded(tmp_path):
    path = tmp_path / "old.sqlite3"
    with Store(path) as store:
        cid = store.create_conversation("Old", store.study_key("x"))
    db = sqlite3.connect(path)  # back to the second schema, as an earlier version wrote it
    db.execute("DROP TABLE study_sources")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.load(cid).title == "Old" and store.sources(store.study_key("x")) == []
        store.remember_sources(store.study_key("x"), ["/data/x"])
        assert store.sources(store.study_key("x")) == ["/data/x"]
        store.rename_conversation(cid, "  Renamed  ")
        assert store.load(cid).title == "Renamed"
        with pytest.raises(ValueError):
            store.rename_conversation(cid, "  ")
        with pytest.raises(KeyError):
            store.rename_conversation(cid + 1, "x")


def _marked(listed: ConversationList) -> list[str]:
    """The conversations drawn as chosen: the current item and any selected ones, by title."""
    items = [*listed.list.selectedItems(), *([listed.list.currentItem()] if listed.list.currentItem() else [])]
    return sorted({listed.summaries[i.data(Qt.ItemDataRole.UserRole)].title for i in items})


def test_only_the_conversation_on_screen_is_marked(listed, store, qtbot):
    ct = store.study_key("ct")
    first = store.create_conversation("CT · first look", ct)
    second = store.create_conversation("CT · follow-up", ct)
    listed.show_study(ct)
    listed.opened.connect(listed.set_current)  # the chat opens what is chosen
    listed.set_current(first)
    assert _marked(listed) == ["CT · first look"]

    # A right-click opens the menu of the conversation under the pointer; the one on screen stays marked.
    shown = []
    on_next_menu(lambda menu: (shown.append([a.text() for a in menu.actions()]), menu.close()))
    where = listed.list.visualItemRect(listed.item_of(second)).center()
    QTest.mousePress(listed.list.viewport(), Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, where)
    QApplication.sendEvent(listed.list.viewport(), QContextMenuEvent(  # as the window system follows the press
        QContextMenuEvent.Reason.Mouse, where, listed.list.viewport().mapToGlobal(where)))
    QTest.mouseRelease(listed.list.viewport(), Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, where)
    assert "Rename…" in shown[0]
    assert _marked(listed) == ["CT · first look"]

    # A chosen conversation that cannot open now (a question is being answered) leaves the mark where it was.
    listed.opened.disconnect()
    click(listed, 1)
    assert listed.list.item(1) is listed.item_of(second) and _marked(listed) == ["CT · first look"]
    listed.opened.connect(listed.set_current)
    click(listed, 1)
    assert _marked(listed) == ["CT · follow-up"]
    listed.set_current(None)  # a new conversation, or a study without any: nothing marked
    assert _marked(listed) == []
    listed.show_study(store.study_key("mr"))
    assert _marked(listed) == []


def test_the_list_starts_at_its_top_for_a_study_without_conversations(listed, store, qtbot):
    ct = store.study_key("ct")
    ids = [store.create_conversation(f"CT · question {i}", ct) for i in range(30)]
    listed.resize(320, 200)  # room for a few rows: the list scrolls
    listed.show_study(ct)
    listed.set_current(ids[0])  # the oldest, at the bottom: scrolled to it
    assert listed.list.verticalScrollBar().value() > 0
    listed.show_study(store.study_key("mr"))  # another study, without conversations
    listed.set_current(None)
    assert listed.list.verticalScrollBar().value() == 0  # "This study" and its note in view, not a row below


# --- in the main window, with the real engine ----------------------------------------------------------------------

@pytest.fixture
def data_dir(tmp_path, monkeypatch, converted):
    folder = tmp_path / "data"
    shutil.copytree(converted("qwen2", "original", "Q8_0"), folder / "models" / "tiny")
    monkeypatch.setenv("HUATUO_DATA_DIR", str(folder))
    Settings(greedy=True, max_new_tokens=8, acknowledged="2026-01-01T00:00:00+00:00").save(folder)
    return folder


def open_and_wait(window, qtbot, path) -> None:
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.current_path == str(path) and window.series_viewer.shown is not None,
                    timeout=10_000)


def test_a_conversation_of_another_study_opens_that_study_again(data_dir, qtbot, tmp_path, monkeypatch):
    ct_folder, mr_folder = tmp_path / "ct", tmp_path / "mr"
    for folder, name in ((ct_folder, "CT_small.dcm"), (mr_folder, "MR_small.dcm")):
        folder.mkdir()
        shutil.copy(get_testdata_file(name), folder / name)
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    chat, listed = window.chat, window.chat.conversations

    open_and_wait(window, qtbot, ct_folder)
    window.attach_view(False)
    chat.input.setPlainText("What is shown?")
    chat.send()
    with qtbot.waitSignal(chat.request.finished, timeout=ANSWER_TIMEOUT_MS):
        pass
    ct_conversation = chat.conversation.id
    assert window.store.sources(window.store.study_key(CT_UID)) == [str(ct_folder.resolve())]

    chat.status.setText("Exported to ct.md.")  # a message about the CT's conversation ...
    open_and_wait(window, qtbot, mr_folder)
    assert chat.conversation is None  # the MR has none yet; the CT's is still listed, below, not marked
    assert listed.list.currentItem() is None and not listed.list.selectedItems()
    assert chat.status.text() == ""  # ... left with it
    title = window.store.load(ct_conversation).title
    assert listed.headings() == ["# This study", "# No conversation about it yet", "# Other studies", title]
    click(listed, 3)
    qtbot.waitUntil(lambda: window.current_path == str(ct_folder.resolve()) and chat.study_key ==
                    window.store.study_key(CT_UID), timeout=10_000)
    assert chat.conversation.id == ct_conversation and window.current_series.modality == "CT"
    assert listed.headings()[:2] == ["# This study", title]

    # The CT's files are gone: the conversation still opens, and the status line says why the study does not.
    open_and_wait(window, qtbot, mr_folder)
    shutil.rmtree(ct_folder)
    click(listed, 3)
    assert chat.conversation.id == ct_conversation and window.current_series.modality == "MR"
    assert "no longer where it was opened from" in window.statusBar().currentMessage()
    assert str(ct_folder.resolve()) in window.statusBar().currentMessage()

    # An MR image for the CT's conversation: asked first; Cancel attaches nothing, New conversation starts one.
    seen = []
    answer_next_dialog(seen, press("Cancel"))
    window.attach_view(False)
    assert chat.pending_images == [] and f"“{title}”" in seen[0] and "another study" in seen[0]
    answer_next_dialog(seen, press("Attach to this conversation"))
    window.attach_view(False)
    assert len(chat.pending_images) == 1 and chat.conversation.id == ct_conversation
    window.attach_view(False)  # the same conversation and study again: not asked twice
    assert len(seen) == 2 and len(chat.pending_images) == 2
    chat.clear_attachments()
    window.studies.accepted.clear()
    answer_next_dialog(seen, press("New conversation"))
    window.attach_view(False)
    assert chat.conversation is None and len(chat.pending_images) == 1

    # Export from the list's menu: the save dialog proposes the conversation's title and date.
    proposed = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: proposed.append(a[2]) or ("", ""))
    listed.export_requested.emit(ct_conversation, "md")
    created = window.store.load(ct_conversation).created[:10]
    assert title == "CT · What is shown?" and proposed[0].endswith(f"/CT · What is shown {created}.md")
    window.close()
