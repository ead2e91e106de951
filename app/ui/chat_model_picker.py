"""The model picker above the chat: the installed models, the one in use selected, a broken one listed as broken and
never selectable. Choosing one does what Set default in the model manager does (`set_default_model`): only the user's
choice changes the model in use."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from inference.store.gguf_check import ModelFileError
from inference.store.models import InstalledModel, set_default_model

NONE_IN_USE = "Choose a model…"


def model_text(model: InstalledModel) -> str:
    name = model.manifest.name
    name = name if name == model.folder.name else f"{name} ({model.folder.name})"  # copies differ by folder
    if not model.usable:
        return f"{name} — broken"
    return f"{name} · {model.manifest.text.quantization} · {model.size_bytes / 1e9:.1f} GB"


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
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(label)
        layout.addWidget(self.combo, 1)

    def show_models(self, models: list[InstalledModel], active: InstalledModel | None) -> None:
        """List the models (as installed_models gives them) with the one in use selected."""
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
        self.setVisible(bool(models))

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
