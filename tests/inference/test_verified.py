"""Model files are hashed once: a later load trusts the recorded identity, any change brings the full hash back."""

from __future__ import annotations

import os
import shutil

import pytest

from inference.store import gguf_check
from inference.store.gguf_check import ModelFileError, check_folder
from inference.store.manifest import Manifest
from inference.store.models import delete_model, import_pair
from inference.store.verified import VERIFIED_NAME


@pytest.fixture
def hashed(monkeypatch):
    """The names of the files whose whole content the check reads (hashes), in order."""
    names = []
    real = gguf_check.sha256_file

    def counting(path, *args, **kwargs):
        names.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(gguf_check, "sha256_file", counting)
    return names


@pytest.fixture
def folder(converted, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(converted("qwen2", "original", "F32"), target)  # a copy is another file: hashed again
    return target


def _pair(folder):
    return Manifest.read(folder).paths(folder)


def test_a_model_is_hashed_on_its_first_load_only(folder, hashed):
    text, mmproj = _pair(folder)
    check_folder(folder)
    assert hashed == [text.name, mmproj.name]
    assert (folder / VERIFIED_NAME).is_file()
    check_folder(folder)
    check_folder(folder)
    assert hashed == [text.name, mmproj.name]  # the next loads read none of the content
    check_folder(folder, rehash=True)  # "verify files": a full check on demand
    assert hashed == [text.name, mmproj.name] * 2


def test_a_touched_file_is_hashed_again_and_then_trusted(folder, hashed):
    text, mmproj = _pair(folder)
    check_folder(folder)
    st = text.stat()
    os.utime(text, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    check_folder(folder)
    assert hashed == [text.name, mmproj.name, text.name]  # only the changed file
    check_folder(folder)
    assert hashed == [text.name, mmproj.name, text.name]


def test_a_file_changed_after_install_is_refused(folder, hashed):
    """One byte, the same size, a new modification time: caught at the next load."""
    text, _ = _pair(folder)
    check_folder(folder)
    data = bytearray(text.read_bytes())
    data[-10] ^= 0xFF
    text.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="SHA-256 does not match the manifest"):
        check_folder(folder)
    with pytest.raises(ModelFileError, match="SHA-256 does not match the manifest"):
        check_folder(folder)  # and at every load after: a refused file is never recorded


def test_a_change_hidden_behind_the_old_modification_time_is_caught(folder):
    text, _ = _pair(folder)
    check_folder(folder)
    st = text.stat()
    data = bytearray(text.read_bytes())
    data[-10] ^= 0xFF
    text.write_bytes(bytes(data))
    os.utime(text, ns=(st.st_atime_ns, st.st_mtime_ns))  # the change time still moves
    with pytest.raises(ModelFileError, match="SHA-256 does not match the manifest"):
        check_folder(folder)


def test_a_damaged_record_means_a_full_check(folder, hashed):
    text, mmproj = _pair(folder)
    check_folder(folder)
    (folder / VERIFIED_NAME).write_text("{not json")
    check_folder(folder)
    assert hashed == [text.name, mmproj.name] * 2


def test_an_imported_pair_is_not_hashed_at_its_first_load(folder, hashed, tmp_path):
    text, mmproj = _pair(folder)
    model = import_pair(text, mmproj, tmp_path / "models")  # hashed while copied
    check_folder(model.folder)
    assert hashed == []
    delete_model(model)
    assert not model.folder.exists()  # the record goes with the model
