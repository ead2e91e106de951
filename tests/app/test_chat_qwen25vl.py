"""The chat answering with a converted Qwen2.5-VL model: the attached view is shown at the size this model gets it,
and the streamed answer is the engine's greedy answer to that image in the model's own prompt format."""

from __future__ import annotations

import shutil

import pytest
from pydicom.data import get_testdata_file

from app.settings import Settings
from app.ui.main import MainWindow
from app.ui.states_clearing import forget_saved_states, states_dir
from inference.engine import Engine
from inference.prompt import Turn
from inference.sampling import SamplingSettings
from tests.support.network_guard import no_network  # noqa: F401 (a fixture)

ANSWER_TIMEOUT_MS = 120_000


@pytest.fixture
def data_dir(tmp_path, monkeypatch, qwen25vl_converted):
    folder = tmp_path / "data"
    shutil.copytree(qwen25vl_converted, folder / "models" / "tiny-qwen25vl")
    monkeypatch.setenv("HUATUO_DATA_DIR", str(folder))
    Settings(greedy=True, max_new_tokens=16, acknowledged="2026-01-01T00:00:00+00:00").save(folder)
    return folder


def test_the_chat_answers_with_a_qwen25vl_model(data_dir, qtbot, no_network):  # noqa: F811
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=10_000)
    window.attach_view(False)
    [(_, png, _)] = window.chat.pending_images
    # The 128 x 128 CT slice: smart-resized to the nearest multiples of 28 (5 x 5 merged patches), not a square
    # padded to the projector's size.
    assert "the model sees 140×140, 25 image tokens" in window.chat.attachments.thumbs[0].toolTip()

    pieces = []
    window.chat.input.setPlainText("Describe this image. 请描述。")
    window.chat.send()
    window.chat.request.text.connect(pieces.append)
    with qtbot.waitSignal(window.chat.request.finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        pass
    answer = blocker.args[0]
    assert answer.finish in ("stop", "length") and answer.text and "".join(pieces) == answer.text
    # The answer's cache was saved under the image as this model saw it; forgetting the image removes it.
    qtbot.waitUntil(lambda: bool(list(states_dir().glob("*.kvstate"))), timeout=ANSWER_TIMEOUT_MS)
    window.close()
    assert forget_saved_states([png]) >= 1 and not list(states_dir().glob("*.kvstate"))

    with Engine.from_folder(data_dir / "models" / "tiny-qwen25vl", Settings.load().engine_settings()) as engine:
        image = engine.prepare_image(png)
        direct = engine.ask([Turn("Describe this image. 请描述。", 1)], [image], SamplingSettings.greedy_decoding(16))
    assert answer.text == direct.text
