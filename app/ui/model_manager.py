"""The model manager: installed models and the catalogue, with download, convert, import, default and delete.

Downloads, conversions and imports run in a worker thread with a progress bar and a Cancel button; the GUI
thread only draws. Whether each model fits this machine is worked out in the background as well.
Each time it is opened it shows the models folder as it is then; a selection stays on its model, not its row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import model_jobs
from app.paths import models_dir
from app.ui import file_dialogs
from app.ui.background import RateLimit, Task, run_in_background
from app.ui.model_details import details_text
from app.ui.model_tables import model_table, rows_height, set_row, update_cell
from app.ui.theme import error_colour
from app.ui.window_size import resize_within_screen
from inference import quantization
from inference.cancellation import Cancelled
from inference.hardware import Fit
from inference.repacked_weights import kept_bytes
from inference.sizes import size_text
from inference.store.catalogue import CatalogueEntry, CatalogueError, fit_label, load_catalogue
from inference.store.gguf_check import ModelFileError
from inference.store.models import (
    InstalledModel,
    active_model,
    delete_model,
    installed_models,
    model_fit,
    set_default_model,
)

GIB = 1024**3
PROGRESS_STEPS = 1000
PREFERRED_SIZE = QSize(1000, 700)  # at most: the dialog opens no larger than the screen's free area
MIN_INSTALLED_ROWS = 4
FITS_COLUMN = 3  # in the installed list: a verdict, or a broken model's reason
DETAILS_LINES = 5  # of the selected model's details, shown at once; more scroll
PROGRESS_INTERVAL_S = 0.1  # at most ten progress updates a second reach the GUI thread


class _Throttle:
    """A job's report(stage, done, total) callback that passes on at most ten updates a second, but every new stage
    and every finished one, so the bar and the status line never lag behind what matters."""

    def __init__(self, send: Callable[[tuple[str, int, int]], None]):
        self.send = send
        self._rate = RateLimit(PROGRESS_INTERVAL_S)
        self._last_stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._rate.ready(force=stage != self._last_stage or done >= total):
            self._last_stage = stage
            self.send((stage, done, total))


def _fit_verdicts(items: list[tuple[object, Callable[[], Fit]]]):
    """Fit verdicts for installed models (their files are read) and catalogue entries (estimated), one at a time."""
    for key, assess in items:
        try:
            result: Fit | str = assess()
        except Exception as exc:  # a damaged file: its row says why instead of a verdict
            result = str(exc)
        yield key, result


class ModelManagerDialog(QDialog):
    models_changed = Signal()

    def __init__(
        self,
        models_root: Path | None = None,
        catalogue: list[CatalogueEntry] | None = None,
        endpoint: str | None = None,
        bandwidth_gb_s: float | None = None,
        stall_timeout_s: float = 60,
        parent=None,
    ):
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setModal(False)
        resize_within_screen(self, PREFERRED_SIZE)
        self.root = Path(models_root) if models_root is not None else models_dir()
        self.endpoint = endpoint
        self.bandwidth_gb_s = bandwidth_gb_s
        self.stall_timeout_s = stall_timeout_s
        self.models: list[InstalledModel] = []
        self.job: Task | None = None
        self._tasks: list[Task] = []  # every task started, so that shutdown can wait for their threads
        self._fits: dict[object, Fit | str | None] = {}  # None: being worked out
        catalogue_problem = ""
        if catalogue is None:
            try:
                catalogue = load_catalogue()
            except CatalogueError as exc:
                catalogue, catalogue_problem = [], str(exc)
        self.catalogue = catalogue
        self._build(catalogue_problem)
        self.refresh()

    # --- layout ----------------------------------------------------------------------------------------------
    def _build(self, catalogue_problem: str) -> None:
        layout = QVBoxLayout(self)
        self.folder_label = QLabel(f"Models folder: {self.root}")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.folder_label)
        # The two lists share the dialog's spare height (the user can move the line between them); details and
        # messages keep their own few lines.
        self.lists = QSplitter(Qt.Orientation.Vertical)
        self.lists.setChildrenCollapsible(False)
        layout.addWidget(self.lists, 1)
        installed = QWidget()
        self.lists.addWidget(installed)
        pane = QVBoxLayout(installed)
        pane.setContentsMargins(0, 0, 0, 0)
        pane.addWidget(QLabel("<b>Installed</b>"))
        self.installed_table = model_table(["Model", "Quantization", "Size", "Fits this machine?", "Default"],
                                           long_columns=(FITS_COLUMN,))
        self.installed_table.setMinimumHeight(rows_height(self.installed_table, MIN_INSTALLED_ROWS))
        pane.addWidget(self.installed_table, 1)
        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        pane.addWidget(self.problems_label)
        self.quality_label = QLabel()  # the selected model's details: why it cannot be used, its last verification
        self.quality_label.setTextFormat(Qt.TextFormat.PlainText)
        self.quality_label.setWordWrap(True)
        self.quality_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QScrollArea()  # a long verification scrolls here instead of taking the list's height
        self.details.setWidget(self.quality_label)
        self.details.setWidgetResizable(True)
        self.details.setFrameShape(QFrame.Shape.NoFrame)
        self.details.setMaximumHeight(self.fontMetrics().lineSpacing() * DETAILS_LINES + 4)
        pane.addWidget(self.details)
        row = QHBoxLayout()
        self.default_button = QPushButton("Set default")
        self.delete_button = QPushButton("Delete…")
        self.verify_button = QPushButton("Verify files")  # every byte hashed again (app/ui/verify_files.py)
        self.import_button = QPushButton("Import GGUF pair…")
        self.convert_button = QPushButton("Convert checkpoint folder…")
        for button, slot in ((self.default_button, self._on_set_default), (self.delete_button, self._on_delete),
                             (self.verify_button, self.verify_files),
                             (self.import_button, self._on_import), (self.convert_button, self._on_convert)):
            button.clicked.connect(slot)
            row.addWidget(button)
        row.addStretch(1)
        pane.addLayout(row)

        available = QWidget()
        self.lists.addWidget(available)
        pane = QVBoxLayout(available)
        pane.setContentsMargins(0, 0, 0, 0)
        pane.addWidget(QLabel("<b>Available</b>"))
        self.catalogue_table = model_table(["Model", "Quantization", "Size", "RAM needed", "Fits this machine?",
                                            "Source", "State"])
        pane.addWidget(self.catalogue_table, 1)
        for index in range(self.lists.count()):
            self.lists.setStretchFactor(index, 1)
        if catalogue_problem:
            layout.addWidget(QLabel(f"The model list could not be read: {catalogue_problem}"))
        row = QHBoxLayout()
        self.download_button = QPushButton("Download")
        self.download_button.clicked.connect(self._on_download)
        row.addWidget(self.download_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.catalogue_table.itemSelectionChanged.connect(self._update_buttons)
        self.installed_table.itemSelectionChanged.connect(self._update_buttons)

        job_row = QHBoxLayout()
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, PROGRESS_STEPS)
        self.progress_bar.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_job)
        job_row.addWidget(self.status_label, 2)
        job_row.addWidget(self.progress_bar, 2)
        job_row.addWidget(self.cancel_button)
        layout.addLayout(job_row)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self._colour_errors()
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.error_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.close)  # a running job goes on; reopening shows it
        layout.addWidget(self.buttons)

    # --- contents --------------------------------------------------------------------------------------------
    def changeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._colour_errors()  # the theme changed

    def _colour_errors(self) -> None:
        label = getattr(self, "error_label", None)  # a palette change can come while the dialog is being built
        if label is not None:
            label.setStyleSheet(f"color: {error_colour(self.palette())}")

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        """Opened again: the folder may have changed meanwhile, and an old job's outcome is no longer news."""
        super().showEvent(event)
        if not self.is_busy():
            self.status_label.clear()
            self.error_label.clear()
        self.refresh()

    def refresh(self) -> None:
        selected = self.selected_model()
        self.models, problems = installed_models(self.root)
        in_use, _ = active_model(self.root, self.models)
        table = self.installed_table
        table.setRowCount(len(self.models))
        for i, model in enumerate(self.models):
            m = model.manifest
            state = self._fit_text(model.folder) if model.usable else f"cannot be used: {model.problem}"
            name = m.name if m.name == model.folder.name else f"{m.name} ({model.folder.name})"  # copies differ here
            set_row(table, i, [name, f"{m.text.quantization} (projector {m.mmproj.quantization})",
                                     _size_on_disk(model), state,
                                     "★ default" if in_use is not None and model.folder == in_use.folder else ""])
        # The selection stays on the model it was on, wherever the refresh put its row.
        row = next((i for i, m in enumerate(self.models) if selected and m.folder == selected.folder), None)
        if row is None:
            table.clearSelection()
        else:
            table.selectRow(row)
        self.problems_label.setText("Could not read: " + "; ".join(problems) if problems else "")
        table = self.catalogue_table
        table.setRowCount(len(self.catalogue))
        for i, entry in enumerate(self.catalogue):
            approx = "≈ " if entry.size_is_estimate else ""
            source = (f"GGUF pair from {entry.repo_id}" if entry.kind == "gguf" else
                      f"converted here from {entry.repo_id} ({approx}{size_text(entry.download_bytes)} download)")
            set_row(table, i, [entry.name, entry.quantization, approx + size_text(entry.size_bytes),
                                     f"{approx}{entry.ram_needed_bytes / GIB:.1f} GiB", self._fit_text(entry.id),
                                     source, self._state(entry)])
            if entry.notes:
                table.item(i, 5).setToolTip(entry.notes)
        self._update_buttons()
        self._assess_fits()

    def _fit_text(self, key) -> str:
        fit = self._fits.get(key)
        if fit is None:
            return "checking…"
        if isinstance(fit, str):
            return f"cannot tell: {fit}"
        return f"{fit.verdict}: {fit.reasons[0]}" if fit.reasons else fit.verdict

    def _state(self, entry: CatalogueEntry) -> str:
        if any(m.folder == model_jobs.entry_folder(self.root, entry) for m in self.models):
            return "installed"
        on_disk = sum(_bytes_under(folder) for folder in (model_jobs.entry_folder(self.root, entry),
                                                           model_jobs.checkpoint_folder(self.root, entry)))
        if on_disk:
            return f"partly downloaded ({size_text(on_disk)} of {size_text(entry.download_bytes)}); download continues"
        return ""

    def _assess_fits(self) -> None:
        bandwidth = self.bandwidth_gb_s
        items = [(m.folder, lambda m=m: model_fit(m, bandwidth)) for m in self.models
                 if m.usable and m.folder not in self._fits]
        items += [(e.id, lambda e=e: fit_label(e, bandwidth)) for e in self.catalogue if e.id not in self._fits]
        if not items:
            return
        for key, _ in items:
            self._fits[key] = None  # being worked out: not queued twice
        self._track(run_in_background(lambda cancel: _fit_verdicts(items), on_progress=self._on_fit))

    def _on_fit(self, verdict: tuple[object, Fit | str]) -> None:
        key, fit = verdict
        self._fits[key] = fit
        text = self._fit_text(key)
        for i, model in enumerate(self.models):
            if model.folder == key and model.usable:
                update_cell(self.installed_table, i, 3, text)
        for i, entry in enumerate(self.catalogue):
            if entry.id == key:
                update_cell(self.catalogue_table, i, 4, text)

    def selected_model(self) -> InstalledModel | None:
        rows = self.installed_table.selectionModel().selectedRows()
        return self.models[rows[0].row()] if rows else None

    def selected_entry(self) -> CatalogueEntry | None:
        rows = self.catalogue_table.selectionModel().selectedRows()
        return self.catalogue[rows[0].row()] if rows else None

    def _update_buttons(self) -> None:
        busy = self.is_busy()
        model, entry = self.selected_model(), self.selected_entry()
        self.quality_label.setText(details_text(model) if model is not None else "")
        self.details.setVisible(bool(self.quality_label.text()))  # no empty band under the list
        self.default_button.setEnabled(model is not None and model.usable and not busy)  # a broken one: never
        self.delete_button.setEnabled(model is not None and not busy)
        self.verify_button.setEnabled(model is not None and not busy)
        self.import_button.setEnabled(not busy)
        self.convert_button.setEnabled(not busy)
        self.download_button.setText("Download and convert" if entry is not None and entry.kind == "checkpoint"
                                     else "Download")
        self.download_button.setEnabled(entry is not None and not busy and self._state(entry) != "installed")

    # --- actions ---------------------------------------------------------------------------------------------
    def download(self, entry: CatalogueEntry) -> None:
        self._start(f"Downloading {entry.id}", lambda report, cancel: model_jobs.install_from_catalogue(
            entry, self.root, report, cancel, endpoint=self.endpoint, stall_timeout_s=self.stall_timeout_s))

    def convert_folder(self, folder: str | Path, quant: str) -> None:
        self._start(f"Converting {Path(folder).name} to {quant}", lambda report, cancel: model_jobs.convert_checkpoint(
            folder, self.root, quant, report, cancel))

    def import_files(self, text_gguf: str | Path, mmproj_gguf: str | Path, copy: bool = True) -> None:
        self._start(f"Importing {Path(text_gguf).name}", lambda report, cancel: model_jobs.import_gguf_pair(
            text_gguf, mmproj_gguf, self.root, report, cancel, copy=copy))

    def set_default(self, model: InstalledModel) -> None:
        try:
            set_default_model(self.root, model.folder)
        except ModelFileError as exc:  # changed on disk since it was listed
            self.error_label.setText(str(exc))
            self.refresh()
            return
        self.status_label.setText(f"{model.manifest.name} ({model.folder.name}) answers questions from now on")
        self.refresh()
        self.models_changed.emit()

    def verify_files(self):
        """The selected model's files hashed in full, in a dialog of its own (modal to this one)."""
        from app.ui.verify_files import VerifyFilesDialog

        model = self.selected_model()
        if model is None:
            return None
        dialog = VerifyFilesDialog(model, self)
        dialog.open()
        return dialog

    def delete(self, model: InstalledModel) -> None:
        delete_model(model)
        self._fits.pop(model.folder, None)
        self.status_label.setText(f"Deleted {model.label}")
        self.refresh()
        self.models_changed.emit()

    def is_busy(self) -> bool:
        return self.job is not None

    def cancel_job(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.status_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel a running job and wait for every worker thread (on quit, or before a test ends)."""
        self.cancel_job()
        for task in self._tasks:
            task.cancel()  # fit checks too: they stop before their next model
        deadline = time.monotonic() + timeout_ms / 1000
        return all(task.wait(max(0.0, deadline - time.monotonic())) for task in self._tasks)

    def _track(self, task: Task) -> None:
        self._tasks = [t for t in self._tasks if not t.finished] + [task]

    # --- buttons ---------------------------------------------------------------------------------------------
    def _on_download(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.download(entry)

    def _on_convert(self) -> None:
        folder = file_dialogs.open_folder(self, file_dialogs.CHECKPOINT_FOLDER,
                                          "Choose a HuatuoGPT-Vision checkpoint folder")
        if not folder:
            return
        quant, ok = QInputDialog.getItem(self, "Quantization", "Quantize the text model to:", list(quantization.TEXT),
                                         quantization.TEXT.index(quantization.DEFAULT), False)
        if ok:
            self.convert_folder(folder, quant)

    def _on_import(self) -> None:
        gguf = "GGUF files (*.gguf);;All files (*)"
        text = file_dialogs.open_file(self, file_dialogs.MODEL_FILE, "Choose the text model (GGUF)", gguf)
        if not text:
            return
        mmproj, _ = QFileDialog.getOpenFileName(self, "Choose its vision projector (mmproj GGUF)",
                                                str(Path(text).parent), gguf)
        if mmproj:
            self.import_files(text, mmproj)

    def _on_set_default(self) -> None:
        model = self.selected_model()
        if model is not None:
            self.set_default(model)

    def _on_delete(self) -> None:
        model = self.selected_model()
        if model is None:
            return
        answer = QMessageBox.question(
            self, "Delete model",
            f"Delete {model.label}?\n\nIts files in {model.folder} are removed from the disk.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer == QMessageBox.StandardButton.Yes:
            self.delete(model)

    # --- the running job -------------------------------------------------------------------------------------
    def _start(self, description: str, work) -> None:
        if self.is_busy():
            return
        # work(report, cancel) reports through a callback: its updates, throttled, become the task's progress.
        job = Task(lambda cancel: work(_Throttle(job.report), cancel))
        job.progress.connect(self._on_progress)
        job.done.connect(self._on_finished)
        job.failed.connect(self._on_failed)
        self.job = job
        self._track(job)
        self.error_label.clear()
        self.status_label.setText(description + "…")
        self.progress_bar.setRange(0, 0)  # busy until the first measured progress
        self.progress_bar.setVisible(True)
        self.cancel_button.setEnabled(True)
        self._update_buttons()
        job.start()

    def _on_progress(self, update: tuple[str, int, int]) -> None:
        stage, done, total = update
        if total > 0:
            self.progress_bar.setRange(0, PROGRESS_STEPS)
            self.progress_bar.setValue(min(PROGRESS_STEPS, done * PROGRESS_STEPS // total))
            self.progress_bar.setFormat(f"%p %  ({size_text(done)} of {size_text(total)})")
        else:
            self.progress_bar.setRange(0, 0)
        self.status_label.setText(stage[:1].upper() + stage[1:])

    def _on_finished(self, model: InstalledModel) -> None:
        self._end_job(f"Installed {model.label}")
        self.models_changed.emit()

    def _on_failed(self, error: BaseException) -> None:
        if isinstance(error, Cancelled):
            self._end_job(f"Cancelled: {error}")
            return
        self.error_label.setText(str(error) or type(error).__name__)  # every failure is shown in the dialog
        self._end_job("Failed")

    def _end_job(self, status: str) -> None:
        self.job = None
        self.progress_bar.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.status_label.setText(status)
        self.refresh()


def _bytes_under(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _size_on_disk(model: InstalledModel) -> str:
    """The model's files, and its weights kept as repacked for this CPU (inference/repacked_weights.py) if any."""
    kept = kept_bytes(model.folder)
    return size_text(model.size_bytes) + (f" (+ {size_text(kept)} prepared for this CPU)" if kept else "")
