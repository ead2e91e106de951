"""The model manager's "Verify files": every byte of a model's files hashed against its manifest, with a progress
bar and Cancel, off the GUI thread (inference/store/verify_files.py does the work)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QProgressBar, QVBoxLayout, QWidget

from app.ui.background import Task
from app.ui.theme import error_colour
from inference.cancellation import Cancelled
from inference.sizes import size_text
from inference.store.models import InstalledModel
from inference.store.verify_files import FilesCheck, verify_files

STEPS = 1000


class VerifyFilesDialog(QDialog):
    checked = Signal(object)  # the FilesCheck of a check that ran to its end

    def __init__(self, model: InstalledModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Verify files — {model.folder.name}")
        self.model = model
        self.result: FilesCheck | None = None
        self.status = QLabel(f"Reading every byte of {model.label} and comparing it with the manifest…")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, STEPS)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.buttons)
        self.resize(520, 160)
        folder = model.folder
        task = Task(lambda cancel: verify_files(folder, lambda done, total: task.report((done, total)), cancel), self)
        task.progress.connect(self._on_progress)
        task.done.connect(self._on_done)
        task.failed.connect(self._on_failed)
        self.task: Task | None = task.start()

    def _on_progress(self, update: tuple[int, int]) -> None:
        done, total = update
        self.progress.setValue(done * STEPS // total if total else 0)
        self.progress.setFormat(f"%p %  ({size_text(done)} of {size_text(total)})")

    def _on_done(self, result: FilesCheck) -> None:
        self.result = result
        self.progress.setValue(STEPS)
        if result.ok:
            self.status.setText(f"All files match the manifest: {', '.join(result.files)}. Loads trust them again "
                                "until they change.")
        else:
            self.status.setStyleSheet(f"color: {error_colour(self.palette())}")
            self.status.setText("These files do not match the manifest:\n" + "\n".join(result.problems) +
                                "\nThe model will not load until it is installed again (download, convert or import).")
        self._ended()
        self.checked.emit(result)

    def _on_failed(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self.status.setText("Cancelled: the files were not all read; their last verification stands.")
        else:
            self.status.setStyleSheet(f"color: {error_colour(self.palette())}")
            self.status.setText(f"The files could not be verified: {error}")
        self._ended()

    def _ended(self) -> None:
        self.task = None
        self.buttons.setStandardButtons(QDialogButtonBox.StandardButton.Close)

    def cancel(self) -> None:
        """Stop reading at the next block; the dialog stays open to say so."""
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling…")
            self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setEnabled(False)

    def reject(self) -> None:
        if self.task is not None:  # Cancel (or Esc) while reading: stop, and show that it stopped
            self.cancel()
            return
        super().reject()
