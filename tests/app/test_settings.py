"""Settings survive a restart, a broken file is not fatal, the dialogs edit them, and the first run asks for the
intended-use acknowledgement."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QLabel

from app.settings import Settings
from app.ui.chat import suggested_questions
from app.ui.settings_dialog import FirstRunDialog, SettingsDialog


def test_settings_round_trip_and_recent(tmp_path):
    settings = Settings(threads=3, greedy=True, language="zh", theme="dark")
    for path in ("a", "b", "a", *"cdefghijkl"):
        settings.add_recent(path)
    settings.acknowledge()
    settings.save(tmp_path)
    loaded = Settings.load(tmp_path)
    assert loaded == settings
    assert loaded.recent[:3] == ["l", "k", "j"] and len(loaded.recent) == 10 and loaded.recent.count("a") <= 1
    assert loaded.engine_settings().n_threads == 3 and loaded.sampling().greedy


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"threads": "many", "greedy": 1, "theme": 7}'])
def test_a_broken_settings_file_falls_back_to_defaults(tmp_path, content):
    (tmp_path / "settings.json").write_text(content)
    loaded = Settings.load(tmp_path)
    assert loaded.threads is None and loaded.greedy is False and loaded.theme == "light"


def test_official_sampling_is_the_default():
    sampling = Settings().sampling()
    assert (sampling.temperature, sampling.repetition_penalty, sampling.max_new_tokens) == (0.2, 1.2, 512)
    assert sampling.top_k == 50 and not sampling.greedy
    assert not Settings().show_identifiers and Settings().acknowledged is None


def test_the_settings_dialog_states_the_official_sampling(qtbot):
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    texts = [label.text() for label in dialog.findChildren(QLabel)]
    assert any("Official sampling: temperature 0.2, repetition penalty 1.2, top-k 50, at most 512 new tokens."
               in text for text in texts)


def test_settings_dialog_edits_a_copy(qtbot):
    settings = Settings()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    dialog.threads.setValue(4)
    dialog.context.setValue(8192)
    dialog.identifiers.setChecked(True)
    dialog.language.setCurrentIndex(dialog.language.findData("zh"))
    result = dialog.result_settings()
    assert (result.threads, result.context_size, result.show_identifiers, result.language) == (4, 8192, True, "zh")
    assert settings.threads is None  # the original is untouched until the window applies the result
    dialog.threads.setValue(0)
    assert dialog.result_settings().threads is None  # 0 means "physical cores"


def test_first_run_needs_the_acknowledgement(qtbot):
    dialog = FirstRunDialog()
    qtbot.addWidget(dialog)
    ok = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)
    assert not ok.isEnabled()
    dialog.understood.setChecked(True)
    assert ok.isEnabled()


def test_suggested_questions_never_ask_for_a_diagnosis():
    data = json.loads(open("resources/suggested_questions.json", encoding="utf-8").read())
    for modality in [m for m in data if not m.startswith("_")] + [None]:
        for language in ("en", "zh"):
            questions = suggested_questions(modality, language)
            assert questions
            for question in questions:
                assert "diagnos" not in question.lower() and "诊断" not in question
    assert any("CT" in q for q in suggested_questions("CT", "en"))
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in q) for q in suggested_questions("MR", "zh"))
