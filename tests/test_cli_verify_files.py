"""`huatuo verify-files DIR` as a user runs it: unchanged files pass, a changed byte fails with a clear message,
Ctrl+C cancels."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys

import pytest

from app.cli import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, main
from inference.store.manifest import Manifest, ModelFile
from inference.store.verified import VERIFIED_NAME

GIB = 1024**3


@pytest.fixture
def folder(converted, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(converted("qwen2", "original", "F32"), target)
    return target


def test_unchanged_files_pass_and_are_stamped(folder, capsys):
    (folder / VERIFIED_NAME).unlink(missing_ok=True)
    assert main(["verify-files", str(folder)]) == EXIT_OK
    out = capsys.readouterr().out
    text, mmproj = Manifest.read(folder).paths(folder)
    assert out.startswith("OK:") and text.name in out and mmproj.name in out
    assert (folder / VERIFIED_NAME).is_file()


def test_a_changed_byte_fails_and_names_the_file(folder, capsys):
    text, _ = Manifest.read(folder).paths(folder)
    data = bytearray(text.read_bytes())
    data[100] ^= 0x10
    text.write_bytes(bytes(data))
    assert main(["verify-files", str(folder)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"CHANGED: {text.name}: its SHA-256 does not match the manifest" in err
    assert "FAILED:" in err and "will not load until it is installed again" in err


def test_a_folder_that_is_not_a_model_is_one_clear_line(tmp_path, capsys):
    assert main(["verify-files", str(tmp_path)]) == EXIT_FAILED
    assert capsys.readouterr().err.startswith(f"error: {tmp_path}: no manifest.json")


def test_ctrl_c_cancels_and_leaves_no_stamp(tmp_path):
    """A model too large to be hashed before the interrupt arrives (a sparse file: nothing is written to disk)."""
    folder = tmp_path / "large"
    folder.mkdir()
    with open(folder / "text.gguf", "wb") as f:
        f.truncate(16 * GIB)
    (folder / "mmproj.gguf").write_bytes(b"GGUF")
    Manifest("large", "qwen2", ModelFile("text.gguf", "F16", 16 * GIB, "0" * 64),
             ModelFile("mmproj.gguf", "F16", 4, "1" * 64), context_length=4096, hidden_size=8, image_size=336,
             image_tokens=576, vision_layers_used=1).write(folder)
    process = subprocess.Popen([sys.executable, "-m", "app", "verify-files", str(folder)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    seen = b""
    try:
        while b"hashing" not in seen:  # the progress bar is on screen: hashing has begun
            ready, _, _ = select.select([process.stderr], [], [], 120)
            assert ready, seen
            chunk = os.read(process.stderr.fileno(), 4096)
            assert chunk, seen
            seen += chunk
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == EXIT_CANCELLED
    assert "cancelled: the files were not all read" in (seen + err).decode()
    assert not (folder / VERIFIED_NAME).exists()
