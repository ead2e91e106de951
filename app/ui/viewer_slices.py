"""Moving through the viewer's series: slice by slice, by the slider at the right edge, or as a cine loop."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QSlider


def make_slider(viewer) -> QSlider:
    """The series at a glance; first slice at the top."""
    slider = QSlider(Qt.Orientation.Vertical, viewer)
    slider.setInvertedAppearance(True)
    slider.setInvertedControls(True)
    slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    slider.setToolTip("Slice (wheel, Up/Down, PgUp/PgDown, Home/End)")
    slider.valueChanged.connect(viewer.go_to)
    slider.hide()
    return slider


def make_cine(viewer) -> QTimer:
    cine = QTimer(viewer)
    cine.timeout.connect(lambda: viewer.go_to((viewer.position + 1) % max(1, len(viewer.frames))))
    return cine


class SliceNavigation:
    """Part of `Viewer`: which slice of the series is on show."""

    def go_to(self, position: int) -> None:
        if not self.frames:
            return
        position = max(0, min(len(self.frames) - 1, position))
        if position != self.position or self._decoded is None:
            if position != self.position:
                self._cancel_drawing()  # a measurement belongs to one slice
            self.position = position
            self._request(position)
        self._set_slider(position)

    def step(self, slices: int) -> None:
        self.go_to(self.position + slices)

    def go_to_last(self) -> None:
        self.go_to(len(self.frames) - 1)

    def toggle_cine(self, fps: float | None = None) -> None:
        """Play a multi-frame file or a series in a loop (at its Recommended Display Frame Rate if given)."""
        if self.cine.isActive():
            self.cine.stop()
        elif len(self.frames) > 1:
            rate = fps or float(self.header.get("RecommendedDisplayFrameRate", 0) or self.header.get("CineRate", 0)
                                or 15)
            self.cine.start(int(1000 / max(1.0, rate)))
        self.cine_changed.emit(self.cine.isActive())

    def _set_slider(self, position: int, count: int | None = None) -> None:
        """The slider follows without moving the viewer again; with `count`, a new series' range too."""
        self.slider.blockSignals(True)
        if count is not None:
            self.slider.setRange(0, max(0, count - 1))
            self.slider.setVisible(count > 1)
        self.slider.setValue(position)
        self.slider.blockSignals(False)

    def _place_slider(self) -> None:
        viewport = self.viewport().geometry()
        self.slider.setFixedHeight(max(40, viewport.height() - 80))
        self.slider.move(viewport.right() - self.slider.width() - 2, viewport.top() + 40)
