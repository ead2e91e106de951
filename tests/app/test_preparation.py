"""Images attached in the chat, or a practice case shown, are read by the model while the question is typed: Send
then processes only the question's own tokens, and the answer is the one it would have been (real tiny model)."""

from __future__ import annotations

import hashlib
import io
import shutil
import threading

import pytest
from pydicom.data import get_testdata_file
from PySide6.QtCore import Qt

from app.paths import STATES_FOLDER
from app.practice import build_question, image_png, sample_deck_path
from app.settings import Settings
from app.ui import engine_runner
from app.ui.engine_runner import EngineRunner
from app.ui.main import MainWindow
from app.ui.practice import PracticeWindow
from conversion.verify import sample_image
from inference.engine import Engine
from inference.imageprep import prepare_png
from inference.kv_states import SUFFIX
from inference.prompt import Turn
from inference.sampling import SamplingSettings

TIMEOUT_MS = 120_000


@pytest.fixture
def data_dir(tmp_path, monkeypatch, converted):
    folder = tmp_path / "data"
    shutil.copytree(converted("qwen2", "original", "Q8_0"), folder / "models" / "tiny")
    monkeypatch.setenv("HUATUO_DATA_DIR", str(folder))
    Settings(greedy=True, max_new_tokens=24, acknowledged="2026-01-01T00:00:00+00:00").save(folder)
    return folder


@pytest.fixture
def window(data_dir, qtbot):
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=10_000)
    yield window
    window.close()


def answer_of(qtbot, request):
    with qtbot.waitSignal(request.finished, timeout=TIMEOUT_MS) as blocker:
        pass
    return blocker.args[0]


def unprepared_answer(window, turns, images):
    """The same question to an engine of its own, with the app's settings: no preparation ever ran there."""
    with Engine.from_folder(window.chat.model_folder, window.settings.engine_settings()) as engine:
        prepared = [engine.prepare_image(png) for png in images]
        return engine.ask(turns, prepared, window.settings.sampling())


def test_an_attached_image_is_read_while_the_question_is_typed(window, qtbot):
    chat = window.chat
    window.attach_view(False)
    qtbot.waitUntil(lambda: chat.preparation_status.text() == "ready", timeout=TIMEOUT_MS)
    png = chat.pending_images[0][1]
    question = "Describe this image."
    chat.input.setPlainText(question)
    chat.send()
    answer = answer_of(qtbot, chat.request)
    t = answer.timings
    assert t["images_encoded"] == t["images_decoded"] == 0  # Send processed only the question's tokens
    assert 0 < t["prompt_tokens"] < 64 and t["reused_tokens"] > 64
    assert chat.preparation_status.text() == ""
    assert answer.token_ids == unprepared_answer(window, [Turn(question, 1)], [png]).token_ids

    # A follow-up with a second image: the whole conversation before the question is prepared.
    window.series_viewer.scale(2.0, 2.0)
    window.attach_view(True)
    qtbot.waitUntil(lambda: chat.preparation_status.text() == "ready", timeout=TIMEOUT_MS)
    zoomed = chat.pending_images[0][1]
    chat.input.setPlainText("And this one?")
    chat.send()
    follow = answer_of(qtbot, chat.request)
    assert follow.timings["images_decoded"] == 0 and follow.timings["prompt_tokens"] < 64
    history = [answer.as_history(question, 1), Turn("And this one?", 1)]
    assert follow.token_ids == unprepared_answer(window, history, [png, zoomed]).token_ids


def test_typing_a_first_question_without_images_loads_the_model_before_send(window, qtbot):
    chat = window.chat
    assert window.runner.engine is None  # nothing to prepare yet: no model is loaded for a study alone
    chat.input.setPlainText("What is the normal range of a haematocrit?")
    shown = []  # what the line under the question box says at each stage, after the chat has handled it
    chat.preparation.stage.connect(lambda stage, *_: shown.append((stage, chat.preparation_status.text())))
    qtbot.waitUntil(lambda: window.runner.engine is not None and window.runner.engine.pid is not None,
                    timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: bool(shown), timeout=TIMEOUT_MS)
    assert shown[0] == ("loading", "loading the model…")  # the user sees why a Send now would wait
    loaded = window.runner.engine.pid
    qtbot.waitUntil(lambda: chat.preparation is None, timeout=TIMEOUT_MS)  # ended: nothing else to process
    assert chat.preparation_status.text() == ""  # "ready" speaks of attached images only
    chat.send()
    answer = answer_of(qtbot, chat.request)
    assert answer.token_ids and window.runner.engine.pid == loaded  # answered by the engine loaded while typing


def test_a_send_right_after_attaching_is_answered_as_without_preparation(window, qtbot):
    chat = window.chat
    window.attach_view(False)
    png = chat.pending_images[0][1]
    chat.input.setPlainText("What is shown?")
    chat.send()  # the preparation has barely started: the question continues from wherever it got
    answer = answer_of(qtbot, chat.request)
    assert answer.finish in ("stop", "length")
    assert answer.token_ids == unprepared_answer(window, [Turn("What is shown?", 1)], [png]).token_ids


def test_a_cleared_attachment_discards_the_preparation(window, qtbot):
    chat = window.chat
    window.attach_view(False)
    qtbot.waitUntil(lambda: chat.preparation_status.text() == "ready", timeout=TIMEOUT_MS)
    chat.clear_attachments()
    assert chat.preparation_status.text() == "" and chat.preparation is None
    chat.input.setPlainText("Any question without an image?")
    chat.send()
    answer = answer_of(qtbot, chat.request)
    assert answer.timings["reused_tokens"] < 64  # the prepared image is not part of this conversation
    assert answer.token_ids == unprepared_answer(window, [Turn("Any question without an image?")], []).token_ids


def test_a_removed_attachment_discards_what_was_prepared_with_it(window, qtbot):
    chat = window.chat
    window.attach_view(False)
    window.series_viewer.scale(2.0, 2.0)
    window.attach_view(True)
    qtbot.waitUntil(lambda: chat.preparation_status.text() == "ready", timeout=TIMEOUT_MS)
    zoomed = chat.pending_images[1]
    assert zoomed.zoomed and chat.attachments.thumbs[1].badge is not None
    qtbot.mouseClick(chat.attachments.thumbs[0].remove_button, Qt.MouseButton.LeftButton)  # the whole view goes
    assert chat.pending_images == [zoomed]
    preparation = chat.preparation
    assert preparation is not None and preparation.images == [zoomed.png]  # prepared again, without it
    assert chat.preparation_status.text() != "ready"
    qtbot.waitUntil(lambda: chat.preparation_status.text() == "ready", timeout=TIMEOUT_MS)
    question = "What is shown?"
    chat.input.setPlainText(question)
    chat.send()
    answer = answer_of(qtbot, chat.request)
    assert answer.timings["images_decoded"] == 0 and answer.timings["prompt_tokens"] < 64  # the rest was ready
    assert answer.token_ids == unprepared_answer(window, [Turn(question, 1)], [zoomed.png]).token_ids
    assert len(chat.conversation.turns[0].image_shas) == 1


def test_a_practice_case_is_prepared_while_it_is_read(data_dir, window, qtbot):
    practice = PracticeWindow(window.runner, window, sampling=SamplingSettings.greedy_decoding(12),
                              audit=window.audit)
    practice.open_deck(sample_deck_path())
    preparation = practice.model_answer.preparation
    assert preparation is not None
    with qtbot.waitSignal(preparation.ended, timeout=TIMEOUT_MS) as ended:
        pass
    assert ended.args == ["ready"]
    item = practice.item
    case = practice.case
    if item.is_multiple_choice:
        case.option_buttons[0].click()
    else:
        case.read_edit.setPlainText("grey, nothing focal")
    practice.reveal()
    answer = answer_of(qtbot, practice.model_answer.request)
    assert answer.timings["images_encoded"] == answer.timings["images_decoded"] == 0
    images = [image_png(path) for path in item.images]
    with Engine.from_folder(window.chat.model_folder, window.settings.engine_settings()) as engine:
        want = engine.ask([Turn(build_question(item), len(images))], [engine.prepare_image(i) for i in images],
                          SamplingSettings.greedy_decoding(12))
    assert answer.token_ids == want.token_ids
    practice.close()


def test_another_windows_question_goes_first_and_the_preparation_resumes_after(qtbot, converted):
    runner = EngineRunner()
    runner.set_model(converted("qwen2", "original", "Q8_0"))
    png = _png(sample_image())
    order = []
    preparation = runner.prepare([Turn("", 1)], [png], owner="chat")
    preparation.ended.connect(lambda outcome: order.append(("chat preparation", outcome)))
    request = runner.request([Turn("A question from practice")], [], SamplingSettings.greedy_decoding(6),
                             owner="practice")
    request.finished.connect(lambda answer: order.append(("practice", answer.finish)))
    runner.submit(request)  # the engine is still loading for the preparation: the question goes first
    qtbot.waitUntil(lambda: len(order) == 2, timeout=TIMEOUT_MS)
    runner.shutdown()
    assert order[0][0] == "practice" and order[0][1] in ("stop", "length")
    assert order[1] == ("chat preparation", "ready")
    assert preparation.timings["images_decoded"] == 1


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_deleting_a_conversation_removes_its_saved_states(data_dir, window, qtbot):
    chat = window.chat
    states = data_dir / STATES_FOLDER
    window.attach_view(False)
    qtbot.waitUntil(lambda: chat.preparation_status.text() == "ready", timeout=TIMEOUT_MS)
    size = window.runner.engine.pair.image_size
    sha = hashlib.sha256(prepare_png(chat.pending_images[0][1], size)).hexdigest()  # as the model sees it
    chat.input.setPlainText("Describe this image.")
    chat.send()
    answer_of(qtbot, chat.request)
    qtbot.waitUntil(lambda: len(list(states.glob(f"*{SUFFIX}"))) == 2, timeout=TIMEOUT_MS)  # prepared, answered
    assert all(sha in path.read_bytes()[:8192].decode("utf-8", "replace") for path in states.glob(f"*{SUFFIX}"))
    clearing = chat.delete_conversation(chat.conversation.id)
    with qtbot.waitSignal(clearing.ended, timeout=TIMEOUT_MS) as cleared:
        pass
    assert cleared.args == [2] and list(states.glob(f"*{SUFFIX}")) == []


def test_a_conversation_deleted_as_its_answer_ends_keeps_no_saved_state(data_dir, window, qtbot):
    """The engine writes the answered conversation's state just after the answer: deleting the conversation at
    that moment still removes it (the removal waits for the engine), while another conversation's states stay."""
    chat = window.chat
    states = data_dir / STATES_FOLDER

    window.attach_view(False)  # a first conversation, kept
    first_png = chat.pending_images[0][1]
    chat.input.setPlainText("Describe this image.")
    chat.send()
    answer_of(qtbot, chat.request)
    chat.new_conversation()
    window.series_viewer.scale(2.0, 2.0)
    window.attach_view(True)  # another image, in a conversation of its own
    second_png = chat.pending_images[0][1]
    chat.input.setPlainText("Describe this region.")
    chat.send()
    deleted = []

    def delete_at_once(answer) -> None:  # the answer has just arrived: its state is being written, or soon is
        deleted.append((answer.finish, chat.delete_conversation(chat.conversation.id)))

    chat.request.finished.connect(delete_at_once)
    qtbot.waitUntil(lambda: bool(deleted), timeout=TIMEOUT_MS)
    finish, clearing = deleted[0]
    assert finish in ("stop", "length") and clearing is not None
    size = window.runner.engine.pair.image_size
    with qtbot.waitSignal(clearing.ended, timeout=TIMEOUT_MS) as cleared:
        pass
    assert cleared.args[0] >= 1 and window.runner.engine is None  # the engine ended first, then its states went
    sha = hashlib.sha256(prepare_png(second_png, size)).hexdigest()
    remaining = [p.read_bytes()[:8192].decode("utf-8", "replace") for p in states.glob(f"*{SUFFIX}")]
    assert remaining and not any(sha in header for header in remaining)  # none of the deleted one's is left
    first = hashlib.sha256(prepare_png(first_png, size)).hexdigest()
    assert all(first in header for header in remaining)  # the other conversation's states are kept
    assert len(window.store.conversations()) == 1


def _engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "huatuo-engine-client" and t.is_alive()]


@pytest.mark.parametrize("stage", ["loading", "image"])
def test_closing_the_window_while_an_image_is_prepared_ends_the_engine_cleanly(data_dir, qtbot, monkeypatch, capfd,
                                                                              stage):
    thread_errors = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    # As with a large model, which loads and encodes for longer than closing waits: the engine does not stop alone.
    monkeypatch.setattr(engine_runner, "ENGINE_END_WAIT_S", 0.0)
    window = MainWindow(Settings.load())  # deleted by the test itself
    window.show()
    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=10_000)
    window.attach_view(False)
    preparation = window.chat.preparation
    stages = []
    preparation.stage.connect(lambda name, done, total: stages.append(name))
    qtbot.waitUntil(lambda: stage in stages, timeout=TIMEOUT_MS)
    window.close()  # the engine is loading, or encoding the attached image
    assert _engine_threads() == []  # ended with the window: nothing of it runs on
    with qtbot.waitSignal(window.destroyed, timeout=10_000):
        window.deleteLater()  # anything still queued for it is dropped
    assert thread_errors == [] and "Error" not in capfd.readouterr().err
