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
    QLabel,
    QSpinBox,
    QVBoxLayout,
)

from app.settings import Settings
from inference import sampling

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
    def __init__(self, settings: Settings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.threads = QSpinBox(minimum=0, maximum=256, specialValueText="physical cores")
        self.threads.setValue(settings.threads or 0)
        self.context = QSpinBox(minimum=0, maximum=131072, singleStep=1024, specialValueText="the model's own")
        self.context.setValue(settings.context_size or 0)
        self.gpu_layers = QSpinBox(minimum=0, maximum=999)
        self.gpu_layers.setValue(settings.gpu_layers)
        self.temperature = QDoubleSpinBox(minimum=0.0, maximum=2.0, singleStep=0.05, decimals=2)
        self.temperature.setValue(settings.temperature)
        self.repetition = QDoubleSpinBox(minimum=1.0, maximum=2.0, singleStep=0.05, decimals=2)
        self.repetition.setValue(settings.repetition_penalty)
        self.max_tokens = QSpinBox(minimum=16, maximum=4096)
        self.max_tokens.setValue(settings.max_new_tokens)
        self.greedy = QCheckBox("deterministic (greedy) answers")
        self.greedy.setChecked(settings.greedy)
        self.language = QComboBox()
        self.language.addItem("English", "en")
        self.language.addItem("中文", "zh")
        self.language.setCurrentIndex(max(0, self.language.findData(settings.language)))
        self.enter_sends = QCheckBox("Enter sends the question, Shift+Enter starts a new line")
        self.enter_sends.setToolTip("Off: Ctrl+Enter sends and Enter starts a new line")
        self.enter_sends.setChecked(settings.enter_sends)
        self.identifiers = QCheckBox("show patient identifiers (on screen, in saved conversations and exports)")
        self.identifiers.setChecked(settings.show_identifiers)
        self.theme = QComboBox()
        self.theme.addItem("Light", "light")
        self.theme.addItem("Dark", "dark")
        self.theme.setCurrentIndex(max(0, self.theme.findData(settings.theme)))
        form = QFormLayout()
        form.addRow("Threads", self.threads)
        form.addRow("Context size (tokens)", self.context)
        form.addRow("GPU layers", self.gpu_layers)
        form.addRow("Temperature", self.temperature)
        form.addRow("Repetition penalty", self.repetition)
        form.addRow("Longest answer (tokens)", self.max_tokens)
        form.addRow("", self.greedy)
        form.addRow("Suggested questions", self.language)
        form.addRow("Question box", self.enter_sends)
        form.addRow("Privacy", self.identifiers)
        form.addRow("Theme", self.theme)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel(f"<small>Official sampling: {sampling.describe(sampling.OFFICIAL)}.</small>"))
        layout.addWidget(buttons)
        self._settings = settings

    def result_settings(self) -> Settings:
        return replace(
            self._settings, threads=self.threads.value() or None, context_size=self.context.value() or None,
            gpu_layers=self.gpu_layers.value(), temperature=self.temperature.value(),
            repetition_penalty=self.repetition.value(), max_new_tokens=self.max_tokens.value(),
            greedy=self.greedy.isChecked(), language=self.language.currentData(),
            show_identifiers=self.identifiers.isChecked(), theme=self.theme.currentData(),
            enter_sends=self.enter_sends.isChecked())
