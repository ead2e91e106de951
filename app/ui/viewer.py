"""The DICOM viewer: one series (or a multi-frame file) with the usual mouse and keyboard conventions.

Left-drag window/level, middle-drag pan, right-drag zoom, wheel scroll slices (Ctrl+wheel zoom); keys:
Up/Down/PageUp/PageDown/Home/End slices, R rotate, H/V flip, I invert, F fit, 1 actual size, Esc reset,
M measure (left-drag draws a ruler, in mm from Pixel Spacing), Space cine. Hovering shows the value under
the cursor.
Frames are decoded off the GUI thread through a bounded cache; window changes re-render the decoded frame.
What the model is given is `model_view_png()`: the same pixels the widget shows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsLineItem, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QLabel

from app.studies.frames import FrameCache
from app.studies.measure import length, probe
from app.studies.orientation import edge_letters
from app.studies.pixels import Window, default_window, is_colour, is_hounsfield, modality_values, render
from app.studies.presets import CT_PRESETS
from app.studies.view import FrameRenderer, ViewState, orient, shown_to_source, to_png
from app.ui.background import run_in_background

WL_SENSITIVITY = 1.0  # window units per pixel of drag, times the current width / 256


def to_qimage(pixels: np.ndarray) -> QImage:
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    if pixels.ndim == 2:
        image = QImage(pixels.data, width, height, pixels.strides[0], QImage.Format.Format_Grayscale8)
    else:
        image = QImage(pixels.data, width, height, pixels.strides[0], QImage.Format.Format_RGB888)
    return image.copy()  # own the memory


def _decode(renderer: FrameRenderer, position: int, path: Path, frame: int):
    """Off the GUI thread: the frame's pixels (kept in the renderer's cache), with where they belong."""
    return position, (path, frame), renderer.cache.get(path, frame, renderer.header(path))


class Viewer(QGraphicsView):
    frame_changed = Signal(int, int)  # position, count
    view_changed = Signal()
    message = Signal(str)

    def __init__(self, cache_bytes: int = 512 * 1024 * 1024):
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.renderer = FrameRenderer(FrameCache(cache_bytes))
        self.frames: list[tuple[Path, int]] = []
        self.position = 0
        self.view = ViewState()
        self.show_identifiers = False
        self.shown: np.ndarray | None = None  # the pixels on screen, exactly
        self._decoded: np.ndarray | None = None
        self._drag_start: QPointF | None = None
        self._drag_button = None
        self._drag_window: Window | None = None
        self.overlay = QLabel(self)
        self.overlay.setStyleSheet("color: #e0e0e0; background: transparent; font-family: monospace;")
        self.overlay.move(8, 8)
        self.edge_labels = {edge: QLabel(self) for edge in ("left", "right", "top", "bottom")}
        for label in self.edge_labels.values():
            label.setStyleSheet("color: #f0d060; background: transparent; font-weight: bold;")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.cine = QTimer(self)
        self.cine.timeout.connect(lambda: self.go_to((self.position + 1) % max(1, len(self.frames))))
        self.measuring = False  # M toggles: left-drag measures instead of windowing
        self.probe_text = ""
        self.measurement = ""
        self._ruler = QGraphicsLineItem()
        self._ruler.setPen(QPen(QColor("#40e0ff"), 0))
        self._ruler.setZValue(1)
        self._ruler.hide()
        self.scene().addItem(self._ruler)

    # --- content -------------------------------------------------------------------------------
    def set_frames(self, frames: list[tuple[Path, int]]) -> None:
        self.frames = list(frames)
        self.view = ViewState()
        self.position = 0
        self._request(0)

    @property
    def header(self):
        return self.renderer.header(self.frames[self.position][0]) if self.frames else None

    def go_to(self, position: int) -> None:
        if not self.frames:
            return
        position = max(0, min(len(self.frames) - 1, position))
        if position != self.position or self._decoded is None:
            self.position = position
            self._request(position)

    def _request(self, position: int) -> None:
        renderer, (path, frame) = self.renderer, self.frames[position]
        run_in_background(lambda cancel: _decode(renderer, position, path, frame), on_done=self._on_decoded,
                          on_failed=self._on_decode_failed)
        for neighbour in (position + 1, position - 1):  # prefetch into the cache for smooth scrolling
            if 0 <= neighbour < len(self.frames):
                p, f = self.frames[neighbour]
                run_in_background(lambda cancel, n=neighbour, p=p, f=f: _decode(renderer, n, p, f))

    def _on_decoded(self, decoded) -> None:
        position, source, frame = decoded
        on_show = self.frames[position] if position < len(self.frames) else None
        if position != self.position or source != on_show:
            return  # a slice the user has already scrolled past, or one of a series no longer shown
        first = self._decoded is None
        self._decoded = frame
        if self.view.window is None:
            self.view = replace(self.view, window=self._default_window())
        self._show()
        if first:
            self.fit()
        self.frame_changed.emit(self.position, len(self.frames))

    def _on_decode_failed(self, error: Exception) -> None:
        self.message.emit(str(error) or type(error).__name__)

    def _show(self) -> None:
        if self._decoded is None:
            return
        pixels = render(self._decoded, self.header, self.view.window, self.view.invert)
        self.shown = orient(pixels, replace(self.view, region=None))
        self.item.setPixmap(QPixmap.fromImage(to_qimage(self.shown)))
        self.scene().setSceneRect(self.item.boundingRect())
        self._update_overlay()
        self.view_changed.emit()

    # --- window / level ------------------------------------------------------------------------
    def _default_window(self) -> Window | None:
        """The shown frame's own window (None for colour data or when its VOI LUT applies)."""
        if self._decoded is None or is_colour(self.header):
            return None
        return default_window(self.header, modality_values(self._decoded, self.header))

    def set_window(self, window: Window | None) -> None:
        """A window in modality units; None goes back to the file's own."""
        self.view = replace(self.view, window=window or self._default_window())
        self._show()

    def presets(self) -> list[str]:
        """HU presets only for CT with a rescale; other data get "from file", "auto" and invert."""
        return sorted(CT_PRESETS) if self.header is not None and is_hounsfield(self.header) else []

    def apply_preset(self, name: str) -> None:
        if name not in self.presets():
            raise ValueError(f"the preset {name!r} applies to CT in Hounsfield units only")
        self.set_window(Window(*CT_PRESETS[name]))

    def auto_window(self) -> None:
        from app.studies.pixels import auto_window

        if self._decoded is not None:
            self.set_window(auto_window(modality_values(self._decoded, self.header)))

    # --- geometry ------------------------------------------------------------------------------
    def fit(self) -> None:
        if not self.item.pixmap().isNull():
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)
            self._update_overlay()

    def actual_size(self) -> None:
        self.resetTransform()
        self._update_overlay()

    def zoom(self) -> float:
        return self.transform().m11()

    def rotate_view(self, degrees: int = 90) -> None:
        self.view = self.view.rotated(degrees)
        self._show()
        self.fit()

    def flip(self, horizontal: bool) -> None:
        key = "flip_horizontal" if horizontal else "flip_vertical"
        self.view = replace(self.view, **{key: not getattr(self.view, key)})
        self._show()

    def toggle_invert(self) -> None:
        self.view = replace(self.view, invert=not self.view.invert)
        self._show()

    def toggle_cine(self, fps: float | None = None) -> None:
        """Play a multi-frame file or a series in a loop (at its Recommended Display Frame Rate if given)."""
        if self.cine.isActive():
            self.cine.stop()
            return
        if len(self.frames) > 1:
            rate = fps or float(self.header.get("RecommendedDisplayFrameRate", 0) or self.header.get("CineRate", 0)
                                or 15)
            self.cine.start(int(1000 / max(1.0, rate)))

    def toggle_measuring(self) -> None:
        self.measuring = not self.measuring
        if not self.measuring:
            self._ruler.hide()
            self.measurement = ""
            self._update_overlay()

    def reset(self) -> None:
        self.view = ViewState()
        self.set_window(None)
        self.fit()

    # --- what the model sees -------------------------------------------------------------------
    def visible_region(self) -> tuple[int, int, int, int]:
        """The part of the shown image inside the viewport, in image pixels."""
        rect = self.mapToScene(self.viewport().rect()).boundingRect().intersected(self.item.boundingRect())
        return int(rect.left()), int(rect.top()), int(np.ceil(rect.right())), int(np.ceil(rect.bottom()))

    def model_view(self, zoomed_region: bool = False) -> np.ndarray:
        if self.shown is None:
            raise ValueError("no image is shown")
        if not zoomed_region:
            return self.shown
        left, top, right, bottom = self.visible_region()
        return self.shown[top:bottom, left:right]

    def model_view_png(self, zoomed_region: bool = False) -> bytes:
        return to_png(self.model_view(zoomed_region))

    # --- overlays ------------------------------------------------------------------------------
    def _update_overlay(self) -> None:
        if not self.frames or self.header is None:
            self.overlay.setText("")
            return
        ds = self.header
        lines = []
        if self.show_identifiers:
            lines.append(f"{ds.get('PatientName', '')}  {ds.get('PatientID', '')}")
        lines.append(f"{ds.get('Modality', '')}  {self.position + 1}/{len(self.frames)}")
        if self.view.window is not None and not is_colour(ds):
            lines.append(f"W {self.view.window.width:.0f}  L {self.view.window.centre:.0f}")
        lines.append(f"zoom {self.zoom() * 100:.0f}%")
        if str(ds.get("LossyImageCompression", "00")) == "01":
            lines.append("LOSSY")
        if self.probe_text:
            lines.append(self.probe_text)
        if self.measurement:
            lines.append(f"length {self.measurement}")
        self.overlay.setText("\n".join(lines))
        self.overlay.adjustSize()
        self._place_edge_letters()

    def _place_edge_letters(self) -> None:
        letters = None
        if self.frames and self.header is not None:
            value = self.header.get("ImageOrientationPatient")
            letters = edge_letters(tuple(float(v) for v in value) if value is not None and len(value) == 6 else None,
                                   self.view)
        width, height = self.viewport().width(), self.viewport().height()
        for edge, label in self.edge_labels.items():
            label.setText(letters[edge] if letters else "")
            label.adjustSize()
            x = {"left": 6, "right": width - label.width() - 6}.get(edge, (width - label.width()) // 2)
            y = {"top": 6, "bottom": height - label.height() - 6}.get(edge, (height - label.height()) // 2)
            label.move(x, y)

    # --- mouse and keys ------------------------------------------------------------------------
    def _source_point(self, position) -> tuple[int, int] | None:
        """The stored frame's (row, column) under a viewport position."""
        if self._decoded is None:
            return None
        scene = self.mapToScene(position.toPoint())
        return shown_to_source(scene.x(), scene.y(), self._decoded.shape[:2], self.view)

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._drag_start = event.position()
        self._drag_button = event.button()
        self._drag_window = self.view.window
        if self.measuring and event.button() == Qt.MouseButton.LeftButton:
            start = self.mapToScene(event.position().toPoint())
            self._ruler.setLine(start.x(), start.y(), start.x(), start.y())
            self._ruler.show()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drag_start is None:
            point = self._source_point(event.position())
            self.probe_text = (f"{probe(self._decoded, self.header, *point)} @ ({point[1]}, {point[0]})"
                               if point is not None else "")
            self._update_overlay()
            return
        delta = event.position() - self._drag_start
        if self.measuring and self._drag_button == Qt.MouseButton.LeftButton:
            end = self.mapToScene(event.position().toPoint())
            line = self._ruler.line()
            self._ruler.setLine(line.x1(), line.y1(), end.x(), end.y())
            a = self._source_point(self._drag_start)
            b = self._source_point(event.position())
            if a is not None and b is not None:
                self.measurement = length(self.header, a, b)
                self._update_overlay()
        elif self._drag_button == Qt.MouseButton.LeftButton and self._drag_window is not None:
            w = self._drag_window
            step = WL_SENSITIVITY * max(w.width, 1.0) / 256
            self.view = replace(self.view, window=Window(w.centre - delta.y() * step,
                                                         max(1.0, w.width + delta.x() * step), w.function))
            self._show()
        elif self._drag_button == Qt.MouseButton.MiddleButton:
            self.horizontalScrollBar().setValue(int(self.horizontalScrollBar().value() - delta.x()))
            self.verticalScrollBar().setValue(int(self.verticalScrollBar().value() - delta.y()))
            self._drag_start = event.position()
        elif self._drag_button == Qt.MouseButton.RightButton:
            factor = 1.01 ** (-delta.y())
            self.scale(factor, factor)
            self._drag_start = event.position()
            self._update_overlay()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self._drag_start = None

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._place_edge_letters()

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() // 120
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            factor = 1.15**steps
            self.scale(factor, factor)
            self._update_overlay()
        elif steps:
            self.go_to(self.position - steps)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        actions = {
            Qt.Key.Key_Up: lambda: self.go_to(self.position - 1),
            Qt.Key.Key_Down: lambda: self.go_to(self.position + 1),
            Qt.Key.Key_PageUp: lambda: self.go_to(self.position - 10),
            Qt.Key.Key_PageDown: lambda: self.go_to(self.position + 10),
            Qt.Key.Key_Home: lambda: self.go_to(0),
            Qt.Key.Key_End: lambda: self.go_to(len(self.frames) - 1),
            Qt.Key.Key_R: self.rotate_view,
            Qt.Key.Key_H: lambda: self.flip(True),
            Qt.Key.Key_V: lambda: self.flip(False),
            Qt.Key.Key_I: self.toggle_invert,
            Qt.Key.Key_F: self.fit,
            Qt.Key.Key_1: self.actual_size,
            Qt.Key.Key_Escape: self.reset,
            Qt.Key.Key_M: self.toggle_measuring,
            Qt.Key.Key_Space: self.toggle_cine,
        }
        if key in actions:
            actions[key]()
        else:
            super().keyPressEvent(event)
