"""A strip of series thumbnails (the middle image of each), rendered off the GUI thread. While a folder is read, one
tile says how far the reading got (the series are shown once they are complete and sorted)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QProgressBar, QVBoxLayout, QWidget

from app.studies.frames import PixelDecodeError
from app.studies.scan import Series
from app.studies.view import FrameRenderer
from app.ui.background import run_in_background
from app.ui.viewer import to_qimage

THUMBNAIL = 96
SCAN_TILE_WIDTH = 180


class ScanTile(QWidget):
    """"scanning 240 of 1024…" over a small progress bar."""

    def __init__(self):
        super().__init__()
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addStretch(1)

    def show_progress(self, done: int, total: int) -> None:
        self.label.setText(f"scanning {done} of {total}…")
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(min(done, total))


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
        self._scan: ScanTile | None = None  # shown while a folder is read
        self._renderer = FrameRenderer()
        self.currentRowChanged.connect(lambda row: 0 <= row < len(self._series)
                                       and self.series_chosen.emit(self._series[row]))

    @property
    def scan_tile(self) -> ScanTile | None:
        return self._scan

    def show_scan(self, done: int, total: int) -> None:
        """A folder is being read: done of its total files so far. The strip holds only this progress until
        set_series gives it the sorted series (an earlier study's series are no longer offered meanwhile)."""
        if self._scan is None:
            self._clear()
            item = QListWidgetItem()
            item.setFlags(Qt.ItemFlag.NoItemFlags)  # not a series: nothing to choose
            item.setSizeHint(QSize(SCAN_TILE_WIDTH, THUMBNAIL + 40))
            self.addItem(item)
            self._scan = ScanTile()
            self.setItemWidget(item, self._scan)
        self._scan.show_progress(done, total)

    def _clear(self) -> None:
        self.blockSignals(True)
        self.clear()  # the view deletes the scan tile's widget with its item
        self._series, self._scan = [], None
        self.blockSignals(False)

    def set_series(self, series: list[Series]) -> None:
        self._clear()
        self.blockSignals(True)
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
