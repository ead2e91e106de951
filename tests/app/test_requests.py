"""Engine requests through the real engine (tiny model): each window's question is its own request, answered in the
order asked; a window's Stop stops only its own question; the audit record names the model and settings of the
moment the question was asked."""

from __future__ import annotations

import gc
import json
import shutil
import threading
import weakref
from dataclasses import asdict
from functools import partial

import pytest

from app.audit import AuditLog, sha256_text
from app.practice import sample_deck_path
from app.settings import Settings
from app.ui.engine_runner import EngineRunner
from app.ui.main import MainWindow
from app.ui.practice import PracticeWindow
from inference.prompt import Turn
from inference.sampling import SamplingSettings
from tests.support.qt_threads import destroyed_on as track_destruction

ANSWER_TIMEOUT_MS = 120_000
LONG = SamplingSettings.greedy_decoding(400)  # long enough to still be answering when the other window asks


@pytest.fixture
def data_dir(tmp_path, monkeypatch, converted):
    """A data folder with two installed models: "tiny" and "tiny-b" (the same files under another name)."""
    folder = tmp_path / "data"
    shutil.copytree(converted("qwen2", "original", "Q8_0"), folder / "models" / "tiny")
    shutil.copytree(folder / "models" / "tiny", folder / "models" / "tiny-b")
    manifest = folder / "models" / "tiny-b" / "manifest.json"
    manifest.write_text(json.dumps(dict(json.loads(manifest.read_text()), name="tiny-b")))
    monkeypatch.setenv("HUATUO_DATA_DIR", str(folder))
    Settings(greedy=True, max_new_tokens=24, acknowledged="2026-01-01T00:00:00+00:00").save(folder)
    return folder


def model_name(folder) -> str:
    return json.loads((folder / "manifest.json").read_text())["name"]


def audit_records(data_dir) -> list[dict]:
    return [json.loads(line) for line in (data_dir / "audit.jsonl").read_text(encoding="utf-8").splitlines()]


def open_windows(qtbot, sampling: SamplingSettings | None = LONG) -> tuple[MainWindow, PracticeWindow]:
    """The main window and a practice window sharing its engine runner and audit log, as in the app."""
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    practice = PracticeWindow(window.runner, window, sampling=sampling, audit=window.audit)
    practice.open_deck(sample_deck_path())
    return window, practice


def reveal(practice: PracticeWindow):
    """Answer the case on screen and reveal it: the model is asked. Returns the practice window's request."""
    case = practice.case
    if practice.item.is_multiple_choice:
        case.option_buttons[0].click()
    else:
        case.read_edit.setPlainText("grey, nothing focal")
    practice.reveal()
    assert practice.model_answer.request is not None
    return practice.model_answer.request


def answer_of(qtbot, request):
    """Wait for the request's answer (its signals reach the GUI through the event loop: connecting now misses none)."""
    with qtbot.waitSignal(request.finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        pass
    return blocker.args[0]


def test_requests_run_one_at_a_time_in_order_and_a_waiting_one_cancels_alone(qtbot, converted, tmp_path):
    runner = EngineRunner()
    runner.set_model(converted("qwen2", "original", "Q8_0"))
    audit = AuditLog(tmp_path / "audit.jsonl")
    events: list[tuple] = []
    requests = {}
    for name in ("a", "b", "c"):
        request = runner.request([Turn(f"Question {name}", 0)], [], SamplingSettings.greedy_decoding(12),
                                 owner=name, audit=audit)
        request.waiting.connect(lambda ahead, name=name: events.append((name, "waits for", ahead.owner)))
        request.started.connect(lambda name=name: events.append((name, "started")))
        request.finished.connect(lambda answer, name=name: events.append((name, "finished", answer.finish)))
        request.failed.connect(lambda kind, _message, name=name: events.append((name, "failed", kind)))
        request.finished.connect(partial(lambda request, _answer: None, request))  # a slot that holds its request
        requests[name] = request
    for request in requests.values():
        runner.submit(request)
    assert events == [("a", "started"), ("b", "waits for", "a"), ("c", "waits for", "a")]
    assert runner.busy and requests["b"].state == "queued"
    requests["b"].cancel()  # only b: a goes on, c still runs after it
    qtbot.waitUntil(lambda: sum(event[1] in ("finished", "failed") for event in events) == 3,
                    timeout=ANSWER_TIMEOUT_MS)
    runner.shutdown()

    ends = {event[0]: event for event in events if event[1] in ("finished", "failed")}
    assert ends["a"][2] in ("stop", "length") and ends["c"][2] in ("stop", "length")
    assert ends["b"] == ("b", "finished", "cancelled") and not requests["b"].ran
    assert ("b", "started") not in events  # a cancelled waiting request never reaches the engine
    assert events.index(ends["a"]) < events.index(("c", "started"))  # c ran after a had ended
    assert [r.state for r in requests.values()] == ["ended"] * 3 and not runner.busy
    records = [json.loads(line) for line in audit.path.read_text().splitlines()]
    assert sorted(r["question_sha256"] for r in records) == sorted(sha256_text(f"Question {n}") for n in "abc")
    [cancelled] = [r for r in records if r["question_sha256"] == sha256_text("Question b")]
    assert cancelled["finish"] == "cancelled" and cancelled["answer_sha256"] == sha256_text("")
    assert audit.verify() == (True, None)
    alive = [weakref.ref(request) for request in requests.values()]
    del request, requests
    gc.collect()
    assert [ref() for ref in alive] == [None, None, None]  # an ended request is not kept by its slots


def test_an_ended_request_its_window_let_go_is_destroyed_on_the_gui_thread(qtbot, converted):
    """A request is a Qt object: the engine client thread must never drop its last reference (Qt objects are
    destroyed on their own thread), also when the next request makes that thread let go of the one before."""
    runner = EngineRunner()
    runner.set_model(converted("qwen2", "original", "Q8_0"))
    destroyed_on: list[str] = []
    for name in ("first", "second"):
        request = runner.request([Turn(f"Question {name}", 0)], [], SamplingSettings.greedy_decoding(4), owner=name)
        destroyed_on += [track_destruction(request)]
        with qtbot.waitSignal(request.finished, timeout=ANSWER_TIMEOUT_MS):
            runner.submit(request)
        del request  # the window lets go of its ended request
        gc.collect()
    runner.shutdown()
    gc.collect()
    assert destroyed_on == [[threading.current_thread().name]] * 2


def test_the_chats_stop_leaves_the_practice_answer_running(data_dir, qtbot):
    window, practice = open_windows(qtbot)
    theirs = reveal(practice)
    chat = window.chat
    seen: dict = {}
    chat_ends = []

    def on_practice_piece(_piece):
        if "request" in seen:
            return
        chat.stop()  # the chat has no question yet: nothing of its own to stop
        chat.input.setPlainText("A question while practice answers")
        chat.send()
        seen["request"] = chat.request
        chat.request.finished.connect(chat_ends.append)
        seen["status"] = chat.status.text()
        seen["stop enabled"] = chat.stop_button.isEnabled()
        chat.stop_button.click()  # stops the chat's waiting question, and only it

    theirs.text.connect(on_practice_piece)
    practice_answer = answer_of(qtbot, theirs)
    assert practice_answer.finish in ("stop", "length") and practice_answer.text.strip()  # it finished normally
    assert practice.model_answer.text == practice_answer.text
    assert seen["status"] == "Waiting for the practice answer to finish…" and seen["stop enabled"]
    qtbot.waitUntil(lambda: bool(chat_ends), timeout=ANSWER_TIMEOUT_MS)
    assert chat_ends[0].finish == "cancelled" and chat_ends[0].text == "" and not seen["request"].ran
    turn = chat.conversation.turns[-1]
    assert turn.question == "A question while practice answers" and turn.finish == "cancelled"
    assert chat.status.text() == "Stopped." and chat.request is None and chat.regenerate_button.isEnabled()
    finishes = [r["finish"] for r in audit_records(data_dir)]
    assert sorted(finishes) == sorted(["cancelled", practice_answer.finish])
    window.close()


def test_a_chat_question_sent_while_practice_answers_is_answered_after_it(data_dir, qtbot):
    window, practice = open_windows(qtbot)
    theirs = reveal(practice)
    chat = window.chat
    order: list[str] = []
    seen: dict = {}
    theirs.finished.connect(lambda _answer: order.append("practice finished"))

    def on_practice_piece(_piece):
        if "request" in seen:
            return
        chat.input.setPlainText("Is the image uniform?")
        chat.send()
        mine = seen["request"] = chat.request
        mine.started.connect(lambda: order.append("chat started"))
        mine.finished.connect(lambda answer: (order.append("chat finished"), seen.setdefault("answer", answer)))
        seen["status"] = chat.status.text()
        seen["input"] = chat.input.toPlainText()

    theirs.text.connect(on_practice_piece)
    qtbot.waitUntil(lambda: "answer" in seen, timeout=ANSWER_TIMEOUT_MS)
    assert order == ["practice finished", "chat started", "chat finished"]  # never dropped: answered after it
    assert seen["status"] == "Waiting for the practice answer to finish…" and seen["input"] == ""
    answer = seen["answer"]
    assert answer.finish in ("stop", "length") and answer.text.strip()
    turn = chat.conversation.turns[-1]
    assert turn.question == "Is the image uniform?" and turn.answer == answer.text and turn.finish == answer.finish
    assert "Is the image uniform?" in chat.transcript_text()
    window.close()


def test_the_audit_record_names_the_model_and_settings_at_question_time(data_dir, qtbot):
    tiny, tiny_b = data_dir / "models" / "tiny", data_dir / "models" / "tiny-b"
    window, practice = open_windows(qtbot, sampling=None)  # practice: the saved settings at question time
    chat = window.chat
    chat.set_model(tiny)
    window.settings.greedy, window.settings.max_new_tokens = True, 400
    asked_with = asdict(window.settings.sampling())
    chat.input.setPlainText("First question")
    chat.send()
    first = chat.request

    def change_everything(_piece):  # mid-answer: other settings, another model; then stop
        if window.settings.max_new_tokens == 400:
            window.settings.greedy, window.settings.temperature, window.settings.max_new_tokens = False, 0.9, 7
            chat.set_model(tiny_b)
            chat.stop()

    first.text.connect(change_everything)
    assert answer_of(qtbot, first).finish == "cancelled"
    [record] = audit_records(data_dir)
    assert record["model"]["name"] == model_name(tiny) != "tiny-b"
    assert record["settings"] == asked_with and record["settings"]["max_new_tokens"] == 400
    assert record["settings"]["greedy"] is True and record["finish"] == "cancelled"

    # The next question is asked of the new model, with the new settings, and recorded so.
    chat.input.setPlainText("Second question")
    chat.send()
    assert answer_of(qtbot, chat.request).finish in ("stop", "length")
    second = audit_records(data_dir)[-1]
    assert second["model"]["name"] == "tiny-b" and window.runner.engine.pair.text_path.parent == tiny_b
    assert (second["settings"]["greedy"], second["settings"]["temperature"], second["settings"]["max_new_tokens"]) \
        == (False, 0.9, 7)

    # Practice the same way: the model and the saved settings of the moment it asked.
    Settings(greedy=True, max_new_tokens=300).save(data_dir)
    theirs = reveal(practice)

    def change_back(_piece):
        if Settings.load().max_new_tokens == 300:
            Settings(greedy=False, temperature=0.5, max_new_tokens=5).save(data_dir)
            chat.set_model(tiny)
            practice.model_answer.stop()

    theirs.text.connect(change_back)
    assert answer_of(qtbot, theirs).finish == "cancelled"
    third = audit_records(data_dir)[-1]
    assert third["model"]["name"] == "tiny-b" and third["study_key"] == practice.deck.sha256
    assert third["settings"] == asdict(SamplingSettings.greedy_decoding(300))
    assert window.audit.verify() == (True, None)
    window.close()


def test_opening_another_study_while_the_chat_is_answered_keeps_the_answer(data_dir, qtbot):
    window, _practice = open_windows(qtbot)
    chat = window.chat
    chat.set_study(sha256_text("first study"), "CT", None)
    chat.input.setPlainText("A question about the first study")
    chat.send()
    request, conversation_id = chat.request, chat.conversation.id
    request.text.connect(lambda _piece: chat.set_study(sha256_text("second study"), "MR", None))
    answer = answer_of(qtbot, request)
    assert answer.text.strip() and window.store.load(conversation_id).turns[-1].answer == answer.text
    assert chat.conversation is None and chat.transcript_text() == ""  # the second study has no conversation yet
    chat.set_study(sha256_text("first study"), "CT", None)
    assert chat.conversation.id == conversation_id and chat.conversation.turns[-1].answer == answer.text
    assert "A question about the first study" in chat.transcript_text()
    window.close()
