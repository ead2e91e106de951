"""The chat's habits from LM Studio and Jan, on real widgets: the send key and its setting, attachments as
thumbnails, copying any answer and editing any earlier question."""

from __future__ import annotations

import shutil

import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import QBuffer, QByteArray, QPoint, Qt
from PySide6.QtGui import QGuiApplication, QImage, QTextCursor
from PySide6.QtTest import QTest

from app.audit import AuditLog
from app.settings import Settings
from app.store import Store
from app.ui.chat import ChatPanel
from app.ui.chat_model_picker import size_text
from app.ui.engine_runner import EngineRunner
from app.ui.main import MainWindow
from app.ui.settings_dialog import SettingsDialog
from inference.engine import Engine
from inference.prompt import Turn
from inference.store.manifest import Manifest
from inference.store.models import default_model, import_pair, set_default_model
from tests.support.menus import answer_next_box, on_next_menu
from tests.support.network_guard import no_network  # noqa: F401 (a fixture)

SHIFT, CTRL = Qt.KeyboardModifier.ShiftModifier, Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def make_chat(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    made = []

    def make(settings: Settings | None = None) -> ChatPanel:
        store = Store(tmp_path / f"conversations{len(made)}.sqlite3")
        chat = ChatPanel(EngineRunner(), store, AuditLog(tmp_path / "audit.jsonl"), settings or Settings())
        qtbot.addWidget(chat)
        chat.show()
        chat.activateWindow()
        chat.input.setFocus()
        qtbot.waitUntil(chat.input.hasFocus)
        made.append(chat)
        return chat

    yield make
    for chat in made:
        chat.runner.shutdown()
        chat.store.close()


def sent_by(chat: ChatPanel, key, modifier=Qt.KeyboardModifier.NoModifier) -> bool:
    """Press the key in the question box: whether the panel tried to send (with no model it says so)."""
    chat.status.clear()
    QTest.keyClick(chat.input, key, modifier)
    return chat.status.text().startswith("No model is installed")


def test_enter_sends_and_shift_enter_starts_a_new_line(make_chat):
    chat = make_chat()
    QTest.keyClicks(chat.input, "first line")
    assert not sent_by(chat, Qt.Key.Key_Return, SHIFT)
    QTest.keyClicks(chat.input, "second line")
    assert chat.input.toPlainText() == "first line\nsecond line"
    assert sent_by(chat, Qt.Key.Key_Return)
    assert sent_by(chat, Qt.Key.Key_Enter, Qt.KeyboardModifier.KeypadModifier)
    assert sent_by(chat, Qt.Key.Key_Return, CTRL)  # Ctrl+Enter sends in both modes
    assert chat.input.toPlainText() == "first line\nsecond line"  # not sent (no model): nothing lost
    assert "Enter to send, Shift+Enter for a new line" in chat.input.placeholderText()
    assert "Enter to send" in chat.input.toolTip() and "Enter to send" in chat.input.whatsThis()


def test_the_setting_swaps_the_keys(make_chat, qtbot):
    chat = make_chat(Settings(enter_sends=False))
    QTest.keyClicks(chat.input, "one")
    assert not sent_by(chat, Qt.Key.Key_Return)
    QTest.keyClicks(chat.input, "two")
    assert chat.input.toPlainText() == "one\ntwo"
    assert sent_by(chat, Qt.Key.Key_Return, CTRL)
    assert "Ctrl+Enter to send, Enter for a new line" in chat.input.placeholderText()

    dialog = SettingsDialog(chat.settings)
    qtbot.addWidget(dialog)
    assert not dialog.enter_sends.isChecked()
    dialog.enter_sends.setChecked(True)
    chat.settings.enter_sends = dialog.result_settings().enter_sends  # as the window applies a dialog's result
    chat.apply_settings()
    assert sent_by(chat, Qt.Key.Key_Return)
    assert "Enter to send, Shift+Enter" in chat.input.placeholderText()


def test_the_send_key_setting_is_saved(tmp_path):
    Settings(enter_sends=False).save(tmp_path)
    assert Settings.load(tmp_path).enter_sends is False
    assert Settings().enter_sends is True


def _png(value: int, size=(40, 30)) -> bytes:
    image = QImage(*size, QImage.Format.Format_Grayscale8)
    image.fill(value)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QBuffer.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data)


def test_attachments_are_thumbnails_each_removable_and_a_zoomed_region_is_marked(make_chat, qtbot):
    chat = make_chat()
    assert chat.attachments.thumbs == [] and chat.attachments.empty.isVisibleTo(chat)
    whole, zoomed, third = _png(40), _png(200), _png(90, (30, 40))
    chat.add_attachment(whole, "CT 1/1")
    chat.add_attachment(zoomed, "CT 1/1", zoomed=True)
    chat.add_attachment(third, "")
    thumbs = chat.attachments.thumbs
    assert len(thumbs) == 3 and not chat.attachments.empty.isVisibleTo(chat)
    assert all(thumb.isVisibleTo(chat) and not thumb.image.pixmap().isNull() for thumb in thumbs)
    assert thumbs[0].badge is None and thumbs[2].badge is None
    assert thumbs[1].badge is not None and thumbs[1].badge.text() == "zoomed" and thumbs[1].badge.isVisibleTo(chat)
    assert thumbs[1].toolTip() == "CT 1/1 (zoomed region only)" and thumbs[2].toolTip() == "image 3"
    assert thumbs[0].remove_button.toolTip() == "Remove CT 1/1"
    # The thumbnails sit under the question box, the preparation's progress beside them.
    assert chat.attachments.mapTo(chat, chat.attachments.rect().topLeft()).y() > \
        chat.input.mapTo(chat, chat.input.rect().bottomLeft()).y()
    assert chat.preparation_status.parent() is chat.attachments

    qtbot.mouseClick(thumbs[0].remove_button, Qt.MouseButton.LeftButton)
    assert [(a.png, a.zoomed) for a in chat.pending_images] == [(zoomed, True), (third, False)]
    qtbot.waitUntil(lambda: not thumbs[0].isVisible())
    assert len(chat.attachments.thumbs) == 2 and chat.attachments.thumbs[0].badge is not None
    qtbot.mouseClick(chat.attachments.thumbs[1].remove_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(chat.attachments.thumbs[0].remove_button, Qt.MouseButton.LeftButton)
    assert chat.pending_images == [] and chat.attachments.thumbs == []
    assert chat.attachments.empty.isVisibleTo(chat)


def stored_conversation(chat: ChatPanel, answers: list[str]) -> int:
    """A conversation of one turn per answer, as the chat stores it (no model needed)."""
    store = chat.store
    cid = store.create_conversation("CT · test")
    for i, answer in enumerate(answers):
        turn = store.add_turn(cid, f"Question {i + 1}?", [])
        store.finish_answer(turn, "stop", [1, 2], {}, text=answer)
    chat.open_conversation(cid)
    return cid


def link_point(transcript, href: str) -> QPoint:
    """Where the link to `href` is drawn in the transcript's viewport."""
    block = transcript.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fragment = it.fragment()
            if fragment.charFormat().anchorHref() == href:
                cursor = QTextCursor(transcript.document())
                cursor.setPosition(fragment.position() + fragment.length() // 2)
                return transcript.cursorRect(cursor).center()
            it += 1
        block = block.next()
    raise AssertionError(f"no link to {href}")


def test_any_answer_is_copied_as_plain_text_from_its_link_or_menu(make_chat, qtbot):
    chat = make_chat()
    chat.resize(500, 900)
    untrusted = "**Bold** <b>not html</b> <a href='http://example.com'>x</a>\n\n- item"
    stored_conversation(chat, [untrusted, "The second answer."])
    first, second = chat.conversation.turns
    clipboard = QGuiApplication.clipboard()
    clipboard.clear()
    for href in (f"copy:{first.id}", f"copy:{second.id}", f"edit:{first.id}", f"edit:{second.id}"):
        link_point(chat.transcript, href)  # every turn has both links
    chat.transcript.verticalScrollBar().setValue(0)
    qtbot.mouseClick(chat.transcript.viewport(), Qt.MouseButton.LeftButton,
                     pos=link_point(chat.transcript, f"copy:{first.id}"))
    assert clipboard.text() == untrusted and not clipboard.mimeData().hasHtml()
    assert chat.status.text() == "Answer copied."

    point = link_point(chat.transcript, f"copy:{second.id}")
    assert chat.transcript.turn_at(point).id == second.id
    menu = chat.transcript.menu_at(point)
    copy = next(a for a in menu.actions() if a.text() == "Copy answer")
    assert menu.actions()[0] is copy and copy.isEnabled()
    copy.trigger()
    assert clipboard.text() == "The second answer."


def test_any_earlier_question_can_be_edited_from_its_link_or_menu(make_chat, qtbot):
    chat = make_chat()
    chat.resize(500, 900)
    stored_conversation(chat, ["One.", "Two.", "Three."])
    first, second, third = chat.conversation.turns
    chat.transcript.verticalScrollBar().setValue(0)
    qtbot.mouseClick(chat.transcript.viewport(), Qt.MouseButton.LeftButton,
                     pos=link_point(chat.transcript, f"edit:{first.id}"))
    assert chat.input.toPlainText() == "Question 1?"
    assert "question 1 of 3" in chat.status.text() and "removes the 2 later turns" in chat.status.text()
    QTest.keyClick(chat.input, Qt.Key.Key_Escape)  # Esc leaves the edit
    assert chat.input.toPlainText() == "" and chat._editing_turn is None

    menu = chat.transcript.menu_at(link_point(chat.transcript, f"copy:{second.id}"))
    next(a for a in menu.actions() if a.text() == "Edit question…").trigger()
    assert chat.input.toPlainText() == "Question 2?" and chat._editing_turn == second.id
    assert "question 2 of 3" in chat.status.text() and "removes the 1 later turn." in chat.status.text()
    chat.edit_last()
    assert chat.input.toPlainText() == "Question 3?" and "removes" not in chat.status.text()


def text_point(transcript, text: str) -> QPoint:
    """Where this text is drawn in the transcript's viewport."""
    found = transcript.document().find(text)
    assert not found.isNull(), text
    cursor = QTextCursor(transcript.document())
    cursor.setPosition(found.selectionStart() + 1)
    return transcript.cursorRect(cursor).center()


def refocus(widget, qtbot) -> None:
    """The keyboard's focus back on the widget (after a menu, the offscreen platform gives it to no one)."""
    widget.activateWindow()
    widget.setFocus()
    qtbot.waitUntil(widget.hasFocus)


def test_the_menu_key_and_shift_f10_open_the_menu_of_the_turn_at_the_text_cursor(make_chat, qtbot):
    chat = make_chat()
    chat.resize(500, 560)
    stored_conversation(chat, ["One.", "Two.", "Three."])
    first, second, third = chat.conversation.turns
    transcript = chat.transcript
    clipboard = QGuiApplication.clipboard()
    clipboard.clear()
    shown = []

    def take(action_text):
        def act(menu):
            actions = [a for a in menu.actions() if a.text()]
            shown.append(([a.text() for a in actions], menu.geometry()))
            chosen = next((a for a in actions if a.text() == action_text), None)
            menu.close()
            if chosen is not None:
                chosen.trigger()
        return act

    transcript.verticalScrollBar().setValue(0)
    qtbot.mouseClick(transcript.viewport(), Qt.MouseButton.LeftButton, pos=text_point(transcript, "Question 1?"))
    assert transcript.turn_at_position(transcript.textCursor().position()) is not None
    refocus(transcript, qtbot)
    on_next_menu(take("Copy answer"))
    QTest.keyClick(transcript, Qt.Key.Key_Menu)
    assert clipboard.text() == "One." and chat.status.text() == "Answer copied."
    assert shown[-1][0][:2] == ["Copy answer", "Edit question…"] and "Regenerate answer" not in shown[-1][0]
    cursor_at = transcript.viewport().mapToGlobal(transcript.cursorRect().bottomLeft())
    assert shown[-1][1].topLeft() == cursor_at  # at that turn, not where the mouse is

    # Tab goes through the links in order: the first turn's Edit and Copy, then the second's Edit.
    refocus(transcript, qtbot)
    for _ in range(3):
        QTest.keyClick(transcript, Qt.Key.Key_Tab)
    assert transcript.textCursor().charFormat().anchorHref() == f"edit:{second.id}"
    on_next_menu(take("Edit question…"))
    QTest.keyClick(transcript, Qt.Key.Key_F10, SHIFT)
    assert chat.input.toPlainText() == "Question 2?" and chat._editing_turn == second.id
    chat.cancel_edit()

    # The last turn's menu also asks its question again.
    regenerated = []
    transcript.regenerate_requested.connect(lambda: regenerated.append(True))
    transcript.verticalScrollBar().setValue(transcript.verticalScrollBar().maximum())
    qtbot.mouseClick(transcript.viewport(), Qt.MouseButton.LeftButton, pos=text_point(transcript, "Question 3?"))
    refocus(transcript, qtbot)
    on_next_menu(take("Regenerate answer"))
    QTest.keyClick(transcript, Qt.Key.Key_Menu)
    assert shown[-1][0][:3] == ["Copy answer", "Edit question…", "Regenerate answer"] and regenerated == [True]
    assert third.id == chat.conversation.turns[-1].id


def test_without_the_text_cursor_in_view_the_keyboard_menu_is_the_last_turn_in_view(make_chat, qtbot):
    chat = make_chat()
    chat.resize(500, 560)
    stored_conversation(chat, [f"Answer {i}." for i in range(1, 9)])
    transcript = chat.transcript
    transcript.verticalScrollBar().setValue(0)  # the text cursor stays at the end, out of view
    assert not transcript.viewport().rect().intersects(transcript.cursorRect())
    turn, where = transcript.keyboard_turn()
    bottom = transcript.turn_at(transcript.viewport().rect().bottomLeft())
    assert turn is bottom and turn is not chat.conversation.turns[-1]
    assert transcript.viewport().rect().contains(where)
    menu = transcript.keyboard_menu()
    next(a for a in menu.actions() if a.text() == "Copy answer").trigger()
    assert QGuiApplication.clipboard().text() == turn.answer and turn.answer.startswith("Answer ")


def test_the_status_speaks_of_the_conversation_on_screen(make_chat):
    chat = make_chat()
    first = stored_conversation(chat, ["One.", "Two."])
    chat.edit_question(chat.conversation.turns[0].id)
    assert "Editing question 1 of 2" in chat.status.text()
    chat.new_conversation()  # another conversation on screen: the note of the last one goes, and its edit
    assert chat.status.text() == "" and chat._editing_turn is None
    chat.open_conversation(first)
    chat.copy_last()
    assert chat.status.text() == "Answer copied."
    second = stored_conversation(chat, ["Three."])
    assert chat.conversation.id == second and chat.status.text() == ""
    chat.edit_question(chat.conversation.turns[0].id)
    chat.delete_conversation(second)  # the one on screen, while its question was being edited
    assert chat.status.text() == "Deleted “CT · test”." and chat._editing_turn is None
    chat.delete_conversation(first)  # not on screen: the status stays
    assert chat.status.text() == "Deleted “CT · test”." and chat.conversation is None


# --- with the real engine (the tiny converted model) ------------------------------------------------------------
ANSWER_TIMEOUT_MS = 120_000


@pytest.fixture
def window(tmp_path, monkeypatch, converted, qtbot):
    folder = tmp_path / "data"
    shutil.copytree(converted("qwen2", "original", "Q8_0"), folder / "models" / "tiny")
    monkeypatch.setenv("HUATUO_DATA_DIR", str(folder))
    Settings(greedy=True, max_new_tokens=16, acknowledged="2026-01-01T00:00:00+00:00").save(folder)
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=10_000)
    yield window
    window.close()


def answer_of(qtbot, request):
    with qtbot.waitSignal(request.finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        pass
    return blocker.args[0]


def ask(window, qtbot, question: str):
    window.chat.input.setPlainText(question)
    window.chat.send()
    return answer_of(qtbot, window.chat.request)


def test_editing_an_earlier_question_branches_there_and_reuses_the_cache_before_it(window, qtbot):
    chat = window.chat
    window.attach_view(False)
    png = chat.pending_images[0].png
    first = ask(window, qtbot, "Describe this image.")
    ask(window, qtbot, "Second question?")
    window.series_viewer.scale(2.0, 2.0)
    window.attach_view(True)  # the third question brings an image of its own
    ask(window, qtbot, "Third question?")
    second = chat.conversation.turns[1]
    assert len(chat.store.load(chat.conversation.id).images) == 2

    chat.edit_question(second.id)
    chat.input.setPlainText("An edited second question?")
    seen = []
    answer_next_box(None, seen)  # cancelled: nothing changes
    chat.send()
    assert len(seen) == 1 and "the 1 later turn after it" in seen[0]
    assert chat.request is None and len(chat.store.load(chat.conversation.id).turns) == 3
    assert chat.input.toPlainText() == "An edited second question?"

    answer_next_box("Send and remove 1 later turn", seen)
    chat.send()
    edited = answer_of(qtbot, chat.request)
    assert len(seen) == 2
    turns = chat.conversation.turns
    assert [t.question for t in turns] == ["Describe this image.", "An edited second question?"]
    assert turns[1].id == second.id and turns[1].answer == edited.text
    assert "Third question?" not in chat.transcript_text()
    images = chat.store.load(chat.conversation.id).images  # the removed turn's image went with it
    assert [image.png for image in images.values()] == [png] and list(images) == turns[0].image_shas
    # The engine kept what comes before the edited question: the image is neither encoded nor decoded again.
    assert edited.timings["images_encoded"] == edited.timings["images_decoded"] == 0
    assert edited.timings["reused_tokens"] > 64
    history = [first.as_history("Describe this image.", 1), Turn("An edited second question?")]
    with Engine.from_folder(chat.model_folder, window.settings.engine_settings()) as engine:
        alone = engine.ask(history, [engine.prepare_image(png)], window.settings.sampling())
    assert edited.token_ids == alone.token_ids  # as if the later turns had never been


def test_editing_the_first_question_retitles_a_conversation_the_user_has_not_renamed(window, qtbot):
    chat = window.chat
    ask(window, qtbot, "Describe this image.")
    cid = chat.conversation.id
    assert chat.store.load(cid).title == "CT · Describe this image."
    ask(window, qtbot, "Anything else?")

    chat.edit_question(chat.conversation.turns[1].id)  # a later question leaves the title alone
    chat.input.setPlainText("Anything else at all?")
    chat.send()
    answer_of(qtbot, chat.request)
    assert chat.store.load(cid).title == "CT · Describe this image."

    long = "Is the soft tissue density near the left lateral border a lymph node or a vessel?"
    chat.edit_question(chat.conversation.turns[0].id)
    chat.input.setPlainText(long)
    answer_next_box("Send and remove 1 later turn", [])
    chat.send()
    answer_of(qtbot, chat.request)
    title = chat.store.load(cid).title
    assert title == "CT · Is the soft tissue density near the left latera…"  # shortened as a new one's is
    assert title in chat.conversations.headings()  # the list shows it

    chat.store.rename_conversation(cid, "Node or vessel")  # the user's own title stays
    chat.open_conversation(cid)
    chat.edit_question(chat.conversation.turns[0].id)
    chat.input.setPlainText("Describe this image.")
    chat.send()
    answer_of(qtbot, chat.request)
    assert chat.store.load(cid).title == "Node or vessel"
    assert [t.question for t in chat.store.load(cid).turns] == ["Describe this image."]


# --- the model picker ----------------------------------------------------------------------------------------
def _break(folder):
    """A copy gone wrong: its text GGUF cut to half."""
    text = folder / Manifest.read(folder).text.file
    text.write_bytes(text.read_bytes()[: text.stat().st_size // 2])


def test_the_model_picker_changes_the_model_only_by_the_users_choice(qtbot, converted, tmp_path, monkeypatch,
                                                                     no_network):  # noqa: F811
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    models = tmp_path / "data" / "models"
    tiny = converted("qwen2", "original", "F32")
    manifest = Manifest.read(tiny)
    first = import_pair(tiny / manifest.text.file, tiny / manifest.mmproj.file, models, name="tiny")
    shutil.copytree(first.folder, models / "a-broken")
    _break(models / "a-broken")
    shutil.copytree(first.folder, models / "b-whole")
    set_default_model(models, first.folder)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    picker, combo = window.model_picker, window.model_picker.combo
    assert picker.isVisible() and window.chat.model_folder == first.folder
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert texts[combo.currentIndex()].startswith(first.manifest.name)
    assert texts[combo.currentIndex()].endswith(f" · {size_text(first.size_bytes)}")  # as the manager says it
    assert size_text(4.7e9) == "4.7 GB" and size_text(6.0e6) == "6.0 MB"  # a tiny model is not "0.0 GB"
    broken = combo.findData(str(models / "a-broken"))
    assert texts[broken].endswith("(a-broken) — broken")
    assert not combo.model().item(broken).isEnabled() and "Cannot be used" in combo.itemData(
        broken, Qt.ItemDataRole.ToolTipRole)
    whole = combo.findData(str(models / "b-whole"))
    assert combo.model().item(whole).isEnabled()

    combo.setCurrentIndex(whole)  # not the user's choice: nothing changes
    window.refresh_models()
    assert window.chat.model_folder == first.folder and default_model(models) == first.folder
    assert combo.currentIndex() == combo.findData(str(first.folder))

    window.show_model_manager()
    combo.setFocus()
    for _ in range(combo.count()):  # the user moves up the list: the broken one is skipped
        QTest.keyClick(combo, Qt.Key.Key_Up)
    assert window.chat.model_folder == models / "b-whole" and default_model(models) == models / "b-whole"
    assert combo.currentData() == str(models / "b-whole")
    row = next(r for r, m in enumerate(window.model_manager.models) if m.folder == models / "b-whole")
    assert window.model_manager.installed_table.item(row, 4).text() == "★ default"  # the manager follows

    _break(models / "tiny")  # broken on disk since it was listed: chosen, it is refused and named
    QTest.keyClick(combo, Qt.Key.Key_Down)
    assert default_model(models) == models / "b-whole" and window.chat.model_folder == models / "b-whole"
    assert "tiny" in window.statusBar().currentMessage()
    assert not combo.model().item(combo.findData(str(models / "tiny"))).isEnabled()  # now listed as broken
    window.close()


def test_without_models_there_is_no_picker(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    assert not window.model_picker.combo.isVisible() and "No model installed" in window.model_picker.note.text()
    window.close()
