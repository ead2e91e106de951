"""Practice mode as a trainee reviews a case and a deck: case images in the main window's viewer (window/level,
zoom, read off the GUI thread), the model's multiple-choice pick scored beside the trainee's, the summary
exported as CSV and PDF, and a window that fits a 1366×768 screen."""

from __future__ import annotations

import csv
import json

import numpy as np
import pypdf
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QRect, QSize, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog

from app.practice import Progress, load_deck
from app.practice_export import CSV_COLUMNS
from app.ui.engine_runner import EngineRunner
from app.ui.practice import PREFERRED_SIZE, PracticeWindow
from app.ui.window_size import WINDOW_FRAME, resize_within_screen

SCREEN = QSize(1366, 768)
DECORATIONS = QSize(16, 80)  # the window's borders and title bar, and a taskbar


def write_deck(folder, items, title="Chest set / week 1"):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    ramp = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (80, 1))  # a grey ramp: every window shows it
    Image.fromarray(ramp).save(folder / "images" / "ramp.png")
    Image.fromarray(ramp[::-1, ::-1].copy()).save(folder / "images" / "other.png")
    path = folder / "deck.json"
    path.write_text(json.dumps({"title": title, "items": items}), encoding="utf-8")
    return path


def mc(question, answer="Right", images=("images/ramp.png",)):
    return {"question": question, "options": ["Left", "Right"], "answer": answer, "image": list(images)}


FREE = {"question": "Describe the image.", "answer": "A grey ramp.", "image": ["images/ramp.png", "images/other.png"]}


@pytest.fixture
def data(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    monkeypatch.setenv("HUATUO_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def window(qtbot, data):
    runner = EngineRunner()  # no model: these tests look at the case, the scores and the summary
    w = PracticeWindow(runner)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
    runner.shutdown()


def drag(viewer, button, delta: QPoint) -> None:
    centre = viewer.viewport().rect().center()
    QTest.mousePress(viewer.viewport(), button, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(viewer.viewport(), centre + delta)
    QTest.mouseRelease(viewer.viewport(), button, Qt.KeyboardModifier.NoModifier, centre + delta)


def test_case_images_open_in_the_viewer_with_window_level_and_zoom(window, qtbot, tmp_path):
    deck = write_deck(tmp_path / "deck", [FREE, mc("Which side?")])
    window.open_deck(deck)
    case, viewer = window.case, window.case.viewer
    assert viewer.shown is None  # read in the background, not while the case is being laid out
    qtbot.waitUntil(lambda: viewer.shown is not None, timeout=10_000)
    assert viewer.frames == [(deck.parent / "images" / "ramp.png", 0)]
    before_window, before_pixels, fitted = viewer.view.window, viewer.shown.copy(), viewer.zoom()
    assert before_window is not None  # a grey image has a window to change

    drag(viewer, Qt.MouseButton.LeftButton, QPoint(60, -40))  # left-drag: window/level
    assert viewer.view.window != before_window and not np.array_equal(viewer.shown, before_pixels)
    drag(viewer, Qt.MouseButton.RightButton, QPoint(0, -50))  # right-drag: zoom in
    assert viewer.zoom() > fitted * 1.3
    QTest.keyClick(viewer, Qt.Key.Key_I)  # the viewer's keys work here too
    assert viewer.view.invert
    next(b for b in case.findChildren(type(case.thumb_group.button(0))) if b.text() == "Reset").click()
    assert not viewer.view.invert and viewer.view.window == before_window

    # Two images: a thumbnail each, drawn from the image; the second opens fitted, with its own window.
    buttons = case.thumb_group.buttons()
    assert len(buttons) == 2
    qtbot.waitUntil(lambda: all(not b.icon().isNull() for b in buttons), timeout=10_000)
    viewer.zoom_by(3.0)
    buttons[1].click()
    qtbot.waitUntil(lambda: viewer.shown is not None and viewer.frames[0][0].name == "other.png", timeout=10_000)
    assert viewer.zoom() == pytest.approx(fitted, rel=0.05) and viewer.view.window is not None
    window.next_item()  # a one-image case: no thumbnails
    assert case.thumb_group.buttons() == []
    qtbot.waitUntil(lambda: viewer.shown is not None, timeout=10_000)


def test_an_image_that_cannot_be_read_is_explained(window, qtbot, tmp_path):
    deck = write_deck(tmp_path / "deck", [mc("Which side?")])
    (deck.parent / "images" / "ramp.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    messages = []
    window.case.message.connect(messages.append)
    window.open_deck(deck)
    qtbot.waitUntil(lambda: any("ramp.png" in m for m in messages), timeout=10_000)
    qtbot.waitUntil(lambda: window.case.viewer.notice.isVisible(), timeout=10_000)  # said in the viewer itself
    assert window.case.viewer.shown is None


def answered_deck(tmp_path, data):
    """Four cases answered and saved (as a practice session leaves them), with the model's saved replies."""
    deck = load_deck(write_deck(tmp_path / "deck", [mc("Q1"), mc("Q2"), mc("Q3", answer="Left"), FREE]))
    progress = Progress(data / "practice.sqlite3")
    for number, choice, reply in ((1, 1, "B. Right"), (2, 0, "A"), (3, 0, "I think the right one")):
        progress.record(deck, deck.items[number - 1], deck.items[number - 1].option_label(choice), choice, 4.5)
        progress.set_model_answer(deck, number, reply)
    progress.record(deck, deck.items[3], "A ramp, dark to light.", None, 12.0)
    progress.mark(deck, 4, True)
    progress.set_model_answer(deck, 4, "A gradient.")
    progress.close()
    return deck


def test_the_models_pick_is_scored_beside_the_trainees(window, qtbot, tmp_path, data):
    deck = answered_deck(tmp_path, data)
    window.open_deck(deck.path)
    case, model = window.case, window.model_answer
    window.show_item(1)  # trainee right, model right
    assert case.your_result.text() == "Correct." and case.your_result.objectName() == "right"
    assert model.choice_label.text() == "The model chose B. Right: correct."
    assert model.choice_label.objectName() == "right" and model.choice_label.isVisible()
    window.show_item(2)  # trainee wrong ("A. Left"), model wrong ("A")
    assert case.your_result.objectName() == "wrong"
    assert model.choice_label.text() == "The model chose A. Left: not correct (the deck's answer is B. Right)."
    assert model.choice_label.objectName() == "wrong"
    window.show_item(3)  # trainee right; the model's reply names no option: not scored as right
    assert case.your_result.objectName() == "right"
    assert model.choice_label.text() == "The model's reply names no option: not correct."
    window.show_item(4)  # free text: the model's answer is compared by reading, not scored
    assert model.choice_label.text() == ""

    window.show_summary()
    text = window.summary.text.text()
    assert "Multiple choice: 2 of 3 correct (67 %)." in text
    assert "The model on the same cases: 1 of 3 correct (33 %); 1 of its replies named no option." in text
    table = window.summary.table
    assert table.horizontalHeaderItem(4).text() == "Model"
    assert [table.item(row, 4).text() for row in range(4)] == [
        "B. Right — right", "A. Left — wrong", "no option named — wrong", "—"]
    assert [table.item(row, 3).text() for row in range(4)] == ["right", "wrong", "right", "right"]


def test_the_summary_exports_as_csv_and_pdf(window, qtbot, tmp_path, data, monkeypatch):
    deck = answered_deck(tmp_path, data)
    window.open_deck(deck.path)
    window.show_summary()
    proposed = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: proposed.append(a[2]) or ("", ""))
    window.summary.export_button.menu().actions()[0].trigger()
    assert proposed and proposed[0].endswith(".csv") and "Chest set week 1 summary 20" in proposed[0]

    out = tmp_path / "out"
    out.mkdir()
    task = window.export_summary(out / "summary.csv", "csv")
    with qtbot.waitSignal(task.done, timeout=10_000):
        pass
    with (out / "summary.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_COLUMNS
    assert rows[1] == ["1", "Q1", "B. Right", "right", "4.5", "B. Right", "B. Right", "B. Right", "right"]
    assert rows[3][6:] == ["I think the right one", "no option named", "wrong"]
    assert rows[4][:6] == ["4", "Describe the image.", "A ramp, dark to light.", "right", "12", "A grey ramp."]
    assert rows[4][6:] == ["A gradient.", "", ""]
    assert "Summary exported to" in window.statusBar().currentMessage()

    task = window.export_summary(out / "summary.pdf", "pdf")
    with qtbot.waitSignal(task.done, timeout=30_000):
        pass
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(out / "summary.pdf").pages)
    text = " ".join(text.split())
    assert "Practice summary — Chest set / week 1" in text
    assert "The model on the same cases: 1 of 3 correct (33 %)" in text
    assert "For education and research; not for diagnosis." in text and "no option named" in text
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv", "summary.pdf"]
    assert not [p for p in data.iterdir() if p.name.startswith("export-")]  # built in the data folder, then moved


def test_the_window_fits_a_1366_by_768_screen(window, qtbot, tmp_path):
    room = SCREEN - DECORATIONS
    window.open_deck(write_deck(tmp_path / "deck", [mc("Which side is brighter? " * 6), FREE]))
    pages = {"start": lambda: window.pages.setCurrentWidget(window.start_page),
             "multiple choice": lambda: window.show_item(1), "free text": lambda: window.show_item(2),
             "comparison": lambda: window.case.compare.setCurrentIndex(1), "summary": window.show_summary}
    for name, show in pages.items():
        show()
        hint = window.minimumSizeHint()
        assert hint.width() <= room.width() and hint.height() <= room.height(), (name, hint)

    # At that size everything needed to answer a case is on screen, and the image is large enough to read.
    window.resize(room)
    window.show_item(1)
    window.case.compare.setCurrentIndex(1)
    qtbot.waitUntil(lambda: window.case.viewer.shown is not None, timeout=10_000)
    rect = window.rect()
    for widget in (window.case.viewer, window.case.option_buttons[1], window.case.next_button,
                   window.model_answer.view, window.case.reference_label):
        top_left = widget.mapTo(window, QPoint(0, 0))
        assert widget.isVisible() and rect.contains(top_left) and widget.width() > 0 and widget.height() > 0
    assert window.case.viewer.height() >= 200 and window.case.viewer.width() >= 300


def test_the_window_opens_inside_a_laptop_screens_free_area(window, qtbot, tmp_path):
    """On a 1366×768 screen with a 27-pixel top bar, the window and its frame lie in the rest, at full width."""
    free = QRect(0, 27, SCREEN.width(), SCREEN.height() - 27)
    window.open_deck(write_deck(tmp_path / "deck", [mc("Which side is brighter?"), FREE]))
    resize_within_screen(window, PREFERRED_SIZE, free)
    frame = QRect(window.pos(), window.size() + WINDOW_FRAME)
    assert free.contains(frame), (free, frame)
    assert window.width() == min(PREFERRED_SIZE.width(), free.width() - WINDOW_FRAME.width())
    hint = window.minimumSizeHint()
    assert window.width() >= hint.width() and window.height() >= hint.height()  # its layout as designed
    qtbot.waitUntil(lambda: window.case.viewer.isVisible() and window.case.next_button.isVisible(), timeout=5000)
    for widget in (window.case.viewer, window.case.next_button, window.summary_button):
        assert window.rect().contains(QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())), widget
