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
    QVBoxLayout,
    QWidget,
)

from app.imaging import ImageOpenError, open_image
from app.paths import models_dir
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
    """Decodes a file off the GUI thread."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.signals = _LoadSignals()

    def run(self) -> None:
        try:
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
        self.model_panel = QLabel()
        self.model_panel.setWordWrap(True)
        self.model_panel.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.model_panel.setAlignment(Qt.AlignmentFlag.AlignTop)
        side = QWidget()
        layout = QVBoxLayout(side)
        layout.addWidget(self.model_panel)
        splitter = QSplitter()
        splitter.addWidget(self.viewer)
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

    def open_path(self, path: str) -> None:
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        job = _LoadImage(path)
        job.signals.loaded.connect(self._on_loaded)
        job.signals.failed.connect(self._on_failed)
        QThreadPool.globalInstance().start(job)

    def _on_loaded(self, path: str, image) -> None:
        self.current_path = path
        self.viewer.show_image(image)
        self.statusBar().showMessage(f"{Path(path).name} · {image.width}×{image.height} · {INTENDED_USE}")

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
