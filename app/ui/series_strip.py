"""A strip of series thumbnails (the middle image of each), rendered off the GUI thread."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from app.studies.frames import PixelDecodeError
from app.studies.scan import Series
from app.studies.view import FrameRenderer
from app.ui.background import run_in_background
from app.ui.viewer import to_qimage

THUMBNAIL = 96


def _middle_image(renderer: FrameRenderer, row: int, series: Series):
    instance, frame = series.frames[len(series.frames) // 2]
    try:
        return row, series, renderer.pixels(instance.path, frame)
    except (PixelDecodeError, OSError, IndexError):
        return row, series, None  # the tile keeps its text; opening the series reports the error


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
        self.currentRowChanged.connect(lambda row: 0 <= row < len(self._series)
                                       and self.series_chosen.emit(self._series[row]))

    def set_series(self, series: list[Series]) -> None:
        self.blockSignals(True)
        self.clear()
        self._series = [s for s in series if s.is_image]
        renderer = self._renderer
        for row, s in enumerate(self._series):
            label = f"{s.modality} {s.description}".strip() + f"\n{len(s.frames)} image(s)"
            item = QListWidgetItem(label)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            self.addItem(item)
            run_in_background(lambda cancel, row=row, s=s: _middle_image(renderer, row, s), on_done=self._on_thumbnail)
        self.blockSignals(False)

    def _on_thumbnail(self, thumbnail) -> None:
        row, series, pixels = thumbnail
        if pixels is not None and row < len(self._series) and self._series[row] is series:  # still on show
            image = to_qimage(pixels).scaled(THUMBNAIL, THUMBNAIL, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation)
            self.item(row).setIcon(QIcon(QPixmap.fromImage(image)))
