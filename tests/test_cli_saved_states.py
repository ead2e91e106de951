"""`huatuo ask` and `huatuo chat` save what the model read of the images in the private data folder, as the app
does, and a new process (a second `huatuo ask`, a restarted `huatuo chat`) restores it instead of recomputing it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from app.paths import STATES_FOLDER
from app.privacy import exposures
from conversion.verify import sample_image
from inference.kv_states import SUFFIX

Q1 = "What is shown? 这是什么？"
Q2 = "Is the left side normal?"


def _huatuo(data, *args, stdin=None):
    """The command in a new process with its own data folder, started as a desktop session would (umask 022)."""
    done = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=300,
                          input=stdin, env={**os.environ, "HUATUO_DATA_DIR": str(data)},
                          preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "xray.png"
    sample_image().save(path)
    return path


@pytest.fixture
def model(converted):
    return str(converted("qwen2", "original", "Q8_0"))


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_a_second_ask_about_the_same_image_restores_it_and_the_data_folder_is_private(model, png, tmp_path):
    data = tmp_path / "new" / "data"  # no data folder yet: the command creates it
    ask = ("ask", "--model", model, "--image", str(png), "--greedy", "--max-tokens", "8", "--json")
    [first] = _huatuo(data, *ask, Q1)
    read = first["prepared"]
    assert read["images_encoded"] == 1 and read["restored_tokens"] == 0
    assert first["timings"]["images_encoded"] == first["timings"]["images_decoded"] == 0  # read before the question
    assert first["timings"]["reused_tokens"] == read["n_past"]

    states = data / STATES_FOLDER
    saved = sorted(states.glob(f"*{SUFFIX}"))
    assert saved  # the image prefix (and the answered conversation)
    assert _mode(data) == 0o700 and _mode(states) == 0o700 and {_mode(p) for p in saved} == {0o600}
    assert exposures(data)[0] == []

    [again] = _huatuo(data, *ask, Q1)  # a new process: an empty cache
    assert again["prepared"]["images_encoded"] == again["prepared"]["images_decoded"] == 0
    assert again["prepared"]["restored_tokens"] == read["n_past"]
    assert again["timings"]["images_encoded"] == again["timings"]["images_decoded"] == 0
    assert again["answer"] == first["answer"]  # the restored image gives the same greedy answer


def test_a_restarted_chat_restores_its_images_and_answers_the_same(model, png, tmp_path):
    chat = ("chat", "--model", model, "--image", str(png), "--greedy", "--max-tokens", "6", "--json")
    script = f"{Q1}\n{Q2}\n/quit\n"
    first, follow = _huatuo(tmp_path / "data", *chat, stdin=script)
    assert first["prepared"]["images_encoded"] == 1 and first["prepared"]["restored_tokens"] == 0
    assert "prepared" not in follow and follow["timings"]["images_decoded"] == 0

    again, follow_again = _huatuo(tmp_path / "data", *chat, stdin=script)  # the chat restarted, same history
    assert again["prepared"]["restored_tokens"] == first["prepared"]["n_past"]
    assert again["prepared"]["images_encoded"] == again["prepared"]["images_decoded"] == 0
    assert again["timings"]["images_encoded"] == again["timings"]["images_decoded"] == 0
    assert (again["answer"], follow_again["answer"]) == (first["answer"], follow["answer"])
    assert follow_again["timings"]["reused_tokens"] == follow["timings"]["reused_tokens"]


def test_no_state_is_saved_when_the_settings_allow_none(model, png, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "settings.json").write_text(json.dumps({"state_limit_bytes": 0}))
    ask = ("ask", "--model", model, "--image", str(png), "--greedy", "--max-tokens", "4", "--json", Q1)
    _huatuo(data, *ask)
    [again] = _huatuo(data, *ask)
    assert again["prepared"]["restored_tokens"] == 0 and again["prepared"]["images_encoded"] == 1
    assert not (data / STATES_FOLDER).exists()
