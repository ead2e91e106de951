"""The conversation store on real SQLite files: round trips, search, crash safety, real deletion, errors."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.store import Store, StoreError, model_identity, to_history
from inference import prompt

MODEL = {"name": "tiny", "text": {"file": "tiny-F32.gguf", "sha256": "a" * 64},
         "mmproj": {"file": "tiny-mmproj-F16.gguf", "sha256": "b" * 64}}
SETTINGS = {"temperature": 0.2, "repetition_penalty": 1.2, "max_new_tokens": 512}


def png(seed: int, size: int = 64) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "conversations.sqlite3") as s:
        yield s


def answered(store: Store, conversation_id: int, question: str, answer: str, images=(), finish="stop") -> int:
    shas = [store.add_image(conversation_id, p, f"slice {i}") for i, p in enumerate(images)]
    turn = store.add_turn(conversation_id, question, shas)
    store.append_answer(turn, answer)
    store.finish_answer(turn, finish, answer_tokens=[1, 2, 3], timings={"ttft_s": 0.5})
    return turn


def test_round_trip(store):
    key = store.study_key("1.2.840.113619.2.55.3")
    cid = store.create_conversation("Chest CT", key, None, MODEL, SETTINGS)
    first, second = png(1), png(2)
    sha1 = store.add_image(cid, first, "axial 12/40")
    assert store.add_image(cid, first, "again") == sha1  # stored once per conversation
    sha2 = store.add_image(cid, second)
    turn = store.add_turn(cid, "What is shown?", [sha1, sha2])
    for piece in ["A ", "chest ", "CT."]:
        store.append_answer(turn, piece)
    store.finish_answer(turn, "stop", answer_tokens=[5, 6, 7], timings={"ttft_s": 0.4})
    turn2 = store.add_turn(cid, "右下肺有什么？", [sha1])

    conv = store.load(cid)
    assert (conv.title, conv.study_key, conv.study_info, conv.model, conv.settings) == (
        "Chest CT", key, None, MODEL, SETTINGS)
    assert set(conv.images) == {sha1, sha2}
    assert conv.images[sha1].png == first and conv.images[sha1].label == "axial 12/40"
    t1, t2 = conv.turns
    assert (t1.id, t1.index, t1.question, t1.image_shas) == (turn, 0, "What is shown?", [sha1, sha2])
    assert (t1.answer, t1.finish, t1.answer_tokens, t1.timings) == ("A chest CT.", "stop", [5, 6, 7], {"ttft_s": 0.4})
    assert (t2.id, t2.index, t2.question, t2.answer, t2.finish, t2.answer_tokens) == (
        turn2, 1, "右下肺有什么？", "", "pending", None)

    summary, = store.conversations()
    assert (summary.id, summary.title, summary.n_turns, summary.preview) == (cid, "Chest CT", 2, "右下肺有什么？")
    with pytest.raises(ValueError, match="not stored"):
        store.add_turn(cid, "q", ["f" * 64])
    for missing in [lambda: store.load(cid + 1), lambda: store.add_turn(cid + 1, "q", []),
                    lambda: store.append_answer(turn2 + 1, "late")]:
        with pytest.raises(KeyError):
            missing()


def test_study_info_only_when_given(store):
    info = {"patient_name": "DOE^JANE", "patient_id": "PID12345", "study_date": "20240101"}
    with_info = store.create_conversation("a", study_info=info)
    without = store.create_conversation("b")
    assert store.load(with_info).study_info == info
    assert store.load(without).study_info is None


def test_study_key_is_salted_per_installation(tmp_path):
    uid = "1.2.840.113619.2.55.3.604688119"
    with Store(tmp_path / "one.sqlite3") as one, Store(tmp_path / "two.sqlite3") as two:
        key = one.study_key(uid)
        assert len(key) == 64 and uid not in key
        assert one.study_key(uid) == key and one.study_key(uid + "1") != key
        assert two.study_key(uid) != key  # another installation's salt
    with Store(tmp_path / "one.sqlite3") as again:
        assert again.study_key(uid) == key  # the salt is kept in the file


def test_conversations_newest_first_and_by_study(store):
    a = store.create_conversation("a", "k1")
    b = store.create_conversation("b", "k2")
    c = store.create_conversation("c", "k1")
    assert [s.id for s in store.conversations()] == [c, b, a]
    answered(store, a, "q", "x")  # a change moves it to the top
    assert [s.id for s in store.conversations()] == [a, c, b]
    assert [s.id for s in store.conversations("k1")] == [a, c]
    store.add_turn(b, "q", [])  # so does a new question
    assert [s.id for s in store.conversations()] == [b, a, c]


def test_search_titles_questions_answers_and_chinese(store):
    lung = store.create_conversation("Lung nodule follow-up")
    answered(store, lung, "Is there a nodule?", "A 6 mm nodule in the right upper lobe.")
    zh = store.create_conversation("胸片")
    answered(store, zh, "这张胸片显示什么？", "右下肺可见斑片状阴影，考虑肺炎。")
    other = store.create_conversation("Knee MRI")
    answered(store, other, "Any tear?", "The meniscus is intact; 50% of cases differ.")
    pending = store.create_conversation("Brain")
    turn = store.add_turn(pending, "Bleeding?", [])
    store.append_answer(turn, "No hyperdense haemorrhage seen")  # still being written

    ids = lambda text: {s.id for s in store.search(text)}  # noqa: E731
    assert ids("nodule") == {lung}
    assert ids("RIGHT UPPER") == {lung}  # case-insensitive
    assert ids("follow-up") == {lung}  # title
    assert ids("肺炎") == {zh}  # two Chinese characters
    assert ids("斑片状阴影") == {zh}  # a Chinese substring inside a sentence
    assert ids("胸片") == {zh}
    assert ids("hyperdense") == {pending}  # a pending answer is found too
    assert ids("50%") == {other} and ids("%") == {other}  # LIKE wildcards are literal
    assert ids("pneumothorax") == set()
    assert ids("") == {lung, zh, other, pending}


def test_search_follows_edits_and_deletions(store):
    cid = store.create_conversation("x")
    first = answered(store, cid, "about the liver", "hepatic cyst")
    answered(store, cid, "and the spleen", "splenomegaly")
    assert {s.id for s in store.search("splenomegaly")} == {cid}
    store.edit_question(first, "about the kidney")
    assert store.search("splenomegaly") == [] and store.search("hepatic") == []
    assert [s.id for s in store.search("kidney")] == [cid]
    store.delete_conversation(cid)
    assert store.search("kidney") == []


def test_regenerate_and_edit(store):
    cid = store.create_conversation("x")
    turns = [answered(store, cid, f"question {i}", f"answer {i}") for i in range(4)]

    store.reset_answer(turns[3])
    last = store.load(cid).turns[3]
    assert (last.answer, last.finish, last.answer_tokens) == ("", "pending", None)
    store.append_answer(turns[3], "partial")
    store.finish_answer(turns[3], "cancelled", text="final text")
    assert store.load(cid).turns[3].answer == "final text"

    store.edit_question(turns[1], "edited question")
    conv = store.load(cid)
    assert [t.question for t in conv.turns] == ["question 0", "edited question"]
    assert (conv.turns[1].answer, conv.turns[1].finish) == ("", "pending")
    next_turn = store.add_turn(cid, "question 2 again", [])
    assert store.load(cid).turns[-1].index == 2 and next_turn not in turns

    store.edit_question(turns[0], "question 0 edited")  # deletes every later turn, the new one too
    assert [t.question for t in store.load(cid).turns] == ["question 0 edited"]
    with pytest.raises(KeyError):  # a late piece for a deleted turn lands nowhere
        store.append_answer(next_turn, "late")
    with pytest.raises(ValueError, match="unknown finish"):
        store.finish_answer(turns[0], "done")


def test_each_piece_is_committed_without_waiting_for_the_disk(store):
    # Streaming commits once a token: in WAL mode with synchronous=NORMAL a commit is appended to the log and
    # not flushed to the disk, so the stream never waits on an fsync (a killed process still keeps every piece,
    # see below; only a power cut can lose the last ones).
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    cid = store.create_conversation("x")
    turn = store.add_turn(cid, "q", [])
    reader = sqlite3.connect(store.path)
    expected = ""
    try:
        for i in range(1000):
            store.append_answer(turn, f"tok{i} ")
            expected += f"tok{i} "
            # committed at once: another connection sees the answer up to this piece
            assert reader.execute("SELECT answer FROM turns WHERE id = ?", (turn,)).fetchone()[0] == expected
    finally:
        reader.close()
    assert store.load(cid).turns[0].answer == expected


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from app.store import Store
store = Store(Path(sys.argv[1]))
cid = store.create_conversation("crash")
turn = store.add_turn(cid, "question", [])
for piece in ["The ", "answer ", "was "]:
    store.append_answer(turn, piece)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_process_keeps_partial_answer(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    run = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], cwd=Path(__file__).parents[2],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == -9, run.stderr
    with Store(path) as store:
        conv = store.load(store.conversations()[0].id)
    assert (conv.turns[0].answer, conv.turns[0].finish) == ("The answer was ", "pending")


def test_to_history_continues_a_conversation(store):
    cid = store.create_conversation("x")
    sha = store.add_image(cid, png(3))
    t1 = store.add_turn(cid, "first", [sha])
    store.finish_answer(t1, "stop", answer_tokens=[10, 11], text="one")
    t2 = store.add_turn(cid, "second", [])
    store.finish_answer(t2, "cancelled", answer_tokens=[12], text="tw")
    store.add_turn(cid, "third", [])
    store.append_answer(store.load(cid).turns[2].id, "interrupted")

    history = to_history(store.load(cid))
    assert history == [prompt.Turn("first", 1, "one", (10, 11)), prompt.Turn("second", 0, "tw", (12,)),
                       prompt.Turn("third", 0)]  # the interrupted last turn is to be answered again
    assert prompt.render(history).endswith("<|user|>\nthird\n<|assistant|>\n")


def test_model_identity_from_a_manifest():
    from inference.store.manifest import Manifest, ModelFile

    manifest = Manifest("tiny", "qwen2", ModelFile("t.gguf", "F32", 10, "a" * 64),
                        ModelFile("m.gguf", "F16", 5, "b" * 64), 4096, 64, 336, 576, 1)
    identity = model_identity(manifest)
    assert identity["name"] == "tiny"
    assert identity["text"]["file"] == "t.gguf" and identity["text"]["sha256"] == "a" * 64
    assert identity["mmproj"]["file"] == "m.gguf" and identity["mmproj"]["sha256"] == "b" * 64


def file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in [path, Path(f"{path}-wal")] if p.exists())


def test_delete_erases_text_and_images_from_the_file(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    secret_answer = "UNIQUE-ANSWER-TEXT-4f1c9 可见结节"
    image = png(7, size=96)
    with Store(path) as store:
        keep = store.create_conversation("keep")
        answered(store, keep, "kept question", "kept answer")
        gone = store.create_conversation("to delete")
        answered(store, gone, "SECRET-QUESTION-88", secret_answer, images=[image])
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = file_bytes(path)
        assert secret_answer.encode() in before and image[-200:] in before  # the test can see them

        store.delete_conversation(gone)
        after = file_bytes(path)
        for needle in [secret_answer.encode(), "可见结节".encode(), b"SECRET-QUESTION-88", image[100:164],
                       image[-200:]]:
            assert needle not in after
        assert [s.id for s in store.conversations()] == [keep]
        assert store.load(keep).turns[0].answer == "kept answer"
    assert "可见结节".encode() not in file_bytes(path)


def test_an_edit_erases_the_later_turns_and_the_images_only_they_used(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    kept_image, shared, dropped_image = png(11, size=96), png(12, size=96), png(13, size=96)
    with Store(path) as store:
        cid = store.create_conversation("x")
        first = answered(store, cid, "first question", "first answer", images=[kept_image, shared])
        answered(store, cid, "LATER-QUESTION-31", "LATER-ANSWER-31 结节", images=[dropped_image])
        answered(store, cid, "again about the shared one", "shared answer", images=[shared])
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert dropped_image[-200:] in file_bytes(path)  # the test can see it

        store.edit_question(first, "first question, edited")
        conv = store.load(cid)
        assert [t.question for t in conv.turns] == ["first question, edited"]
        assert set(conv.images) == set(conv.turns[0].image_shas) and len(conv.images) == 2  # its own images stay
        assert conv.images[conv.turns[0].image_shas[0]].png == kept_image
        after = file_bytes(path)
        for needle in [dropped_image[100:164], dropped_image[-200:], b"LATER-QUESTION-31",
                       "LATER-ANSWER-31 结节".encode()]:
            assert needle not in after
        assert kept_image[-200:] in after and shared[-200:] in after

        store.edit_question(first, "edited once more")  # nothing after it: nothing else goes
        assert len(store.load(cid).images) == 2


def test_corrupt_or_foreign_file_is_refused_by_name(tmp_path):
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="garbage.sqlite3.*not a conversation database"):
        Store(garbage)

    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE accounts (id INTEGER)")
    db.close()
    with pytest.raises(StoreError, match="foreign.sqlite3.*another program"):
        Store(foreign)

    newer = tmp_path / "newer.sqlite3"
    Store(newer).close()
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(StoreError, match="newer version"):
        Store(newer)

    with pytest.raises(StoreError, match="missing-dir"):
        Store(tmp_path / "missing-dir" / "x.sqlite3")


def test_disk_full_keeps_earlier_data(store):
    cid = store.create_conversation("x")
    turn = answered(store, cid, "question", "answer kept")
    # A real SQLITE_FULL: the database may not grow past its current size.
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match="^disk full: .*conversations.sqlite3"):
        store.add_image(cid, png(9, size=256))
    with pytest.raises(StoreError, match="^disk full"):
        store.append_answer(turn, "x" * 200_000)
    conv = store.load(cid)
    assert conv.images == {} and conv.turns[0].answer == "answer kept"
    store._db.execute("PRAGMA max_page_count = 1073741823")
    store.append_answer(turn, " and more")  # works again once there is room
    assert store.load(cid).turns[0].answer == "answer kept and more"


def test_open_default_uses_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    with Store.open_default() as store:
        assert store.path == tmp_path / "data" / "conversations.sqlite3"
        store.create_conversation("x")
    assert os.path.getsize(tmp_path / "data" / "conversations.sqlite3") > 0


def test_engine_continues_a_stored_conversation_after_a_restart(converted, tmp_path):
    """The stored turns (with their token ids) give the engine the same continuation as the original session."""
    from inference.engine import Engine, PreparedImage
    from inference.sampling import SamplingSettings

    greedy = SamplingSettings.greedy_decoding(8)
    folder = converted("qwen2", "original", "F32")
    path = tmp_path / "conversations.sqlite3"
    with Engine.from_folder(folder) as engine, Store(path) as store:
        image = engine.prepare_image(png(11))
        first = engine.ask([prompt.Turn("Describe the image.", 1)], [image], greedy)
        expected = engine.ask([first.as_history("Describe the image.", 1), prompt.Turn("Anything else?")],
                              [image], greedy)
        cid = store.create_conversation("x")
        turn = store.add_turn(cid, "Describe the image.", [store.add_image(cid, image.png)])
        store.finish_answer(turn, first.finish, first.token_ids, first.timings, text=first.text)

    with Engine.from_folder(folder) as engine, Store(path) as store:
        conv = store.load(cid)
        images = [PreparedImage(conv.images[s].png, s) for t in conv.turns for s in t.image_shas]
        again = engine.ask(to_history(conv) + [prompt.Turn("Anything else?")], images, greedy)
    assert (again.text, again.token_ids) == (expected.text, expected.token_ids)
