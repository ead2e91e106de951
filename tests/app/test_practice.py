"""Practice mode: decks in the evaluation-set format, scoring, saved progress, and the window with the real
engine (tiny model) streaming beside the trainee's own read."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3

import pytest
from PIL import Image
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import QWidget

from app.audit import AuditLog
from app.practice import (
    DeckError,
    Progress,
    build_question,
    image_png,
    load_deck,
    model_choice,
    sample_deck_path,
)
from app.rendering import answer_html
from app.ui.engine_runner import EngineRunner
from app.ui.practice import PracticeWindow, open_practice
from app.ui.practice_model import NO_MODEL_TEXT
from inference.prompt import MC_INSTRUCTION, Turn
from inference.sampling import SamplingSettings

ANSWER_TIMEOUT_MS = 60_000
SHORT = SamplingSettings.greedy_decoding(12)


def write_deck(folder, items, title="Test deck"):
    """A deck next to its images, the way a teacher would lay one out."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        Image.new("L", (48, 40), 90 if name == "a.png" else 160).save(folder / "images" / name)
    path = folder / "deck.json"
    path.write_text(json.dumps({"title": title, "items": items}), encoding="utf-8")
    return path


MC = {"question": "Which side is brighter?", "options": ["Left", "Right"], "answer": "Right",
      "image": ["images/a.png"], "dataset": "Test"}
FREE = {"question": "Describe the image.", "answer": "A uniform grey square.", "image": ["images/a.png",
                                                                                        "images/b.png"]}


@pytest.fixture
def data(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    monkeypatch.setenv("HUATUO_DATA_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def model_folder(converted):
    return converted("qwen2", "original", "Q8_0")


@pytest.fixture
def runner(model_folder):
    runner = EngineRunner()
    runner.set_model(model_folder)
    yield runner
    runner.shutdown()


def open_window(qtbot, runner) -> PracticeWindow:
    window = PracticeWindow(runner, sampling=SHORT)
    qtbot.addWidget(window)
    window.show()
    return window


def answer_of(qtbot, request):
    """Wait for the request's answer (its signals reach the GUI through the event loop: connecting now misses none)."""
    with qtbot.waitSignal(request.finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        pass
    return blocker.args[0]


def rendered(text: str) -> str:
    """An answer as a view shows it, as plain text: its Markdown rendered (app.rendering)."""
    document = QTextDocument()
    QTextCursor(document).insertHtml(answer_html(text))
    return document.toPlainText()


# --- decks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("content,expected", [
    ("{not json", "deck.json: not valid JSON (line 1"),
    ({"items": []}, "deck.json: the deck has no items"),
    ([MC, {"options": ["x"], "image": "images/a.png"}], "deck.json, item 2: the item has no question"),
    ([{**MC, "image": ["images/missing.png"]}], "deck.json, item 1: image not found: images/missing.png"),
    ([MC, MC, {**MC, "image": []}], "deck.json, item 3: no image"),
    ([{**MC, "answer": "Up"}], "deck.json, item 1: the answer 'Up' is not one of its options"),
    ({"title": "x"}, "deck.json: expected a list of items"),
])
def test_a_bad_deck_is_explained_by_file_and_item(tmp_path, content, expected):
    path = write_deck(tmp_path, [])
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    with pytest.raises(DeckError) as error:
        load_deck(path)
    assert str(error.value).startswith(expected)


def test_reads_the_evaluation_set_format(tmp_path):
    # As in medical_multimodel_evaluation_data.json: a bare list, options sometimes a Python literal,
    # the answer as the option's text, "?" where the answer is unknown.
    items = [{"question": "Is this an MRI?", "options": "['yes', 'no']", "answer": "no", "image": ["images/a.png"],
              "dataset": "VQA-RAD"},
             {"question": "Which?", "options": {"A": "one", "B": "two"}, "answer_idx": "B", "image": "images/b.png"},
             {"question": "Which one?", "options": ["one", "two"], "answer": "?", "image": ["images/a.png"]},
             FREE]
    path = write_deck(tmp_path, [])
    path.write_text(json.dumps(items), encoding="utf-8")
    deck = load_deck(path)
    assert deck.title == "deck" and len(deck.items) == 4
    first, second, unkeyed, free = deck.items
    assert first.options == ("yes", "no") and first.correct == 1 and first.source == "VQA-RAD"
    assert second.correct == 1 and second.images == (tmp_path / "images" / "b.png",)
    assert unkeyed.is_multiple_choice and not unkeyed.auto_scored and unkeyed.reference_text() is None
    assert not free.is_multiple_choice and free.reference == "A uniform grey square." and len(free.images) == 2

    # The official evaluation prompt for multiple choice; free text goes as written.
    assert build_question(first) == f"Is this an MRI?\nA. yes\nB. no\n{MC_INSTRUCTION}"
    assert MC_INSTRUCTION == "Answer with the option's letter from the given choices directly."
    assert build_question(free) == "Describe the image."
    assert image_png(free.images[1]).startswith(b"\x89PNG")
    assert [model_choice(first, reply) for reply in ("B", "(A) yes", "no.", "I think so", "A cat")] == \
        [1, 0, 1, None, None]


def test_the_sample_deck_is_small_synthetic_and_valid():
    deck = load_deck(sample_deck_path())
    assert 4 <= len(deck.items) <= 6
    assert any(i.is_multiple_choice for i in deck.items) and any(not i.is_multiple_choice for i in deck.items)
    for item in deck.items:
        assert item.reference_text()
        for path in item.images:
            with Image.open(path) as image:
                assert image.size == (320, 320)


# --- progress ------------------------------------------------------------------------------------

def test_scoring_and_progress_follow_the_deck_content_not_its_path(tmp_path):
    deck = load_deck(write_deck(tmp_path / "here", [MC, FREE, MC]))
    progress = Progress(tmp_path / "practice.sqlite3")
    assert progress.first_unanswered(deck).number == 1
    right = progress.record(deck, deck.items[0], "B. Right", choice=1, seconds=4.2)
    assert right.correct is True and not right.self_marked and right.seconds == 4.2 and right.answered_at
    assert progress.record(deck, deck.items[2], "A. Left", choice=0).correct is False
    free = progress.record(deck, deck.items[1], "grey, uniform")
    assert free.correct is None
    progress.mark(deck, 2, True)
    progress.set_model_answer(deck, 2, "A grey square.")
    progress.close()

    # The deck moved to another folder (same bytes): its progress comes along; WAL keeps the file consistent.
    shutil.copytree(tmp_path / "here", tmp_path / "there")
    moved = load_deck(tmp_path / "there" / "deck.json")
    reopened = Progress(tmp_path / "practice.sqlite3")
    attempts = reopened.attempts(moved)
    assert attempts[2].correct is True and attempts[2].self_marked and attempts[2].model_answer == "A grey square."
    assert reopened.first_unanswered(moved) is None
    s = reopened.summary(moved)
    assert (s.answered, s.correct, s.scored, s.scored_correct, s.scored_percent) == (3, 2, 2, 1, 50.0)
    assert (s.marked_right, s.marked_wrong, s.unmarked) == (1, 0, 0)
    assert sqlite3.connect(tmp_path / "practice.sqlite3").execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    # An edited deck is another deck; reset forgets only this deck's answers.
    edited = load_deck(write_deck(tmp_path / "edited", [MC, FREE, MC], title="Edited"))
    assert edited.sha256 != moved.sha256 and reopened.attempts(edited) == {}
    reopened.record(edited, edited.items[0], "B. Right", choice=1)
    reopened.reset(moved)
    assert reopened.attempts(moved) == {} and len(reopened.attempts(edited)) == 1


# --- the window ---------------------------------------------------------------------------------

def test_reveal_waits_for_the_trainee_then_shows_both_sides_streamed(qtbot, data, tmp_path, runner):
    deck_path = write_deck(tmp_path / "deck", [FREE, MC])
    window = open_window(qtbot, runner)
    case, model = window.case, window.model_answer
    assert window.pages.currentWidget() is window.start_page
    assert window.open_deck(deck_path)
    assert window.intended_use.text() == "For education and research; not for diagnosis."
    assert window.intended_use.isVisible()
    assert window.item.number == 1 and window.counter.text() == "Case 1 of 2 · 0 of 2 answered"
    assert case.thumb_group.buttons() and len(case.thumb_group.buttons()) == 2  # two images

    # Nothing to reveal before the trainee has written a read (blank does not count).
    assert not case.reveal_button.isEnabled()
    case.read_edit.setPlainText("   ")
    assert not case.reveal_button.isEnabled()
    window.reveal()
    assert case.compare.currentWidget() is case.compare_hint and not window.attempts and model.request is None
    case.read_edit.setPlainText("A flat grey field, nothing focal.")
    assert case.reveal_button.isEnabled()

    window.audit = AuditLog(tmp_path / "audit.jsonl")
    pieces: list[str] = []
    shown: list[str] = []  # the model's answer on screen as each piece arrives
    case.reveal_button.click()
    assert case.read_edit.isReadOnly() and model.stop_button.isVisible()
    request = model.request
    request.text.connect(pieces.append)
    request.text.connect(lambda _piece: shown.append(model.text))
    answer = answer_of(qtbot, request)
    assert answer.finish in ("stop", "length") and answer.text.strip() and "".join(pieces) == answer.text
    # Side by side: the trainee's read | the model's answer as streamed; the reference below.
    assert case.your_read.text() == "A flat grey field, nothing focal."
    assert shown == ["".join(pieces[: n + 1]) for n in range(len(pieces))]  # it grew piece by piece
    assert model.text == answer.text and model.view.toPlainText() == rendered(answer.text)
    assert case.reference_label.text() == "A uniform grey square."
    assert case.mark_row.isVisible() and not model.stop_button.isVisible() and model.request is None
    # The question was audited like a chat question: hashes only, the chain intact.
    [record] = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert record["answer_sha256"] == hashlib.sha256(answer.text.encode()).hexdigest()
    assert record["question_sha256"] == hashlib.sha256(b"Describe the image.").hexdigest()
    assert len(record["image_sha256"]) == 2 and record["study_key"] == window.deck.sha256
    assert record["settings"]["max_new_tokens"] == SHORT.max_new_tokens and record["finish"] == answer.finish
    assert window.audit.verify() == (True, None)

    # Free text is self-assessed; the mark is saved with the answer and the model's answer.
    case.right_button.click()
    saved = Progress(data / "practice.sqlite3").attempts(window.deck)[1]
    assert saved.answer == "A flat grey field, nothing focal." and saved.correct is True and saved.self_marked
    assert saved.model_answer == answer.text and saved.seconds is not None
    assert "marked this right" in case.your_result.text()


def test_choices_are_scored_and_progress_resumes_after_a_restart(qtbot, data, tmp_path, runner):
    deck_path = write_deck(tmp_path / "deck", [MC, FREE, {**MC, "question": "Again: which side?"}])
    window = open_window(qtbot, runner)
    window.open_deck(deck_path)
    case = window.case
    assert case.option_buttons and case.options_box.isVisible() and not case.read_edit.isVisible()
    assert not case.reveal_button.isEnabled()
    case.option_buttons[0].click()  # "Left": not the deck's answer
    assert case.reveal_button.isEnabled()
    window.reveal()
    answer_of(qtbot, window.model_answer.request)
    assert case.your_read.text() == "A. Left"
    assert case.your_result.text() == "Not correct: the deck's answer is B. Right."
    assert case.reference_label.text() == "B. Right" and not case.mark_row.isVisible()
    assert not any(button.isEnabled() for button in case.option_buttons)  # locked in

    window.next_item()
    assert window.item.number == 2 and case.compare.currentWidget() is case.compare_hint
    window.close()

    # A new window (the app restarted) reopens the recent deck at the first unanswered case.
    again = open_window(qtbot, runner)
    assert again.deck is not None and again.deck.path.resolve() == deck_path.resolve()
    assert again.item.number == 2 and again.progress_bar.value() == 1
    again.show_item(1)  # an answered case shows what was saved, without asking the model again
    assert again.case.your_read.text() == "A. Left" and again.case.option_buttons[0].isChecked()
    assert not again.case.reveal_button.isVisible() and again.model_answer.view.toPlainText()
    assert again.model_answer.request is None
    again.show_item(3)
    again.case.option_buttons[1].click()
    again.reveal()
    answer_of(qtbot, again.model_answer.request)
    assert again.case.your_result.text() == "Correct."

    again.show_summary()
    assert again.pages.currentWidget() is again.summary
    assert "Answered 2 of 3" in again.summary.text.text()
    assert "Multiple choice: 1 of 2 correct (50 %)" in again.summary.text.text()
    assert again.summary.table.item(0, 3).text() == "wrong" and again.summary.table.item(2, 3).text() == "right"

    again.reset_progress()
    assert again.item.number == 1 and not again.attempts and again.progress_bar.value() == 0
    assert again.case.reveal_button.isVisible() and not again.case.reveal_button.isEnabled()
    assert Progress(data / "practice.sqlite3").attempts(again.deck) == {}


def test_leaving_a_case_stops_its_answer_and_the_next_one_waits_its_turn(qtbot, data, tmp_path, runner):
    window = PracticeWindow(runner, sampling=SamplingSettings.greedy_decoding(400))
    qtbot.addWidget(window)
    window.open_deck(write_deck(tmp_path / "deck", [FREE, MC]))
    window.case.read_edit.setPlainText("grey")
    answers, waiting = [], []

    def move_on(_piece):  # as soon as the answer to case 1 streams: go to case 2 and answer it at once
        if window.item.number == 1:
            window.next_item()
            window.case.option_buttons[1].click()
            window.reveal()
            waiting.append(window.model_answer.status.text())
            window.model_answer.request.finished.connect(answers.append)

    window.reveal()
    first = window.model_answer.request
    first.text.connect(move_on)
    first.finished.connect(answers.append)
    qtbot.waitUntil(lambda: len(answers) == 2, timeout=ANSWER_TIMEOUT_MS)
    assert waiting == ["Waiting for the previous answer to stop…"]
    # Cancelled, unless the engine had written all of it before the Stop reached it (a loaded machine can hold
    # the first streamed piece back that long): then it is kept with its own case, never shown on case 2.
    assert answers[0].finish in ("cancelled", "stop", "length")
    assert answers[1].finish in ("stop", "length") and answers[1].text.strip()
    assert window.item.number == 2 and window.model_answer.text == answers[1].text
    assert window.model_answer.view.toPlainText() == rendered(answers[1].text)
    saved = Progress(data / "practice.sqlite3").attempts(window.deck)
    kept = answers[0].text if answers[0].finish != "cancelled" and answers[0].text.strip() else None
    assert saved[1].model_answer == kept and saved[2].model_answer == answers[1].text


def test_a_question_from_elsewhere_in_the_app_is_left_to_finish(qtbot, data, tmp_path, runner):
    window = open_window(qtbot, runner)
    window.open_deck(write_deck(tmp_path / "deck", [FREE]))
    window.case.read_edit.setPlainText("grey")
    elsewhere = runner.request([Turn("Describe the image.", 0)], [], SamplingSettings.greedy_decoding(24),
                               owner="chat")  # e.g. the chat panel
    runner.submit(elsewhere)
    window.reveal()
    mine = window.model_answer.request
    assert window.model_answer.status.text() == "Waiting for the chat answer to finish…"
    ended = []
    elsewhere.finished.connect(lambda answer: ended.append(("elsewhere", answer)))
    mine.started.connect(lambda: ended.append(("practice started", None)))
    mine.finished.connect(lambda answer: ended.append(("practice", answer)))
    qtbot.waitUntil(lambda: len(ended) == 3, timeout=ANSWER_TIMEOUT_MS)
    assert [name for name, _ in ended] == ["elsewhere", "practice started", "practice"]
    assert ended[0][1].finish in ("stop", "length")  # not interrupted
    assert window.model_answer.text == ended[2][1].text != ended[0][1].text


def test_without_a_model_the_trainee_still_sees_the_reference(qtbot, data, tmp_path):
    runner = EngineRunner()  # no model installed
    window = open_window(qtbot, runner)
    window.open_deck(write_deck(tmp_path / "deck", [FREE]))
    window.case.read_edit.setPlainText("grey")
    window.reveal()
    with qtbot.waitSignal(window.model_answer.request.failed, timeout=10_000) as failed:
        pass
    assert failed.args[0] == "no_model"
    assert window.model_answer.status.text() == NO_MODEL_TEXT and window.model_answer.view.toPlainText() == ""
    assert window.case.reference_label.text() == "A uniform grey square." and window.case.your_read.text() == "grey"
    runner.shutdown()


def test_a_broken_deck_keeps_the_window_and_the_sample_deck_opens(qtbot, data, tmp_path):
    runner = EngineRunner()
    parent = QWidget()  # the main window, in the app
    qtbot.addWidget(parent)
    window = open_practice(runner, parent)
    assert open_practice(runner, parent) is window and window.isVisible()
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2", encoding="utf-8")
    assert not window.open_deck(broken)
    assert window.statusBar().currentMessage().startswith("broken.json: not valid JSON")
    assert window.open_deck(sample_deck_path()) and window.item.number == 1
    qtbot.waitUntil(lambda: window.case.viewer.shown is not None, timeout=10_000)  # the case's image, shown
    runner.shutdown()
