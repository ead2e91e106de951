"""The model picker above the chat: the installed models, the one in use selected, a broken one listed as broken and
never selectable. Choosing one does what Set default in the model manager does (`set_default_model`): only the user's
choice changes the model in use. Under it, a note when there is something to say: how to get a model when none is
installed, why none is in use, which folders cannot be used."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from inference import quantization
from inference.sizes import size_text
from inference.store.gguf_check import ModelFileError
from inference.store.models import InstalledModel, set_default_model

NONE_IN_USE = "Choose a model…"
NO_MODEL_HELP = (
    "<b>No model installed.</b> Images and DICOM files open without one. To ask questions, open "
    "<b>Models › Manage models…</b>: download HuatuoGPT-Vision and convert it here, convert a checkpoint folder "
    "you have, or import a GGUF pair. From a terminal: "
    '<code>huatuo convert CHECKPOINT_FOLDER "{models}/HuatuoGPT-Vision-7B" --quant {quant}</code>'
)


def model_text(model: InstalledModel) -> str:
    name = model.manifest.name
    name = name if name == model.folder.name else f"{name} ({model.folder.name})"  # copies differ by folder
    if not model.usable:
        return f"{name} — broken"
    return f"{name} · {model.manifest.text.quantization} · {size_text(model.size_bytes)}"


class ModelPicker(QWidget):
    chosen = Signal()  # the user made another model the one in use
    failed = Signal(str)  # it could not be (changed on disk since listed): why, naming the folder

    def __init__(self, root: Path, parent=None):
        super().__init__(parent)
        self.root = root
        self.active: Path | None = None
        self.combo = QComboBox()
        self.combo.setToolTip("The model that answers from now on (the same as Set default in the model manager)")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(16)
        self.combo.activated.connect(self._on_activated)  # the user's choice only, never a refill
        label = QLabel("&Model")
        label.setBuddy(self.combo)
        self.row = QWidget()
        row = QHBoxLayout(self.row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(label)
        row.addWidget(self.combo, 1)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.row)
        layout.addWidget(self.note)

    def show_models(self, models: list[InstalledModel], active: InstalledModel | None, why_none: str = "",
                    problems: list[str] = ()) -> None:
        """List the models (as installed_models gives them) with the one in use selected; `why_none`: why no model
        is in use though some are installed; `problems`: folders that are not models at all."""
        self._show_note(models, active, why_none, problems)
        self.active = active.folder if active is not None else None
        items = QStandardItemModel(self.combo)
        if active is None:
            placeholder = QStandardItem(NONE_IN_USE)
            placeholder.setEnabled(False)
            items.appendRow(placeholder)
        for model in models:
            item = QStandardItem(model_text(model))
            item.setData(str(model.folder), Qt.ItemDataRole.UserRole)
            item.setToolTip(f"{model.folder}" + (f"\nCannot be used: {model.problem}" if model.problem else ""))
            item.setEnabled(model.usable)  # a broken model is listed, never chosen
            items.appendRow(item)
        self.combo.setModel(items)
        self.combo.setCurrentIndex(0 if active is None else self.combo.findData(str(active.folder)))
        self.row.setVisible(bool(models))

    def _show_note(self, models: list[InstalledModel], active: InstalledModel | None, why_none: str,
                   problems: list[str]) -> None:
        parts = []
        if active is None and why_none:
            parts.append(f"<b>No model in use</b>: {html.escape(why_none)} Choose one above or in "
                         "<b>Models › Manage models…</b> (Set default).")
        elif active is None and not models:
            parts.append(NO_MODEL_HELP.format(models=html.escape(str(self.root)), quant=quantization.DEFAULT))
        problems = list(problems) + [f"{m.folder.name}: {m.problem}" for m in models if not m.usable]
        if problems:
            parts.append("<b>Cannot be used:</b><br>" + "<br>".join(html.escape(p) for p in problems))
        self.note.setText("<br>".join(parts))
        self.note.setVisible(bool(parts))

    def _on_activated(self, index: int) -> None:
        folder = self.combo.itemData(index)
        if folder is None or Path(folder) == self.active:
            return
        try:
            set_default_model(self.root, Path(folder))
        except ModelFileError as exc:
            self.failed.emit(str(exc))
            return
        self.chosen.emit()
