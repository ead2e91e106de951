"""What each answer keeps of itself: its own sampling (a regenerate is a new sample, with its seed recorded), why
it ended early, and how the transcript and the exports show it."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from pydicom.data import get_testdata_file
from PySide6.QtGui import QFont

from app.export import export_conversation
from app.settings import Settings
from app.store import Store
from app.ui.main import MainWindow
from app.ui.transcript import Transcript
from inference.sampling import SamplingSettings

GREEDY = {"greedy": True, "max_new_tokens": 48, "seed": 0}


def test_a_new_seed_is_drawn_for_each_sampled_answer_and_greedy_stays_greedy():
    sampled = SamplingSettings(temperature=0.7)
    seeds = {sampled.with_new_seed().seed for _ in range(8)}
    assert len(seeds) == 8 and 0 not in seeds
    assert sampled.with_new_seed().temperature == 0.7
    greedy = SamplingSettings.greedy_decoding(64)
    assert greedy.with_new_seed() == greedy


def test_regenerate_draws_a_new_sample_and_records_its_seed(converted, tmp_path, monkeypatch, qtbot):
    data_dir = tmp_path / "data"
    shutil.copytree(converted("qwen2", "original", "Q8_0"), data_dir / "models" / "tiny")
    monkeypatch.setenv("HUATUO_DATA_DIR", str(data_dir))
    Settings(greedy=False, temperature=0.9, max_new_tokens=8, acknowledged="2026-01-01T00:00:00+00:00").save(data_dir)
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=10_000)
    window.chat.input.setPlainText("Describe this image.")
    window.chat.send()
    qtbot.waitUntil(lambda: window.chat.request is None, timeout=120_000)
    first = window.chat.conversation.turns[-1].settings
    window.chat.regenerate()
    qtbot.waitUntil(lambda: window.chat.request is None, timeout=120_000)
    second = window.chat.conversation.turns[-1].settings
    assert first["temperature"] == second["temperature"] == 0.9 and not first["greedy"]
    assert first["seed"] != second["seed"]  # a regenerate is a sample of its own, reproducible from its seed
    window.close()


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "conversations.sqlite3") as store:
        yield store


def test_each_answer_keeps_its_own_settings_and_the_reason_it_ended(store, tmp_path):
    cid = store.create_conversation("Chest", None, None, {"name": "tiny"}, GREEDY)
    first = store.add_turn(cid, "First?", [])
    store.record_settings(first, GREEDY)
    store.finish_answer(first, "stop", [1], {}, text="One.")
    second = store.add_turn(cid, "Second?", [])
    store.record_settings(second, {"temperature": 0.7, "greedy": False, "seed": 12345})
    store.finish_answer(second, "error", text="Partial", note="the engine process ended (out of memory, or killed)")
    conv = store.load(cid)
    assert conv.turns[1].settings["seed"] == 12345 and conv.turns[1].note.startswith("the engine process ended")

    text = export_conversation(conv, tmp_path / "chest.md", "md").read_text(encoding="utf-8")
    first_part, second_part = text.split("## Question 2")
    assert "greedy True" in first_part and "seed 12345" not in first_part  # each answer with its own settings
    assert "temperature 0.7" in second_part and "seed 12345" in second_part
    assert "Reason: the engine process ended (out of memory, or killed)" in second_part

    with pytest.raises(KeyError):
        store.record_settings(10_000, GREEDY)
    store.reset_answer(second)  # a regenerate starts without the old reason
    assert store.load(cid).turns[1].note == ""


def test_a_database_of_the_first_schema_is_upgraded_and_keeps_its_turns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with Store(path) as store:
        cid = store.create_conversation("Old", None, None, {}, GREEDY)
        store.finish_answer(store.add_turn(cid, "Q?", []), "stop", [], {}, text="A.")
    db = sqlite3.connect(path)  # back to the first schema, as an earlier version wrote it
    db.execute("ALTER TABLE turns DROP COLUMN settings")
    db.execute("ALTER TABLE turns DROP COLUMN note")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Store(path) as store:
        turn = store.load(cid).turns[0]
        assert (turn.answer, turn.settings, turn.note) == ("A.", {}, "")
        text = export_conversation(store.load(cid), tmp_path / "old.md", "md").read_text(encoding="utf-8")
        assert "Sampling: greedy True" in text  # the conversation's settings stand in for the turn's


def test_the_transcript_shows_questions_plain_and_why_an_answer_stopped(store, qtbot):
    cid = store.create_conversation("Chest", None, None, {}, GREEDY)
    first = store.add_turn(cid, "A first question", [])
    store.finish_answer(first, "stop", [], {}, text="**An** answer.")
    follow_up = store.add_turn(cid, "A follow-up without an image", [])
    store.finish_answer(follow_up, "error", text="Part", note="<b>out of memory</b>")
    transcript = Transcript()
    qtbot.addWidget(transcript)
    transcript.show_conversation(store.load(cid))
    doc = transcript.document()
    for question in ("A first question", "A follow-up without an image"):
        cursor = doc.find(question)
        assert not cursor.isNull()
        assert cursor.charFormat().fontWeight() == QFont.Weight.Normal  # the heading's bold does not run on
    assert "(interrupted by an error: <b>out of memory</b>)" in doc.toPlainText()  # the reason, shown as text
    bold = doc.find("An")  # the answer's own Markdown is still rendered
    assert bold.charFormat().fontWeight() == QFont.Weight.Bold
