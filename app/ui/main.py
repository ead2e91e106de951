"""The desktop window: open an image or a DICOM file and see it; models and chat come in beside it."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL.ImageQt import ImageQt
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import INTENDED_USE
from app.audit import AuditLog
from app.imaging import ImageOpenError, open_image
from app.paths import data_dir, models_dir
from app.settings import Settings
from app.store import Store, StoreError
from app.studies.deid import burned_in_warning
from app.studies.scan import Library, ScanProgress, looks_like_dicom, scan_progressively
from app.ui.background import run_in_background
from app.ui.chat import ChatPanel
from app.ui.engine_runner import EngineRunner
from app.ui.practice import open_practice
from app.ui.series_loading import keep_place, series_with_uid
from app.ui.series_strip import SeriesStrip
from app.ui.settings_dialog import FirstRunDialog, SettingsDialog
from app.ui.study_browser import StudyBrowser
from app.ui.tag_browser import TagBrowser
from app.ui.theme import apply_theme
from app.ui.viewer import Viewer
from inference import quantization
from inference.store.models import default_model, installed_models

NO_MODEL_HELP = (
    "<b>No model installed.</b> Images and DICOM files open without one. To ask questions, open "
    "<b>Models › Manage models…</b>: download HuatuoGPT-Vision and convert it here, convert a checkpoint folder "
    "you have, or import a GGUF pair. From a terminal: "
    '<code>huatuo convert CHECKPOINT_FOLDER "{models}/HuatuoGPT-Vision-7B" --quant {quant}</code>'
)


def _load(path: str):
    """Reads a path off the GUI thread: a DICOM file or folder becomes a scanned Library (what is read so far is
    yielded meanwhile: a big folder's first image is shown at once), an image a PIL image."""
    source = Path(path)
    if source.is_dir() or looks_like_dicom(source) or source.name.upper() == "DICOMDIR":
        library = yield from scan_progressively([source])
        if not any(s.is_image for s in library.all_series()):
            reasons = [r for _, r in library.skipped] or [
                f"{i.kind} (not an image)" for s in library.all_series() for i in s.instances]
            raise ImageOpenError(f"{source.name}: nothing to show: " + ("; ".join(reasons[:3]) or "no DICOM"))
        return path, library
    return path, open_image(path)


class ImageView(QGraphicsView):
    def __init__(self):
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.scene().addItem(self.item)
        self.setBackgroundBrush(Qt.GlobalColor.black)

    def show_image(self, image) -> None:
        self.item.setPixmap(QPixmap.fromImage(ImageQt(image.convert("RGBA"))))
        self.scene().setSceneRect(self.item.boundingRect())
        self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if not self.item.pixmap().isNull():
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, store: Store | None = None, audit: AuditLog | None = None):
        super().__init__()
        self.setWindowTitle("Huatuo Vision")
        self.resize(1440, 900)
        self.settings = settings or Settings.load()
        self.store = store or Store.open_default()
        self.audit = audit or AuditLog(data_dir() / "audit.jsonl")
        self.runner = EngineRunner(self)
        self.viewer = ImageView()
        self.series_viewer = Viewer()
        self.series_viewer.show_identifiers = self.settings.show_identifiers
        self.series_viewer.message.connect(self.statusBar().showMessage)
        self.views = QStackedWidget()
        self.views.addWidget(self.viewer)
        self.views.addWidget(self.series_viewer)
        self.model_panel = QLabel()
        self.model_panel.setWordWrap(True)
        self.model_panel.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model_panel.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.chat = ChatPanel(self.runner, self.store, self.audit, self.settings)
        self.chat.attach_requested.connect(self.attach_view)
        side = QWidget()
        layout = QVBoxLayout(side)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.model_panel)
        layout.addWidget(self.chat, 1)
        self.browser = StudyBrowser()
        self.browser.series_chosen.connect(self.show_series)
        self.browser.open_requested.connect(self.open_path)
        self.browser.set_recent(self.settings.recent)
        splitter = QSplitter()
        self.strip = SeriesStrip()
        self.strip.series_chosen.connect(self.show_series)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.views, 1)
        left_layout.addWidget(self.strip)
        splitter.addWidget(self.browser)
        splitter.addWidget(left)
        splitter.addWidget(side)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 760, 440])
        self.setCentralWidget(splitter)
        self._build_menu()
        self.statusBar().showMessage(INTENDED_USE)
        self.current_path: str | None = None
        self.current_image = None  # a plain image on screen (PIL)
        self.current_series = None
        self.library: Library | None = None
        self._opening: tuple[str, str | None] | None = None  # a folder being read: its path, the series on screen
        self.installed: list = []
        self.model_manager = None  # created when first opened
        self.refresh_models()

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open image or DICOM…", self, shortcut=QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self.choose_file)
        menu.addAction(open_action)
        folder_action = QAction("Open &folder…", self)
        folder_action.triggered.connect(self.choose_folder)
        menu.addAction(folder_action)
        menu.addSeparator()
        settings_action = QAction("&Settings…", self, shortcut=QKeySequence.StandardKey.Preferences)
        settings_action.triggered.connect(self.edit_settings)
        menu.addAction(settings_action)
        view_menu = self.menuBar().addMenu("&View")
        tags_action = QAction("DICOM &tags…", self, shortcut=QKeySequence("Ctrl+T"))
        tags_action.triggered.connect(self.show_tags)
        view_menu.addAction(tags_action)
        self.identifiers_action = QAction("Show patient &identifiers", self, checkable=True)
        self.identifiers_action.setChecked(self.settings.show_identifiers)
        self.identifiers_action.toggled.connect(self._set_identifiers)
        view_menu.addAction(self.identifiers_action)
        self.window_menu = self.menuBar().addMenu("&Window")
        self.window_menu.aboutToShow.connect(self._fill_window_menu)
        practice_action = QAction("&Practice cases…", self, shortcut=QKeySequence("Ctrl+P"))
        practice_action.triggered.connect(lambda: open_practice(self.runner, self, self.audit))
        view_menu.addSeparator()
        view_menu.addAction(practice_action)
        self.models_menu = self.menuBar().addMenu("&Models")
        self.models_menu.addAction("&Manage models…", self.show_model_manager)
        self.models_menu.addAction("&Refresh", self.refresh_models)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("Intended use…", lambda: FirstRunDialog(self).exec())
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)

    def refresh_models(self) -> None:
        models, problems = installed_models(models_dir())
        self.installed = models
        chosen = self._chosen_model(models)
        if chosen is not None:
            text = f"<b>Model</b>: {chosen.label}"
            if len(models) > 1:
                text += f" <small>({len(models)} installed)</small>"
        else:
            text = NO_MODEL_HELP.format(models=models_dir(), quant=quantization.DEFAULT)
        if problems:
            text += "<br><b>Could not read:</b><br>" + "<br>".join(problems)
        self.model_panel.setText(text)
        self.chat.set_model(chosen.folder if chosen is not None else None)

    def _chosen_model(self, models):
        default = default_model(models_dir())
        return next((m for m in models if m.folder == default), models[0] if models else None)

    def show_model_manager(self) -> None:
        from app.ui.model_manager import ModelManagerDialog  # imported on use: the Hub client is not needed to start

        if self.model_manager is None:
            self.model_manager = ModelManagerDialog(models_dir(), parent=self)
            self.model_manager.models_changed.connect(self.refresh_models)
        self.model_manager.show()
        self.model_manager.raise_()
        self.model_manager.activateWindow()

    def edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            new = dialog.result_settings()
            for name, value in vars(new).items():
                setattr(self.settings, name, value)
            self.settings.save()
            apply_theme(QApplication.instance(), self.settings.theme)
            self.identifiers_action.setChecked(self.settings.show_identifiers)
            self.refresh_models()

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open image or DICOM", "", "Images and DICOM (*.png *.jpg *.jpeg *.tif *.tiff *.dcm *);;All files (*)"
        )
        if path:
            self.open_path(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of DICOM files")
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> None:
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        opening = self._opening = (path, None)
        run_in_background(lambda cancel: _load(path), on_done=self._on_loaded, on_failed=self._on_failed,
                          on_progress=lambda part: self._opening is opening and self._on_read_so_far(part))

    def _on_read_so_far(self, part: ScanProgress) -> None:
        """The first image of a folder at once, then the series as read so far: scrolling works on that."""
        path, uid = self._opening
        shown = series_with_uid(part.library, uid)
        if shown is not None and keep_place(self.series_viewer, [(i.path, f) for i, f in shown.frames]):
            self.current_series = shown
        elif uid is None:
            first = next(s for s in part.library.all_series() if s.is_image)
            self._opening = (path, first.uid)
            self.show_series(first)
        self.statusBar().showMessage(f"Reading {Path(path).name}: {part.done} of {part.total} files…")

    def _on_loaded(self, loaded) -> None:
        path, content = loaded
        self.current_path = path
        self.settings.add_recent(str(Path(path).resolve()))
        self._save_settings()
        self.browser.set_recent(self.settings.recent)
        if isinstance(content, Library):
            self.library, self.current_image = content, None
            series = [s for s in content.all_series() if s.is_image]
            self.browser.set_library(content, self.settings.show_identifiers)
            self.strip.set_series(series)
            shown = series_with_uid(content, self._opening[1]) if self._opening else None  # already on screen
            if shown is not None and keep_place(self.series_viewer, [(i.path, f) for i, f in shown.frames]):
                self.current_series = shown
            else:
                self.show_series(series[0])
            self._opening = None
            skipped = f" · {len(content.skipped)} file(s) could not be read" if content.skipped else ""
            self.statusBar().showMessage(f"{Path(path).name} · {len(series)} series{skipped} · {INTENDED_USE}")
            return
        self.library, self.current_series, self.current_image = None, None, content
        self.browser.set_library(None, False)
        self.strip.set_series([])
        self.viewer.show_image(content)
        self.views.setCurrentWidget(self.viewer)
        key = self.store.study_key(str(Path(path).resolve()))
        self.chat.set_study(key, None, {"file": str(Path(path).resolve())})
        self.statusBar().showMessage(f"{Path(path).name} · {content.width}×{content.height} · {INTENDED_USE}")

    def show_series(self, series) -> None:
        self.current_series = series
        self.series_viewer.set_frames([(i.path, f) for i, f in series.frames])
        self.views.setCurrentWidget(self.series_viewer)
        self.series_viewer.setFocus()
        first = series.instances[0]
        info = {"patient_name": first.patient_name, "patient_id": first.patient_id, "study_uid": first.study_uid,
                "study_description": first.study_description}
        self.chat.set_study(self.store.study_key(first.study_uid or str(first.path)), first.modality, info)
        self.statusBar().showMessage(f"{series.modality} · {series.description} · {len(series.frames)} image(s) · "
                                     f"{INTENDED_USE}")

    def attach_view(self, zoomed_region: bool) -> None:
        """Give the chat the image exactly as shown (for a plain image: the file's pixels)."""
        if self.views.currentWidget() is self.series_viewer and self.series_viewer.shown is not None:
            png = self.series_viewer.model_view_png(zoomed_region)
            warning = burned_in_warning(self.series_viewer.header)
            if warning:
                self.statusBar().showMessage(f"Attached, but {warning}.")
            position = self.series_viewer.position + 1
            label = f"{self.current_series.modality} {self.current_series.description} " \
                    f"{position}/{len(self.series_viewer.frames)}".strip()
        elif self.current_image is not None:
            buffer = io.BytesIO()
            self.current_image.save(buffer, format="PNG")
            png, label = buffer.getvalue(), Path(self.current_path).name
        else:
            self.statusBar().showMessage("Open an image first: the model is asked about what the viewer shows.")
            return
        self.chat.add_attachment(png, label)

    def _fill_window_menu(self) -> None:
        """From file, auto and invert for all data; the HU presets only for CT in Hounsfield units."""
        menu, viewer = self.window_menu, self.series_viewer
        menu.clear()
        menu.addAction("From file", lambda: viewer.set_window(None))
        menu.addAction("Auto", viewer.auto_window)
        menu.addAction("Invert", viewer.toggle_invert)
        presets = viewer.presets()
        if presets:
            menu.addSeparator()
            for name in presets:
                menu.addAction(name.capitalize(), lambda name=name: viewer.apply_preset(name))

    def show_tags(self) -> None:
        if self.views.currentWidget() is self.series_viewer and self.series_viewer.header is not None:
            TagBrowser(self.series_viewer.header, self.identifiers_action.isChecked(), self).show()

    def _set_identifiers(self, on: bool) -> None:
        self.settings.show_identifiers = on
        self._save_settings()
        self.series_viewer.show_identifiers = on
        self.series_viewer._update_overlay()
        self.browser.set_show_identifiers(on)

    def _save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            self.statusBar().showMessage(f"Settings could not be saved: {exc}")

    def _on_failed(self, error: Exception) -> None:
        if isinstance(error, ImageOpenError):
            self.statusBar().showMessage(str(error))
        else:  # not expected from a reader, but the status line must not stay on "Opening…"
            self.statusBar().showMessage(f"Could not open the file: {str(error) or type(error).__name__}")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.model_manager is not None:
            self.model_manager.shutdown()
        self.runner.shutdown()
        self.store.close()
        super().closeEvent(event)


def run_gui(paths: list[str]) -> int:
    from app import privacy

    private = privacy.start()  # before anything is opened: the data folder and every file in it are the user's only
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Huatuo Vision")
    settings = Settings.load()
    apply_theme(app, settings.theme)
    if settings.acknowledged is None:
        if not FirstRunDialog().exec():
            return 0
        settings.acknowledge()
        settings.save()
    try:
        store, note = Store.open_or_set_aside(data_dir() / "conversations.sqlite3")
    except StoreError as exc:
        QMessageBox.critical(None, "Conversations cannot be opened", str(exc))
        return 1
    window = MainWindow(settings, store=store)
    window.show()
    if note:
        QMessageBox.warning(window, "Conversation database could not be read", note)
    if private_note := private.notice():  # said once: the next start finds nothing to narrow
        QMessageBox.information(window, "Your data folder is now private", private_note)
    from app.cpu_check import unsupported_cpu_message

    if problem := unsupported_cpu_message():  # the engine could not run here; say so instead of crashing later
        QMessageBox.warning(window, "Processor not supported", problem)
    for path in paths[:1]:
        window.open_path(path)
    return app.exec()
