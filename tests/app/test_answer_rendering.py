"""Model output is untrusted text: in the chat's transcript and practice mode's answer view, HTML in an answer is shown
as the text it is (no image loaded, no link made), stored or streamed, and a 2 MB answer is shown whole."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QTextBrowser

from app.audit import AuditLog
from app.practice import Progress, load_deck, sample_deck_path
from app.settings import Settings
from app.store import Store
from app.ui.answer_view import StreamedAnswer
from app.ui.chat import ChatPanel
from app.ui.engine_runner import EngineRunner
from app.ui.practice import PracticeWindow
from inference.sampling import SamplingSettings

ANSWER_TIMEOUT_MS = 120_000
TAGS = ['<img src="http://127.0.0.1:9/x.png">', '<img src="file:///etc/passwd">', '<a href="file:///etc/passwd">x</a>',
        "<script>alert(1)</script>", "<style>body{display:none}</style>"]
HOSTILE = "The findings:\n\n" + "\n\n".join(f"Item {n}: {tag} end" for n, tag in enumerate(TAGS)) + \
    "\n\n![chart](file:///etc/passwd) and [a link](http://127.0.0.1:9/)\n"
LINES = 40_000  # about 2 MB of answer
BIG = "".join(f"Line {n}: **bold** and <b>raw</b> text\n\n" for n in range(LINES)) + "THE END\n"


def fragments(document: QTextDocument):
    block = document.begin()
    while block.isValid():
        for piece in block:
            yield piece.fragment()
        block = block.next()


def own_links(conversation) -> set[str]:
    """The only links the chat's transcript may hold: its own Copy and Edit of each turn."""
    return {f"{action}:{turn.id}" for turn in conversation.turns for action in ("copy", "edit")}


def assert_shown_as_text(document: QTextDocument, allowed_links: set[str] = frozenset()) -> None:
    text = document.toPlainText()
    for n, tag in enumerate(TAGS):
        assert f"Item {n}: {tag} end" in text  # the literal tags, as written
    assert "![chart](file:///etc/passwd)" in text and "[a link](http://127.0.0.1:9/)" in text
    formats = [fragment.charFormat() for fragment in fragments(document)]
    assert formats and not any(f.isImageFormat() for f in formats)
    assert {f.anchorHref() for f in formats if f.isAnchor()} <= allowed_links  # nothing from the answer


def assert_whole(document: QTextDocument) -> None:
    text = document.toPlainText()
    assert text.count("Line ") == LINES and f"Line {LINES - 1}: bold and <b>raw</b> text" in text
    assert "THE END" in text and len(text) > 1_000_000


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def model_folder(converted):
    return converted("qwen2", "original", "Q8_0")


def chat_panel(qtbot, tmp_path, runner: EngineRunner) -> ChatPanel:
    store = Store(tmp_path / "conversations.sqlite3")
    panel = ChatPanel(runner, store, AuditLog(tmp_path / "audit.jsonl"), Settings(greedy=True, max_new_tokens=400))
    qtbot.addWidget(panel)
    panel.show()
    return panel


def test_a_streamed_answer_is_rendered_after_what_comes_before_it_throttled(qtbot):
    view = QTextBrowser()
    qtbot.addWidget(view)
    view.setPlainText("Question: <b>kept as typed</b>\n")
    streamed = StreamedAnswer(view)
    streamed.start = view.document().characterCount() - 1
    streamed.add("first piece <img src='file:///etc/passwd'>")
    assert "first piece" not in view.toPlainText()  # not at once: at the next render
    qtbot.waitUntil(lambda: "first piece <img src='file:///etc/passwd'>" in view.toPlainText(), timeout=10_000)
    streamed.add(" and more\n\n" + BIG)
    qtbot.waitUntil(lambda: "THE END" in view.toPlainText(), timeout=60_000)
    assert view.toPlainText().startswith("Question: <b>kept as typed</b>\nfirst piece <img")
    assert_whole(view.document())
    assert not any(f.charFormat().isImageFormat() or f.charFormat().isAnchor() for f in fragments(view.document()))


def test_a_stored_answer_with_html_is_shown_as_text_in_the_chat(qtbot, data, tmp_path):
    panel = chat_panel(qtbot, tmp_path, EngineRunner())
    store = panel.store
    conversation = store.create_conversation("CT · hostile", study_key="study")
    for question, answer in (("What is shown?", HOSTILE), ("And in detail?", BIG)):
        turn = store.add_turn(conversation, question, [])
        store.append_answer(turn, answer)
        store.finish_answer(turn, "stop")
    panel.open_conversation(conversation)
    document = panel.transcript.document()
    assert_shown_as_text(document, own_links(panel.conversation))
    assert_whole(document)
    assert "What is shown?" in document.toPlainText() and "And in detail?" in document.toPlainText()
    store.close()


def test_a_streamed_answer_with_html_is_shown_as_text_in_the_chat(qtbot, data, tmp_path, model_folder):
    runner = EngineRunner()
    panel = chat_panel(qtbot, tmp_path, runner)
    panel.set_model(model_folder)
    panel.input.setPlainText("Describe it.")
    panel.send()
    request = panel.request
    document = panel.transcript.document()
    # Through the slot the engine's pieces go through, as if the model wrote them (before any piece of its own:
    # no event is processed in between), then the render the throttle runs.
    request.text.emit(HOSTILE)
    request.text.emit(BIG)
    panel.transcript.streamed.render()
    assert "Describe it." in document.toPlainText()
    assert_shown_as_text(document, own_links(panel.conversation))
    assert_whole(document)
    assert panel.store.load(panel.conversation.id).turns[-1].answer == HOSTILE + BIG  # stored as streamed
    with qtbot.waitSignal(request.finished, timeout=ANSWER_TIMEOUT_MS):
        request.cancel()
    runner.shutdown()
    panel.store.close()


def test_answers_with_html_are_shown_as_text_in_practice(qtbot, data, tmp_path, model_folder):
    deck = load_deck(sample_deck_path())
    progress = Progress(tmp_path / "practice.sqlite3")
    first, second = deck.items[0], deck.items[1]
    for item, answer in ((first, HOSTILE), (second, BIG)):
        progress.record(deck, item, item.option_label(0) if item.is_multiple_choice else "grey",
                        0 if item.is_multiple_choice else None)
        progress.set_model_answer(deck, item.number, answer)
    runner = EngineRunner()
    runner.set_model(model_folder)
    window = PracticeWindow(runner, progress=progress, sampling=SamplingSettings.greedy_decoding(400))
    qtbot.addWidget(window)
    window.show()
    assert window.open_deck(sample_deck_path())
    document = window.model_answer.view.document()

    window.show_item(1)  # the saved model answers
    assert_shown_as_text(document)
    window.show_item(2)
    assert_whole(document)

    window.show_item(3)  # streamed
    item = window.item
    if item.is_multiple_choice:
        window.case.option_buttons[0].click()
    else:
        window.case.read_edit.setPlainText("grey")
    window.reveal()
    request = window.model_answer.request
    request.text.emit(HOSTILE)  # as in the chat: the streamed-text slot, then the throttled render
    window.model_answer.streamed.render()
    assert_shown_as_text(document)
    with qtbot.waitSignal(request.finished, timeout=ANSWER_TIMEOUT_MS):
        window.model_answer.stop()
    runner.shutdown()
