"""Saved image states in Settings: their disk limit, what they use now, and Clear, which removes every state file
(overwritten first) through the engine runner, never while the engine may be writing one (real tiny model)."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from app.settings import Settings
from app.ui.engine_runner import EngineRunner, states_dir
from app.ui.saved_states import size_text
from app.ui.settings_dialog import SettingsDialog
from inference.engine import EngineSettings
from inference.kv_states import DEFAULT_LIMIT_BYTES, SUFFIX
from inference.prompt import Turn
from inference.sampling import SamplingSettings

TIMEOUT_MS = 120_000
MIB = 1024**2


def _state_files():
    return sorted(states_dir().glob(f"*{SUFFIX}"))


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_settings_show_the_states_use_and_limit_and_clear_overwrites_them(qtbot, tmp_path):
    folder = states_dir()
    folder.mkdir(parents=True)
    for n in range(3):
        (folder / f"{n:064x}-{n + 1}{SUFFIX}").write_bytes(b"\x07" * MIB)
    kept_view = tmp_path / "same-inode"
    os.link(folder / f"{0:064x}-1{SUFFIX}", kept_view)  # sees what happens to the file's bytes on the disk
    runner = EngineRunner()
    settings = Settings()
    assert settings.state_limit_bytes == DEFAULT_LIMIT_BYTES == 2 * 1024**3
    dialog = SettingsDialog(settings, runner=runner)
    qtbot.addWidget(dialog)
    field = dialog.saved_states
    qtbot.waitUntil(lambda: field.used is not None, timeout=10_000)
    assert field.usage.text() == "Saved image states: 3 MB of 2 GB"
    field.set_limit_bytes(512 * MIB)
    assert field.usage.text() == "Saved image states: 3 MB of 512 MB"
    assert dialog.result_settings().state_limit_bytes == 512 * MIB
    dialog.restore_defaults()
    assert dialog.result_settings().state_limit_bytes == DEFAULT_LIMIT_BYTES

    with qtbot.waitSignal(runner._clearing_ended, timeout=TIMEOUT_MS) as cleared:
        field.clear_button.click()
    assert cleared.args[1] == 3 and _state_files() == []
    assert kept_view.read_bytes() == bytes(MIB)  # overwritten before it was unlinked
    qtbot.waitUntil(lambda: field.usage.text() == "Saved image states: 0 bytes of 2 GB", timeout=10_000)
    runner.shutdown()


def test_size_text_uses_the_units_the_limit_is_set_in():
    assert (size_text(2 * 1024**3), size_text(340 * MIB), size_text(1536), size_text(12)) == \
        ("2 GB", "340 MB", "1.5 KB", "12 bytes")


@pytest.fixture
def model(converted, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(converted("qwen2", "original", "F32"), folder)
    return folder


def test_clear_waits_for_the_running_answer_and_removes_the_state_saved_after_it(qtbot, model):
    runner = EngineRunner()
    runner.set_model(model, EngineSettings())
    sampling = SamplingSettings.greedy_decoding(8)
    events = []
    request = runner.request([Turn("Describe this image.", 1)], [_png(1)], sampling, owner="chat")
    request.finished.connect(lambda answer: events.append(("answered", answer.finish)))
    runner.submit(request)
    clearing = runner.clear_saved_states()  # asked while the answer runs
    assert runner.clear_saved_states() is clearing  # asked twice: cleared once
    clearing.ended.connect(lambda removed: events.append(("cleared", removed)))
    qtbot.waitUntil(lambda: len(events) == 2, timeout=TIMEOUT_MS)
    assert events[0] == ("answered", "length")
    assert events[1][0] == "cleared" and events[1][1] >= 1  # the answered conversation's state was saved, then removed
    assert _state_files() == [] and runner.engine is None  # the engine ended first; it starts with the next question

    runner.state_limit_bytes = 0  # "none saved", from the engine's next start
    request = runner.request([Turn("Describe this image.", 1)], [_png(2)], sampling, owner="chat")
    runner.submit(request)
    with qtbot.waitSignal(request.finished, timeout=TIMEOUT_MS):
        pass
    assert runner.engine.state_limit_bytes == 0 and runner.engine.state_dir is None
    clearing = runner.clear_saved_states()
    with qtbot.waitSignal(clearing.ended, timeout=TIMEOUT_MS) as cleared:
        pass
    assert cleared.args == [0]  # the engine saved nothing

    runner.state_limit_bytes = 64 * MIB
    request = runner.request([Turn("Describe this image.", 1)], [_png(3)], sampling, owner="chat")
    runner.submit(request)
    with qtbot.waitSignal(request.finished, timeout=TIMEOUT_MS):
        pass
    assert runner.engine.state_limit_bytes == 64 * MIB and runner.engine.state_dir == states_dir()
    runner.shutdown()
