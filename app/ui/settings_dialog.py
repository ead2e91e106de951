"""The settings dialog and the first-run acknowledgement of the intended use."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.settings import MIN_ANSWER_TOKENS, Settings, longest_answer_bound
from app.ui.engine_runner import EngineRunner
from app.ui.saved_states import SavedStatesField
from inference import sampling
from inference.families import QWEN25VL, family
from inference.imageprep import QWEN25VL_DEFAULT_MAX_TOKENS
from inference.store.manifest import Manifest

DEFAULT_ANSWER_MAXIMUM = 4096  # without a model in use, whose context would bound it

INTENDED_USE_TEXT = (
    "<h3>Before you start</h3>"
    "<p>Huatuo Vision answers questions about medical images with a language model that runs entirely on this "
    "computer. Nothing you open or ask leaves it; there is no telemetry.</p>"
    "<p><b>It is for education and research, not for diagnosis.</b> Its answers can be wrong, incomplete or "
    "invented. Do not use them to make or change clinical decisions; a qualified professional must read every "
    "image.</p>"
    "<p>Patient identifiers are hidden, kept out of prompts and removed from exports unless you turn them on in "
    "the settings.</p>"
)


class FirstRunDialog(QDialog):
    """States the intended use; the app starts only after the user acknowledges it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Huatuo Vision — intended use")
        text = QLabel(INTENDED_USE_TEXT)
        text.setWordWrap(True)
        self.understood = QCheckBox("I understand: for education and research, not for diagnosis")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Continue")
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Quit")
        ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(False)
        self.understood.toggled.connect(ok.setEnabled)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.understood)
        layout.addWidget(buttons)
        self.setMinimumWidth(520)


class SettingsDialog(QDialog):
    """The user's settings, edited on a copy. `model` (the manifest of the model in use) bounds the longest answer
    by what fits its context next to an image."""

    def __init__(self, settings: Settings, parent=None, *, model: Manifest | None = None,
                 runner: EngineRunner | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.model = model
        self.saved_states = SavedStatesField(runner)  # Clear goes through the engine runner
        self.threads = QSpinBox(minimum=0, maximum=256, specialValueText="physical cores")
        self.context = QSpinBox(minimum=0, maximum=131072, singleStep=1024, specialValueText="the model's own")
        self.gpu_layers = QSpinBox(minimum=0, maximum=999)
        self.image_tokens = QSpinBox(minimum=4, maximum=QWEN25VL.max_image_tokens, singleStep=32)
        self.image_tokens.setToolTip(
            f"The most tokens one attached image becomes for a Qwen2.5-VL model (up to {QWEN25VL.max_image_tokens}; "
            f"the model was trained at {self._model_image_tokens()}). More tokens: finer detail is seen, and the first "
            "answer about an image is slower (and an image takes more of the context).")
        self.image_tokens_note = QLabel()
        self.image_tokens_row = QWidget()
        row = QHBoxLayout(self.image_tokens_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.image_tokens)
        row.addWidget(self.image_tokens_note, 1)
        if not self._has_image_budget():
            self.image_tokens.setEnabled(False)
            self.image_tokens_note.setText("<small>only for Qwen2.5-VL models: the model in use sees every image "
                                           "at its fixed size</small>" if model is not None else
                                           "<small>only for Qwen2.5-VL models (none in use)</small>")
        self.keep_repacked = QCheckBox("keep the model's weights prepared for this CPU (fast loads)")
        self.keep_repacked.setToolTip(
            "The first load writes the text model's weights, as llama.cpp rearranges them for this CPU, to a file "
            "beside the model (about 0.7× the model's size); later loads use that file instead of rearranging them "
            "again. Off: every load rearranges them (slower) and the file is not kept.")
        self.temperature = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.05, decimals=2)
        self.repetition = QDoubleSpinBox(minimum=1.0, maximum=2.0, singleStep=0.05, decimals=2)
        self.max_tokens = QSpinBox(minimum=MIN_ANSWER_TOKENS, maximum=DEFAULT_ANSWER_MAXIMUM)
        self.greedy = QCheckBox("deterministic (greedy) answers")
        self.language = QComboBox()
        self.language.addItem("English", "en")
        self.language.addItem("中文", "zh")
        self.enter_sends = QCheckBox("Enter sends the question, Shift+Enter starts a new line")
        self.enter_sends.setToolTip("Off: Ctrl+Enter sends and Enter starts a new line")
        self.identifiers = QCheckBox("show patient identifiers (on screen, in saved conversations and exports)")
        self.theme = QComboBox()
        self.theme.addItem("Light", "light")
        self.theme.addItem("Dark", "dark")
        self.greedy.toggled.connect(self._sampling_follows_greedy)
        self.context.valueChanged.connect(self._bound_answer)
        self.image_tokens.valueChanged.connect(self._bound_answer)
        form = QFormLayout()
        form.addRow("Threads", self.threads)
        form.addRow("Context size (tokens)", self.context)
        form.addRow("GPU layers", self.gpu_layers)
        form.addRow("Image tokens (Qwen2.5-VL)", self.image_tokens_row)
        form.addRow("Disk for saved states", self.saved_states)
        form.addRow("Model loading", self.keep_repacked)
        form.addRow("Temperature", self.temperature)
        form.addRow("Repetition penalty", self.repetition)
        form.addRow("Longest answer (tokens)", self.max_tokens)
        form.addRow("", self.greedy)
        form.addRow("Suggested questions", self.language)
        form.addRow("Question box", self.enter_sends)
        form.addRow("Privacy", self.identifiers)
        form.addRow("Theme", self.theme)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.restore_button = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        self.restore_button.clicked.connect(self.restore_defaults)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel(f"<small>Official sampling: {sampling.describe(sampling.OFFICIAL)}.</small>"))
        layout.addWidget(buttons)
        self._settings = settings
        self._show(settings)

    def _show(self, settings: Settings) -> None:
        """Every field as `settings` has it."""
        self.threads.setValue(settings.threads or 0)
        self.context.setValue(settings.context_size or 0)
        self.gpu_layers.setValue(settings.gpu_layers)
        self.image_tokens.setValue(settings.image_max_tokens or self._model_image_tokens())
        self.saved_states.set_limit_bytes(settings.state_limit_bytes)
        self.keep_repacked.setChecked(settings.keep_repacked_weights)
        self.temperature.setValue(settings.temperature)
        self.repetition.setValue(settings.repetition_penalty)
        self._bound_answer()
        self.max_tokens.setValue(settings.max_new_tokens)
        self.greedy.setChecked(settings.greedy)
        self._sampling_follows_greedy()
        self.language.setCurrentIndex(max(0, self.language.findData(settings.language)))
        self.enter_sends.setChecked(settings.enter_sends)
        self.identifiers.setChecked(settings.show_identifiers)
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.theme)))

    def restore_defaults(self) -> None:
        """Every field back to its default; nothing is saved until OK."""
        self._show(Settings())

    def _sampling_follows_greedy(self) -> None:
        """Greedy decoding takes the likeliest token: temperature and repetition penalty do not apply to it."""
        sampled = not self.greedy.isChecked()
        for field in (self.temperature, self.repetition):
            field.setEnabled(sampled)
            field.setToolTip("" if sampled else "Not used while greedy answers are on")

    def _has_image_budget(self) -> bool:
        """Whether the model in use takes an image-token budget (a Qwen2.5-VL model; a LLaVA image is a square)."""
        return self.model is not None and family(self.model.family).image_budget_setting

    def _model_image_tokens(self) -> int:
        """The budget the model was trained at, which the setting's default (None) stands for."""
        return self.model.image_tokens if self._has_image_budget() else QWEN25VL_DEFAULT_MAX_TOKENS

    def answer_bound(self) -> int | None:
        """The longest answer the context leaves room for next to an image (None: no model to tell)."""
        if self.model is None:
            return None
        return longest_answer_bound(self.context.value() or self.model.context_length, self._image_tokens())

    def _image_tokens(self) -> int:
        """The most tokens an image takes with the model in use, as set here."""
        return self.image_tokens.value() if self._has_image_budget() else self.model.image_tokens

    def _bound_answer(self) -> None:
        bound = self.answer_bound()
        if bound is None:
            self.max_tokens.setMaximum(DEFAULT_ANSWER_MAXIMUM)
            self.max_tokens.setSuffix("")
            self.max_tokens.setToolTip("Bounded by the model's context once a model is in use")
            return
        context = self.context.value() or self.model.context_length
        self.max_tokens.setMaximum(bound)  # a longer value is brought down to the bound
        self.max_tokens.setSuffix(f"  (at most {bound})")
        self.max_tokens.setToolTip(
            f"At most {bound} tokens: what a {context}-token context leaves next to an image ({self._image_tokens()}"
            " tokens). More images in a conversation leave less room; an answer then ends where the context ends.")

    def result_settings(self) -> Settings:
        return replace(
            self._settings, state_limit_bytes=self.saved_states.limit_bytes(),
            keep_repacked_weights=self.keep_repacked.isChecked(),
            threads=self.threads.value() or None, context_size=self.context.value() or None,
            image_max_tokens=None if self.image_tokens.value() == self._model_image_tokens()
            else self.image_tokens.value(),
            gpu_layers=self.gpu_layers.value(), temperature=self.temperature.value(),
            repetition_penalty=self.repetition.value(), max_new_tokens=self.max_tokens.value(),
            greedy=self.greedy.isChecked(), language=self.language.currentData(),
            show_identifiers=self.identifiers.isChecked(), theme=self.theme.currentData(),
            enter_sends=self.enter_sends.isChecked())
