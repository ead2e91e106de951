"""The chat's habits from LM Studio and Jan, on real widgets: the send key and its setting."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QBuffer, QByteArray, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from app.audit import AuditLog
from app.settings import Settings
from app.store import Store
from app.ui.chat import ChatPanel
from app.ui.engine_runner import EngineRunner
from app.ui.settings_dialog import SettingsDialog

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
