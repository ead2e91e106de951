"""The whole app flow through the real engine with the tiny model: open a study, ask with two images, stream,
stop, regenerate, edit, export, restart; an engine crash and a killed app lose nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from app.settings import Settings
from app.store import Store
from app.ui.main import MainWindow
from tests.support.network_guard import no_network  # noqa: F401 (a fixture)

PATIENT_NAME, PATIENT_ID = "CompressedSamples^CT1", "1CT1"  # what CT_small.dcm carries
ANSWER_TIMEOUT_MS = 120_000


@pytest.fixture
def data_dir(tmp_path, monkeypatch, converted):
    folder = tmp_path / "data"
    shutil.copytree(converted("qwen2", "original", "Q8_0"), folder / "models" / "tiny")
    monkeypatch.setenv("HUATUO_DATA_DIR", str(folder))
    settings = Settings(greedy=True, max_new_tokens=48, acknowledged="2026-01-01T00:00:00+00:00")
    settings.save(folder)
    return folder


def open_window(qtbot) -> MainWindow:
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    return window


def close_window(window: MainWindow) -> None:
    window.close()


def open_ct(window, qtbot):
    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=10_000)


def answer_of(qtbot, request):
    """Wait for the request's answer (its signals reach the GUI through the event loop: connecting now misses none)."""
    with qtbot.waitSignal(request.finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        pass
    return blocker.args[0]


def ask(window, qtbot, question: str):
    window.chat.input.setPlainText(question)
    window.chat.send()
    return answer_of(qtbot, window.chat.request)


def test_ask_stop_regenerate_edit_export_restart(data_dir, qtbot, tmp_path, no_network):  # noqa: F811
    window = open_window(qtbot)
    assert "tiny" in window.model_picker.combo.currentText() or "Q8_0" in window.model_picker.combo.currentText()
    open_ct(window, qtbot)
    window.attach_view(False)
    window.series_viewer.scale(2.0, 2.0)  # the second image: only the zoomed region
    window.attach_view(True)
    assert len(window.chat.pending_images) == 2

    pieces = []
    window.chat.input.setPlainText("Describe this image. 请描述。")
    window.chat.send()
    window.chat.request.text.connect(pieces.append)
    first = answer_of(qtbot, window.chat.request)
    assert first.finish in ("stop", "length") and pieces and "".join(pieces) == first.text
    conv = window.chat.conversation
    assert len(conv.turns) == 1 and len(conv.turns[0].image_shas) == 2 and conv.turns[0].answer == first.text
    assert "Describe this image" in window.chat.transcript_text()

    # Stop as soon as the first piece arrives: the partial answer is kept and marked.
    window.settings.max_new_tokens = 400
    window.chat.input.setPlainText("And the second question?")
    window.chat.send()
    window.chat.request.text.connect(lambda _piece: window.chat.stop())
    stopped = answer_of(qtbot, window.chat.request)
    assert stopped.finish == "cancelled"
    assert window.chat.conversation.turns[-1].finish == "cancelled"
    window.settings.max_new_tokens = 48

    window.chat.regenerate()
    assert answer_of(qtbot, window.chat.request).finish in ("stop", "length")
    assert len(window.chat.conversation.turns) == 2

    window.chat.edit_last()
    assert window.chat.input.toPlainText() == "And the second question?"
    edited = ask(window, qtbot, "An edited second question")
    turns = window.chat.conversation.turns
    assert [t.question for t in turns] == ["Describe this image. 请描述。", "An edited second question"]
    assert turns[-1].answer == edited.text

    exports = {}
    window.chat.status.transient_ms = 1000
    for fmt in ("md", "html", "pdf"):
        exports[fmt] = tmp_path / f"conversation.{fmt}"
        task = window.chat.export(exports[fmt], fmt)  # in the background: the window stays responsive
        qtbot.waitUntil(lambda task=task: task.finished, timeout=120_000)
        assert exports[fmt].stat().st_size > 0 and window.chat.status.text().startswith("Exported to")
    qtbot.waitUntil(lambda: window.chat.status.text() == "", timeout=5000)  # it showed a while, then left
    html = exports["html"].read_text(encoding="utf-8")
    assert "An edited second question" in html and "not for diagnosis" in html and html.count("<img") >= 2
    for fmt in ("md", "html"):
        text = exports[fmt].read_text(encoding="utf-8")
        assert PATIENT_NAME not in text and PATIENT_ID not in text
    assert PATIENT_NAME.encode() not in exports["pdf"].read_bytes()
    conversation_id = window.chat.conversation.id
    close_window(window)

    # The audit log has one record per question, with hashes only.
    audit = (data_dir / "audit.jsonl").read_text(encoding="utf-8")
    assert audit.count("\n") == 4 and "edited" not in audit and PATIENT_NAME not in audit
    assert PATIENT_NAME.encode() not in (data_dir / "conversations.sqlite3").read_bytes()

    restarted = open_window(qtbot)
    open_ct(restarted, qtbot)
    assert restarted.chat.conversation is not None and restarted.chat.conversation.id == conversation_id
    assert "An edited second question" in restarted.chat.transcript_text()
    close_window(restarted)
    assert no_network == []  # nothing tried to leave the machine


def test_engine_crash_mid_answer_keeps_the_conversation(data_dir, qtbot):
    window = open_window(qtbot)
    open_ct(window, qtbot)
    window.attach_view(False)
    window.settings.max_new_tokens = 400
    failures = []
    killed = []

    def kill_engine(_piece):
        if not killed:
            killed.append(window.runner.engine.pid)
            os.kill(killed[0], signal.SIGKILL)

    window.chat.input.setPlainText("First question")
    window.chat.send()
    window.chat.request.text.connect(kill_engine)
    window.chat.request.failed.connect(lambda kind, message: failures.append((kind, message)))
    qtbot.waitUntil(lambda: bool(failures), timeout=ANSWER_TIMEOUT_MS)
    assert failures[0][0] == "crashed" and "stopped unexpectedly" in window.chat.status.text()
    turn = window.chat.conversation.turns[-1]
    assert turn.finish == "error" and turn.question == "First question"

    window.settings.max_new_tokens = 24
    window.chat.regenerate()  # the engine restarts for the next request
    answered = answer_of(qtbot, window.chat.request)
    assert answered.finish in ("stop", "length")
    assert window.chat.conversation.turns[-1].answer == answered.text
    close_window(window)


KILLED_APP = textwrap.dedent("""
    import os, signal, sys
    from PySide6.QtWidgets import QApplication
    from pydicom.data import get_testdata_file
    from app.settings import Settings
    from app.ui.main import MainWindow

    app = QApplication([])
    window = MainWindow(Settings.load())
    window.show()
    window.open_path(get_testdata_file("CT_small.dcm"))
    while window.series_viewer.shown is None:
        app.processEvents()
    window.settings.max_new_tokens = 400
    window.attach_view(False)
    seen = []

    def on_text(piece):
        seen.append(piece)
        if len(seen) == 2:
            print("KILLING", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    window.chat.input.setPlainText("A question the app dies during")
    window.chat.send()
    window.chat.request.text.connect(on_text)
    app.exec()
""")


def test_killed_app_keeps_the_partial_answer(data_dir):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HUATUO_DATA_DIR=str(data_dir))
    done = subprocess.run([sys.executable, "-c", KILLED_APP], env=env, capture_output=True, text=True, timeout=180,
                          cwd=os.getcwd())
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    store = Store(data_dir / "conversations.sqlite3")
    [summary] = store.conversations()
    turn = store.load(summary.id).turns[-1]
    store.close()
    assert turn.question == "A question the app dies during"
    assert turn.finish == "pending" and len(turn.answer) > 0  # the pieces streamed before the kill


def test_a_full_disk_keeps_the_question_and_the_app_up(data_dir, qtbot):
    window = open_window(qtbot)
    open_ct(window, qtbot)
    window.attach_view(False)
    db = window.store._db  # a real SQLITE_FULL: the database may not grow past its current size
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    window.chat.input.setPlainText("A question the disk has no room for")
    window.chat.send()
    assert "not sent" in window.chat.status.text() and "disk full" in window.chat.status.text()
    assert window.chat.input.toPlainText() == "A question the disk has no room for"  # nothing typed is lost
    assert len(window.chat.pending_images) == 1 and not window.runner.busy
    db.execute("PRAGMA max_page_count = 1073741823")  # room again: the same question goes through
    window.chat.send()
    answered = answer_of(qtbot, window.chat.request)
    assert window.chat.conversation.turns[-1].answer == answered.text
    close_window(window)


def test_an_unreadable_database_is_set_aside_and_a_new_one_started(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store, note = Store.open_or_set_aside(path)
    store.create_conversation("works")
    store.close()
    [aside] = tmp_path.glob("conversations.sqlite3.unreadable-*")
    assert aside.read_bytes() == b"this is not a database" * 100  # kept whole, for recovery
    assert aside.name in note and "conversations.sqlite3" in note


def test_the_export_dialog_starts_in_documents_with_the_title_and_date(qapp):
    from types import SimpleNamespace

    from PySide6.QtCore import QStandardPaths

    from app.ui.chat_export import export_folder, export_name

    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    assert export_folder() in ([Path(documents)] if Path(documents).is_dir() else []) + [Path.home()]
    conversation = SimpleNamespace(title='CT: chest/abdomen "follow-up"?', created="2026-12-03T10:00:00+00:00")
    assert export_name(conversation) == "CT chest abdomen follow-up 2026-12-03"


def test_a_conversation_takes_at_most_six_images(data_dir, qtbot):
    window = open_window(qtbot)
    open_ct(window, qtbot)
    for _ in range(4):
        window.attach_view(False)
    assert len(window.chat.pending_images) == 4
    assert ask(window, qtbot, "What is shown?").finish in ("stop", "length")
    # Six in all, counting those already asked about: two more are taken, a seventh is refused and said why.
    window.attach_view(False)
    window.attach_view(True)
    assert len(window.chat.pending_images) == 2
    window.attach_view(False)
    assert len(window.chat.pending_images) == 2
    assert "At most 6 images per conversation" in window.chat.status.text()
    assert ask(window, qtbot, "And these two?").finish in ("stop", "length")
    assert [len(turn.image_shas) for turn in window.chat.conversation.turns] == [4, 2]
    close_window(window)
