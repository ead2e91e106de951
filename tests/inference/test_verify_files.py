"""Verify files: a full re-hash on demand finds a changed byte, passes unchanged files (and stamps them as verified
again, so the next load reads nothing), and a cancelled check changes no stamp."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from inference.cancellation import Cancelled
from inference.store import gguf_check
from inference.store.gguf_check import ModelFileError, check_folder
from inference.store.manifest import Manifest
from inference.store.verified import VERIFIED_NAME
from inference.store.verify_files import verify_files


@pytest.fixture
def folder(converted, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(converted("qwen2", "original", "F32"), target)
    return target


@pytest.fixture
def hashed_at_load(monkeypatch):
    names = []
    real = gguf_check.sha256_file
    monkeypatch.setattr(gguf_check, "sha256_file", lambda path, *a, **k: names.append(path.name) or real(path, *a, **k))
    return names


def _stamped(folder) -> set[str]:
    return set(json.loads((folder / VERIFIED_NAME).read_text())["files"])


def test_unchanged_files_pass_and_are_stamped_so_the_next_load_reads_none(folder, hashed_at_load):
    text, mmproj = Manifest.read(folder).paths(folder)
    seen = []
    check = verify_files(folder, lambda done, total: seen.append((done, total)))
    assert check.ok and check.problems == () and check.files == (text.name, mmproj.name)
    total = text.stat().st_size + mmproj.stat().st_size
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert _stamped(folder) == {text.name, mmproj.name}
    check_folder(folder)
    assert hashed_at_load == []  # the load trusted the stamps just written


def test_one_changed_byte_is_reported_and_its_file_loses_its_stamp(folder, hashed_at_load):
    text, mmproj = Manifest.read(folder).paths(folder)
    assert verify_files(folder).ok
    data = bytearray(mmproj.read_bytes())
    data[len(data) // 2] ^= 0x01
    mmproj.write_bytes(bytes(data))
    check = verify_files(folder)
    assert not check.ok and len(check.problems) == 1
    assert mmproj.name in check.problems[0] and "SHA-256 does not match the manifest" in check.problems[0]
    assert _stamped(folder) == {text.name}  # the load hashes it again, and refuses it
    with pytest.raises(ModelFileError, match="SHA-256 does not match"):
        check_folder(folder)
    assert hashed_at_load == [mmproj.name]


def test_a_missing_or_truncated_file_is_reported(folder):
    text, mmproj = Manifest.read(folder).paths(folder)
    mmproj.unlink()
    text.write_bytes(text.read_bytes()[:-1])
    problems = verify_files(folder).problems
    assert len(problems) == 2 and "bytes, the manifest says" in problems[0] and "is missing" in problems[1]


def test_a_cancelled_check_stops_and_changes_no_stamp(folder):
    text, mmproj = Manifest.read(folder).paths(folder)
    verify_files(folder)
    before = (folder / VERIFIED_NAME).read_bytes()
    data = bytearray(mmproj.read_bytes())
    data[-5] ^= 0x01
    mmproj.write_bytes(bytes(data))
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append(done)
        if done > 0:
            cancel.set()  # as if the user pressed Cancel after the first block

    with pytest.raises(Cancelled):
        verify_files(folder, progress, cancel)
    assert seen[-1] < text.stat().st_size + mmproj.stat().st_size
    assert (folder / VERIFIED_NAME).read_bytes() == before


def test_a_folder_without_a_manifest_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="no manifest.json"):
        verify_files(tmp_path)
