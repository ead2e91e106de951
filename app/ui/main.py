"""The desktop window: open an image or a DICOM file and see it; models and chat come in beside it."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL.ImageQt import ImageQt
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QAction, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.imaging import ImageOpenError, open_image
from app.paths import models_dir
from app.studies.scan import Library, looks_like_dicom, scan
from app.ui.series_strip import SeriesStrip
from app.ui.tag_browser import TagBrowser
from app.ui.viewer import Viewer
from inference.models import installed_models

INTENDED_USE = "For education and research; not for diagnosis."
NO_MODEL_HELP = (
    "<b>No model installed.</b><br><br>Images and DICOM files open without one. To ask questions, convert a "
    "HuatuoGPT-Vision checkpoint into the models folder:<br><br>"
    '<code>huatuo convert CHECKPOINT_FOLDER "{models}/HuatuoGPT-Vision-7B" --quant Q4_K_M</code>'
)


class _LoadSignals(QObject):
    loaded = Signal(str, object)
    failed = Signal(str, str)


class _LoadImage(QRunnable):
    """Reads a path off the GUI thread: a DICOM file or folder becomes a scanned Library, an image a PIL image."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.signals = _LoadSignals()

    def run(self) -> None:
        path = Path(self.path)
        try:
            if path.is_dir() or looks_like_dicom(path) or path.name.upper() == "DICOMDIR":
                library = scan([path])
                if not any(s.is_image for s in library.all_series()):
                    reasons = [r for _, r in library.skipped] or [
                        f"{i.kind} (not an image)" for s in library.all_series() for i in s.instances]
                    raise ImageOpenError(f"{path.name}: nothing to show: " + ("; ".join(reasons[:3]) or "no DICOM"))
                self.signals.loaded.emit(self.path, library)
            else:
                self.signals.loaded.emit(self.path, open_image(self.path))
        except ImageOpenError as exc:
            self.signals.failed.emit(self.path, str(exc))


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
    def __init__(self):
        super().__init__()
        self.setWindowTitle("Huatuo Vision")
        self.resize(1200, 800)
        self.viewer = ImageView()
        self.series_viewer = Viewer()
        self.series_viewer.message.connect(self.statusBar().showMessage)
        self.views = QStackedWidget()
        self.views.addWidget(self.viewer)
        self.views.addWidget(self.series_viewer)
        self.model_panel = QLabel()
        self.model_panel.setWordWrap(True)
        self.model_panel.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model_panel.setAlignment(Qt.AlignmentFlag.AlignTop)
        side = QWidget()
        layout = QVBoxLayout(side)
        layout.addWidget(self.model_panel)
        splitter = QSplitter()
        self.strip = SeriesStrip()
        self.strip.series_chosen.connect(self.show_series)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.views, 1)
        left_layout.addWidget(self.strip)
        splitter.addWidget(left)
        splitter.addWidget(side)
        splitter.setSizes([800, 400])
        self.setCentralWidget(splitter)
        self._build_menu()
        self.statusBar().showMessage(INTENDED_USE)
        self.current_path: str | None = None
        self.refresh_models()

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open image or DICOM…", self, shortcut=QKeySequence.StandardKey.Open)
        open_action.triggered.connect(self.choose_file)
        menu.addAction(open_action)
        folder_action = QAction("Open &folder…", self)
        folder_action.triggered.connect(self.choose_folder)
        menu.addAction(folder_action)
        view_menu = self.menuBar().addMenu("&View")
        tags_action = QAction("DICOM &tags…", self, shortcut=QKeySequence("Ctrl+T"))
        tags_action.triggered.connect(self.show_tags)
        view_menu.addAction(tags_action)
        self.identifiers_action = QAction("Show patient &identifiers", self, checkable=True)
        self.identifiers_action.toggled.connect(self._set_identifiers)
        view_menu.addAction(self.identifiers_action)
        self.window_menu = self.menuBar().addMenu("&Window")
        self.window_menu.aboutToShow.connect(self._fill_window_menu)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)

    def refresh_models(self) -> None:
        models, problems = installed_models(models_dir())
        if models:
            text = "<b>Installed models</b><br>" + "<br>".join(m.label for m in models)
        else:
            text = NO_MODEL_HELP.format(models=models_dir())
        if problems:
            text += "<br><br><b>Could not read:</b><br>" + "<br>".join(problems)
        self.model_panel.setText(text)

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
        job = _LoadImage(path)
        job.signals.loaded.connect(self._on_loaded)
        job.signals.failed.connect(self._on_failed)
        QThreadPool.globalInstance().start(job)

    def _on_loaded(self, path: str, content) -> None:
        self.current_path = path
        if isinstance(content, Library):
            series = [s for s in content.all_series() if s.is_image]
            self.strip.set_series(series)
            self.show_series(series[0])
            skipped = f" · {len(content.skipped)} file(s) could not be read" if content.skipped else ""
            self.statusBar().showMessage(f"{Path(path).name} · {len(series)} series{skipped} · {INTENDED_USE}")
            return
        self.strip.set_series([])
        self.viewer.show_image(content)
        self.views.setCurrentWidget(self.viewer)
        self.statusBar().showMessage(f"{Path(path).name} · {content.width}×{content.height} · {INTENDED_USE}")

    def show_series(self, series) -> None:
        self.series_viewer.set_frames([(i.path, f) for i, f in series.frames])
        self.views.setCurrentWidget(self.series_viewer)
        self.series_viewer.setFocus()
        self.statusBar().showMessage(f"{series.modality} · {series.description} · {len(series.frames)} image(s) · "
                                     f"{INTENDED_USE}")

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
        self.series_viewer.show_identifiers = on
        self.series_viewer._update_overlay()

    def _on_failed(self, path: str, message: str) -> None:
        self.statusBar().showMessage(message)


def run_gui(paths: list[str]) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Huatuo Vision")
    window = MainWindow()
    window.show()
    for path in paths[:1]:
        window.open_path(path)
    return app.exec()
