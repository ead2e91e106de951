"""A strip of series thumbnails (the middle image of each), rendered off the GUI thread."""

from __future__ import annotations

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from app.studies.frames import PixelDecodeError
from app.studies.scan import Series
from app.studies.view import FrameRenderer
from app.ui.viewer import to_qimage

THUMBNAIL = 96


class _ThumbnailSignals(QObject):
    ready = Signal(int, object)


class _Thumbnail(QRunnable):
    def __init__(self, row: int, series: Series, renderer: FrameRenderer, signals: _ThumbnailSignals):
        super().__init__()
        self.row, self.series, self.renderer, self.signals = row, series, renderer, signals

    def run(self) -> None:
        frames = self.series.frames
        instance, frame = frames[len(frames) // 2]
        try:
            self.signals.ready.emit(self.row, self.renderer.pixels(instance.path, frame))
        except (PixelDecodeError, OSError, IndexError):
            pass  # the tile keeps its text; opening the series reports the error


class SeriesStrip(QListWidget):
    series_chosen = Signal(object)  # Series

    def __init__(self):
        super().__init__()
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.LeftToRight)
        self.setWrapping(False)
        self.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.setFixedHeight(THUMBNAIL + 48)
        self.setMovement(QListWidget.Movement.Static)
        self._series: list[Series] = []
        self._renderer = FrameRenderer()
        self._signals = _ThumbnailSignals()
        self._signals.ready.connect(self._on_thumbnail)
        self.currentRowChanged.connect(lambda row: 0 <= row < len(self._series)
                                       and self.series_chosen.emit(self._series[row]))

    def set_series(self, series: list[Series]) -> None:
        self.blockSignals(True)
        self.clear()
        self._series = [s for s in series if s.is_image]
        for row, s in enumerate(self._series):
            label = f"{s.modality} {s.description}".strip() + f"\n{len(s.frames)} image(s)"
            item = QListWidgetItem(label)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            self.addItem(item)
            QThreadPool.globalInstance().start(_Thumbnail(row, s, self._renderer, self._signals))
        self.blockSignals(False)

    def _on_thumbnail(self, row: int, pixels) -> None:
        if row < self.count():
            image = to_qimage(pixels).scaled(THUMBNAIL, THUMBNAIL, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation)
            self.item(row).setIcon(QIcon(QPixmap.fromImage(image)))
