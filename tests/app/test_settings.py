"""Settings survive a restart, a broken file is not fatal, the dialogs edit them, and the first run asks for the
intended-use acknowledgement."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from PySide6.QtWidgets import QDialogButtonBox, QLabel

from app.settings import Settings, longest_answer_bound
from app.suggestions import suggested_questions
from app.ui.settings_dialog import FirstRunDialog, SettingsDialog
from inference.store.manifest import Manifest, ModelFile


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
    assert result.keep_repacked_weights and result.engine_settings().keep_repacked_weights  # on by default
    dialog.keep_repacked.setChecked(False)
    assert not dialog.result_settings().engine_settings().keep_repacked_weights
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


def _manifest(context_length=4096, image_tokens=576) -> Manifest:
    """A HuatuoGPT-Vision-7B manifest: a 4096-token context, 576 tokens an image."""
    files = ModelFile("text.gguf", "Q4_K_M", 1, "0" * 64), ModelFile("mmproj.gguf", "F16", 1, "1" * 64)
    return Manifest("HuatuoGPT-Vision-7B", "qwen2", *files, context_length=context_length, hidden_size=3584,
                    image_size=336, image_tokens=image_tokens, vision_layers_used=23)


def test_restore_defaults_resets_every_field_but_saves_nothing(qtbot):
    settings = Settings(threads=3, context_size=8192, gpu_layers=12, temperature=0.9, repetition_penalty=1.5,
                        max_new_tokens=1000, greedy=True, language="zh", show_identifiers=True, theme="dark",
                        recent=["a"], image_max_tokens=512, keep_repacked_weights=False)
    settings.acknowledge()
    dialog = SettingsDialog(settings)
    qtbot.addWidget(dialog)
    assert dialog.result_settings() == settings  # the fields show the settings as they are
    dialog.restore_button.click()
    restored = dialog.result_settings()
    defaults = Settings()
    for name in ("threads", "context_size", "gpu_layers", "temperature", "repetition_penalty", "max_new_tokens",
                 "greedy", "language", "show_identifiers", "theme", "image_max_tokens", "keep_repacked_weights"):
        assert getattr(restored, name) == getattr(defaults, name), name
    assert (restored.acknowledged, restored.recent) == (settings.acknowledged, ["a"])  # not settings of the dialog
    assert settings.threads == 3 and settings.greedy  # nothing applied before OK
    assert dialog.temperature.isEnabled()  # greedy went off with the defaults


def test_sampling_fields_are_disabled_while_greedy_is_on(qtbot):
    dialog = SettingsDialog(Settings(greedy=True))
    qtbot.addWidget(dialog)
    sampling_fields = (dialog.temperature, dialog.repetition)
    assert not any(field.isEnabled() for field in sampling_fields)
    assert dialog.max_tokens.isEnabled()  # the longest answer applies to greedy answers too
    dialog.greedy.setChecked(False)
    assert all(field.isEnabled() for field in sampling_fields)
    dialog.greedy.setChecked(True)
    assert not any(field.isEnabled() for field in sampling_fields)


def test_the_longest_answer_is_bounded_by_what_fits_next_to_an_image(qtbot):
    dialog = SettingsDialog(Settings(max_new_tokens=4000), model=_manifest())
    qtbot.addWidget(dialog)
    assert dialog.answer_bound() == 4096 - 576 == dialog.max_tokens.maximum()
    assert dialog.max_tokens.value() == 3520 and dialog.result_settings().max_new_tokens == 3520
    assert "3520" in dialog.max_tokens.suffix() and "576" in dialog.max_tokens.toolTip()
    dialog.context.setValue(2048)  # a smaller context set by hand bounds it further
    assert dialog.max_tokens.maximum() == 2048 - 576 and dialog.max_tokens.value() == 1472
    dialog.context.setValue(16384)
    assert dialog.max_tokens.maximum() == 16384 - 576
    dialog.max_tokens.setValue(9000)
    assert dialog.result_settings().max_new_tokens == 9000
    dialog.context.setValue(0)  # the model's own again
    assert dialog.max_tokens.value() == 3520


def _qwen25vl_manifest() -> Manifest:
    """A HuatuoGPT-Vision-7B-Qwen2.5VL manifest: an 8192-token context, 192 tokens an image as trained."""
    return replace(_manifest(context_length=8192, image_tokens=192), name="HuatuoGPT-Vision-7B-Qwen2.5VL",
                   text_architecture="qwen2vl", family="qwen2.5-vl")


def test_the_image_token_budget_is_set_for_a_qwen25vl_model_only(qtbot):
    dialog = SettingsDialog(Settings(max_new_tokens=8000), model=_qwen25vl_manifest())
    qtbot.addWidget(dialog)
    field = dialog.image_tokens
    assert field.isEnabled() and dialog.image_tokens_note.text() == ""
    assert (field.value(), field.minimum(), field.maximum()) == (192, 4, 1024)  # the trained budget; families' bound
    tip = field.toolTip()
    assert "More tokens: finer detail" in tip and "first answer about an image is slower" in tip
    assert dialog.result_settings().image_max_tokens is None  # the default stays "the model's own"
    assert dialog.max_tokens.maximum() == 8192 - 192
    field.setValue(512)
    assert dialog.result_settings().image_max_tokens == 512
    assert dialog.max_tokens.maximum() == 8192 - 512 and "(512" in dialog.max_tokens.toolTip()  # an image takes more
    field.setValue(5000)
    assert dialog.result_settings().image_max_tokens == 1024
    dialog.restore_button.click()
    assert field.value() == 192 and dialog.result_settings().image_max_tokens is None

    dialog = SettingsDialog(Settings(image_max_tokens=320), model=_qwen25vl_manifest())  # as saved
    qtbot.addWidget(dialog)
    assert dialog.image_tokens.value() == 320 and dialog.result_settings().image_max_tokens == 320

    for model, note in ((_manifest(), "fixed size"), (None, "none in use")):  # a LLaVA model's image is a square
        dialog = SettingsDialog(Settings(image_max_tokens=320), model=model)
        qtbot.addWidget(dialog)
        assert not dialog.image_tokens.isEnabled() and "only for Qwen2.5-VL models" in dialog.image_tokens_note.text()
        assert note in dialog.image_tokens_note.text()
        assert dialog.result_settings().image_max_tokens == 320  # kept for when a Qwen2.5-VL model is in use


def test_without_a_model_the_longest_answer_keeps_its_plain_range(qtbot):
    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    assert dialog.answer_bound() is None and dialog.max_tokens.maximum() == 4096 and not dialog.max_tokens.suffix()
    assert longest_answer_bound(600, 576) == 24 and longest_answer_bound(500, 576) == 16  # never below the minimum


def test_the_window_bounds_the_answer_by_its_model_and_hands_the_states_limit_to_the_runner(
        qtbot, tmp_path, monkeypatch, converted):
    import shutil

    from app.ui.main import MainWindow

    data = tmp_path / "data"
    monkeypatch.setenv("HUATUO_DATA_DIR", str(data))
    shutil.copytree(converted("qwen2", "original", "Q8_0"), data / "models" / "tiny")
    window = MainWindow(Settings(state_limit_bytes=3 * 1024**3))
    qtbot.addWidget(window)
    assert window.runner.state_limit_bytes == 3 * 1024**3
    shown = []

    def user_sets_half_a_gigabyte(dialog):  # the modal dialog, as the user leaves it with OK
        shown.append(dialog)
        dialog.saved_states.set_limit_bytes(512 * 1024**2)
        return True

    monkeypatch.setattr(SettingsDialog, "exec", user_sets_half_a_gigabyte)
    window.edit_settings()
    [dialog] = shown
    manifest = Manifest.read(data / "models" / "tiny")
    assert dialog.model == manifest and dialog.saved_states.runner is window.runner
    assert dialog.answer_bound() == manifest.context_length - manifest.image_tokens
    assert window.runner.state_limit_bytes == 512 * 1024**2 == Settings.load(data).state_limit_bytes
