"""The evaluation-set item format, read once for the evaluation harness and the practice decks."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from app.practice import load_deck
from inference.evalset import EvalSetError, parse_item, read_json
from training.evaluation import benchmark

ROW = {"question": "Which organ?", "options": ["Lung", "Liver", "Heart"], "answer": "Liver",
       "image": ["images/a.png"], "dataset": "SLAKE_test", "subset": ""}


def test_an_item_in_the_released_form():
    item = parse_item(ROW, "f.json, item 1")
    assert (item.question, item.options, item.answer, item.correct) == ("Which organ?", ("Lung", "Liver", "Heart"),
                                                                        "Liver", 1)
    assert item.images == ("images/a.png",) and item.dataset == "SLAKE_test" and item.subset is None
    literal = parse_item({**ROW, "options": "['Lung', 'Liver']", "answer": "?"}, "w")
    assert literal.options == ("Lung", "Liver") and literal.answer is None and literal.correct is None
    open_question = parse_item({"question": "Describe.", "options": [], "answer": "A lung.", "image": "x.png",
                                "question_type": "open"}, "w")
    assert open_question.options == () and open_question.correct is None and open_question.answer == "A lung."
    assert open_question.images == ("x.png",) and open_question.question_type == "open"


@pytest.mark.parametrize(("changes", "correct"), [
    ({"options": ["Liver", "liver"], "answer": "liver"}, 1),  # the first exactly equal option, as released
    ({"answer": " LIVER "}, 1),  # else one equal but for case and spaces
    ({"answer": "c."}, 2),  # else the option its letter names
    ({"answer_idx": 0}, 0),
    ({"answer_idx": "C", "answer": "Lung"}, 2),  # answer_idx wins
    ({"options": {"B": "Liver", "A": "Lung"}, "answer": "Liver"}, 1),  # a mapping, in letter order
])
def test_the_right_option(changes, correct):
    assert parse_item({**ROW, **changes}, "w").correct == correct


@pytest.mark.parametrize(("changes", "message"), [
    ({"answer": "Pancreas"}, "deck.json, item 4: the answer 'Pancreas' is not one of its options"),
    ({"answer": "D"}, "the answer 'D' is not one of its options"),  # a letter beyond the options
    ({"answer_idx": 3}, "answer_idx 3 is outside its 3 options"),
    ({"options": "Lung or Liver"}, "\"options\" is text that is not a list"),
    ({"options": [["Lung"]]}, "\"options\" must be a list of answer texts"),
    ({"options": 3}, "\"options\" must be a list of answer texts"),
    ({"image": [""]}, "\"image\" must name a file"),
    ({"question": "  "}, "the item has no question"),
])
def test_a_bad_item_is_named(changes, message):
    with pytest.raises(EvalSetError, match=message):
        parse_item({**ROW, **changes}, "deck.json, item 4")
    with pytest.raises(EvalSetError, match="item 2: expected an object with a question, got list"):
        parse_item([ROW], "item 2")


def test_a_bad_file_is_named(tmp_path):
    path = tmp_path / "set.json"
    path.write_bytes(b"\xff\xfe[")
    with pytest.raises(EvalSetError, match="set.json: not a text file"):
        read_json(path, path.name)
    path.write_text('[{"question": "q",\n "options": ]')
    with pytest.raises(EvalSetError, match=r"set.json: not valid JSON \(line 2, column 13: Expecting value"):
        read_json(path, path.name)
    with pytest.raises(EvalSetError, match="missing.json: cannot read the file"):
        read_json(tmp_path / "missing.json", "missing.json")
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([ROW]).encode())  # a byte-order mark is fine
    assert read_json(path, path.name)[1] == [ROW]


def test_the_harness_and_a_deck_read_the_same_file_alike(tmp_path):
    """The released file opened as a benchmark and as a practice deck: same questions, options and answers."""
    (tmp_path / "images").mkdir()
    Image.new("L", (32, 32), 80).save(tmp_path / "images" / "a.png")
    rows = [ROW, {**ROW, "options": "['Heart', 'Lung']", "answer": "Lung", "dataset": "VQA-RAD_test"},
            {**ROW, "answer": "?"}]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(rows))
    bench, deck = benchmark.load(path), load_deck(path)
    assert len(bench.items) == len(deck.items) == 3
    for case, item in zip(bench.items, deck.items, strict=True):
        assert (case.question, case.options, case.images) == (item.question, item.options, item.images)
        assert case.answer_label == (None if item.correct is None else "ABCDEFGHIJK"[item.correct])
        assert case.dataset == item.source
    assert [case.answer_label for case in bench.items] == ["B", "B", None]
