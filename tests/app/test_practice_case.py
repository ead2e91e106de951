"""A practice case made from a conversation (real DICOM views, stored as the chat stores them): appended to the
user's deck, with the images the model had been shown, and opened in practice mode; a list deck stays a list and a
broken deck is refused and left as it was."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from app.practice import DeckError, load_deck
from app.teaching_case import make_practice_case


def test_a_practice_case_is_appended_to_the_users_deck_and_opens_in_practice_mode(qtbot, tmp_path, conversation):
    from app.ui.engine_runner import EngineRunner
    from app.ui.practice import PracticeWindow

    conv, _ = conversation
    deck_path = tmp_path / "decks" / "My cases.json"
    deck_path.parent.mkdir()
    first = make_practice_case(conv, 0, "A CT slice of the head.", deck_path)
    assert first.title == "My cases" and len(first.items) == 1
    item = first.items[0]
    assert (item.question, item.reference, item.options) == ("What is shown?", "A CT slice of the head.", ())
    assert len(item.images) == 4  # the images the model had been shown by the first question
    for path, sha in zip(item.images, conv.turns[0].image_shas, strict=True):
        assert path.parent.name == "My cases_images"
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(io.BytesIO(conv.images[sha].png))))
        assert not Image.open(path).info.get("exif")
    second = make_practice_case(conv, 1, "More slices of the same study.", deck_path, question="Which series?")
    assert [i.question for i in second.items] == ["What is shown?", "Which series?"]
    assert len(second.items[1].images) == len(conv.images)  # every image shown by then
    assert json.loads(deck_path.read_text(encoding="utf-8"))["title"] == "My cases"
    again = load_deck(deck_path)
    assert again.sha256 == hashlib.sha256(deck_path.read_bytes()).hexdigest() and len(again.items) == 2

    runner = EngineRunner()
    window = PracticeWindow(runner)
    qtbot.addWidget(window)
    window.show()
    assert window.open_deck(deck_path) and window.item.number == 1
    qtbot.waitUntil(lambda: window.case.viewer.shown is not None, timeout=10_000)  # the case's image, shown
    runner.shutdown()


def test_a_practice_case_keeps_a_list_deck_a_list_and_refuses_a_broken_one(tmp_path, conversation):
    conv, _ = conversation
    listed = tmp_path / "listed.json"
    Image.new("L", (8, 8), 50).save(tmp_path / "a.png")
    listed.write_text(json.dumps([{"question": "Q?", "answer": "A.", "image": "a.png"}]), encoding="utf-8")
    deck = make_practice_case(conv, 0, "Reference.", listed)
    assert isinstance(json.loads(listed.read_text(encoding="utf-8")), list) and len(deck.items) == 2
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2", encoding="utf-8")
    with pytest.raises(DeckError, match="not valid JSON"):
        make_practice_case(conv, 0, "Reference.", broken)
    assert broken.read_text(encoding="utf-8") == "[1, 2"  # left as it was
    with pytest.raises(DeckError, match="reference answer"):
        make_practice_case(conv, 0, "  ", tmp_path / "new.json")
    assert not (tmp_path / "new.json").exists()
