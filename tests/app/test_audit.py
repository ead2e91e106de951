"""The audit log: records of hashes only, chained so that any change to an earlier line is found."""

from __future__ import annotations

import json
import threading

import pytest

from app.audit import GENESIS, AskedQuestion, AuditLog, sha256_text
from app.store import Store

MODEL = {"name": "tiny", "text": {"file": "tiny-F32.gguf", "sha256": "a" * 64},
         "mmproj": {"file": "tiny-mmproj-F16.gguf", "sha256": "b" * 64}}
SETTINGS = {"temperature": 0.2, "repetition_penalty": 1.2, "max_new_tokens": 512}
QUESTION = "Patient DOE^JANE: 右下肺有阴影吗？"
ANSWER = "右下肺可见斑片状阴影。"


def record(log: AuditLog, n: int) -> dict:
    return log.append(study_key=sha256_text(f"study {n}"), image_sha256=[sha256_text(f"image {n}")], model=MODEL,
                      settings=SETTINGS, question_sha256=sha256_text(f"{QUESTION} {n}"),
                      answer_sha256=sha256_text(f"{ANSWER} {n}"), finish="stop")


def test_records_hold_hashes_and_chain(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    assert log.verify() == (True, None)  # no log yet
    first = record(log, 0)
    second = record(log, 1)
    lines = log.path.read_bytes().splitlines()
    assert len(lines) == 2
    stored = json.loads(lines[0])
    assert stored == first
    assert stored["prev"] == GENESIS and second["prev"] == sha256_text(lines[0].decode())
    assert stored["question_sha256"] == sha256_text(f"{QUESTION} 0") and stored["finish"] == "stop"
    assert stored["model"] == MODEL and stored["settings"] == SETTINGS
    assert stored["time"].endswith("+00:00")
    text = log.path.read_text(encoding="utf-8")
    for secret in ["DOE^JANE", "右下肺", "阴影", "Patient"]:
        assert secret not in text  # no question or answer text, no patient data
    assert log.verify() == (True, None)


def test_a_question_is_recorded_as_it_was_asked_when_its_answer_ends(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    settings = dict(SETTINGS)
    asked = AskedQuestion(study_key=sha256_text("study"), image_sha256=(sha256_text("image"),), model=MODEL,
                          settings=dict(settings), question=QUESTION)
    settings["temperature"] = 0.9  # what changes after the question was asked does not reach its record
    written = log.record_answer(asked, ANSWER, "cancelled")
    [stored] = [json.loads(line) for line in log.path.read_text(encoding="utf-8").splitlines()]
    assert stored == written and stored["settings"] == SETTINGS and stored["model"] == MODEL
    assert stored["question_sha256"] == sha256_text(QUESTION) and stored["answer_sha256"] == sha256_text(ANSWER)
    assert stored["image_sha256"] == [sha256_text("image")] and stored["finish"] == "cancelled"
    assert QUESTION not in log.path.read_text(encoding="utf-8") and ANSWER not in log.path.read_text(encoding="utf-8")


def test_records_written_from_two_threads_at_once_stay_chained(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    threads = [threading.Thread(target=lambda: [record(log, n) for n in range(40)]) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log.path.read_bytes().splitlines()) == 80 and log.verify() == (True, None)


def test_text_instead_of_a_hash_is_refused(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(ValueError, match="question_sha256"):
        log.append(study_key=None, image_sha256=[], model=MODEL, settings=SETTINGS, question_sha256=QUESTION,
                   answer_sha256=sha256_text(ANSWER), finish="stop")
    with pytest.raises(ValueError, match="study_key"):
        log.append(study_key="1.2.840.10008.1", image_sha256=[], model=MODEL, settings=SETTINGS,
                   question_sha256=sha256_text(QUESTION), answer_sha256=sha256_text(ANSWER), finish="stop")
    assert not log.path.exists()


@pytest.mark.parametrize("tamper, problem", [
    (lambda lines: [lines[0], lines[1].replace(b'"stop"', b'"error"'), *lines[2:]], "line 3 does not follow line 2"),
    (lambda lines: [lines[0], *lines[2:]], "line 2 does not follow"),
    (lambda lines: lines[1:], "line 1 does not follow the start"),
    (lambda lines: [lines[0], lines[2], lines[1], lines[3]], "line 2 does not follow"),
    (lambda lines: [lines[0], b"{not json", *lines[1:]], "line 2 is not a valid record"),
    (lambda lines: [lines[0], json.dumps({"prev": sha256_text(lines[0].decode())}).encode(), *lines[1:]],
     "line 2 lacks time, study_key"),
])
def test_tampering_is_found(tmp_path, tamper, problem):
    log = AuditLog(tmp_path / "audit.jsonl")
    for n in range(4):
        record(log, n)
    lines = log.path.read_bytes().splitlines()
    log.path.write_bytes(b"\n".join(tamper(lines)) + b"\n")
    ok, message = log.verify()
    assert not ok and problem in message and "audit.jsonl" in message


def test_torn_last_line_is_reported_and_not_glued_to_the_next(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    record(log, 0)
    with open(log.path, "ab") as f:
        f.write(b'{"time": "2024')  # a write cut short by a crash
    assert log.verify() == (False, f"{log.path}: line 2 is incomplete (a write was interrupted)")
    record(log, 1)
    lines = log.path.read_bytes().splitlines()
    assert lines[1] == b'{"time": "2024' and json.loads(lines[2])["prev"] == sha256_text(lines[1].decode())
    assert log.verify() == (False, f"{log.path}: line 2 is not a valid record")


def test_long_log_chains_across_read_windows(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    big = dict(SETTINGS, note="x" * 10_000)  # lines longer than the tail window
    for n in range(3):
        log.append(study_key=None, image_sha256=[], model=MODEL, settings=big, question_sha256=sha256_text(str(n)),
                   answer_sha256=sha256_text(str(n)), finish="length")
    assert log.verify() == (True, None)


def test_default_path_and_conversation_deletion_leaves_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    log = AuditLog()
    assert log.path == tmp_path / "data" / "audit.jsonl"
    with Store.open_default() as store:
        cid = store.create_conversation("x")
        record(log, 0)
        before = log.path.read_bytes()
        store.delete_conversation(cid)
    assert log.path.read_bytes() == before and log.verify() == (True, None)
