"""The DICOM viewer: one series (or a multi-frame file) with the usual mouse and keyboard conventions.

Left-drag does what the selected tool does (window/level by default; zoom, pan, ruler, ellipse, probe), middle-drag
pans, right-drag zooms, the wheel scrolls slices (Ctrl+wheel zooms), a slider at the right edge moves through the
series; the keys are `viewer_tools.COMMANDS` (the toolbar and Help › Keyboard shortcuts are built from the same
table). Hovering shows the value under the cursor. Measurements stay with the slice they were made on.
Frames are decoded off the GUI thread through a bounded cache; window changes re-render the decoded frame.
A new series starts fitted, with no probe value or measurement from the last one; a frame that cannot be decoded
is explained in the viewer itself. Overlay text is outlined so that it reads over any pixels.
What the model is given is `model_view_png()`: the same pixels the widget shows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, Qt, QTimer, Signal
from PySide6.QtGui import QCursor, QImage, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QLabel, QSlider

from app.studies.frames import FrameCache, PixelDecodeError
from app.studies.measure import probe, shown_to_source_point
from app.studies.orientation import edge_letters
from app.studies.pixels import Window, default_window, is_colour, is_hounsfield, modality_values, render
from app.studies.presets import CT_PRESETS
from app.studies.view import FrameRenderer, ViewState, orient, shown_to_source, to_png
from app.ui.background import run_in_background
from app.ui.viewer_measurements import Measurement, draw, measure
from app.ui.viewer_overlay import OutlinedText, slice_lines
from app.ui.viewer_tools import Tool, command_for, run

WL_SENSITIVITY = 1.0  # window units per pixel of drag, times the current width / 256
DRAWN = {Tool.RULER: "line", Tool.ELLIPSE: "ellipse", Tool.PROBE: "point"}  # tools that draw a measurement
CURSORS = {Tool.WINDOW: Qt.CursorShape.ArrowCursor, Tool.ZOOM: Qt.CursorShape.SizeVerCursor,
           Tool.PAN: Qt.CursorShape.OpenHandCursor, Tool.RULER: Qt.CursorShape.CrossCursor,
           Tool.ELLIPSE: Qt.CursorShape.CrossCursor, Tool.PROBE: Qt.CursorShape.CrossCursor}


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
    tool_changed = Signal(object)  # Tool
    cine_changed = Signal(bool)
    measurements_changed = Signal()

    def __init__(self, cache_bytes: int = 512 * 1024 * 1024):
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        # No scroll bars, as in reading viewers (middle-drag pans): a fit then always uses the whole view.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
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
        self.overlay = OutlinedText(self, "#e0e0e0", monospace=True)
        self.overlay.move(8, 8)
        self.edge_labels = {edge: OutlinedText(self, "#f0d060", bold=True)
                            for edge in ("left", "right", "top", "bottom")}
        self.notice = QLabel(self)  # why the frame on show cannot be shown; hidden while it can
        self.notice.setWordWrap(True)
        self.notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.notice.setTextFormat(Qt.TextFormat.PlainText)
        self.notice.setStyleSheet("color: #f2f2f2; background: #3a2323; border: 1px solid #c06060; padding: 12px;")
        self.notice.hide()
        self._fit_pending = False  # a new series is fitted when its first frame arrives
        self._fitted = False  # fitted, and not zoomed since: a resize fits again
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.cine = QTimer(self)
        self.cine.timeout.connect(lambda: self.go_to((self.position + 1) % max(1, len(self.frames))))
        self.tool = Tool.WINDOW  # what left-drag does
        self.probe_text = ""
        self.measurement = ""  # the latest measurement on this slice, in words, for the overlay
        self.measurements: list[Measurement] = []  # of this series, each with its slice
        self._drawing: tuple[str, tuple[float, float]] | None = None  # a measurement being drawn: kind, start
        self._pending: Measurement | None = None
        self._measurement_items: list = []
        self.slider = QSlider(Qt.Orientation.Vertical, self)  # the series at a glance; first slice at the top
        self.slider.setInvertedAppearance(True)
        self.slider.setInvertedControls(True)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.setToolTip("Slice (wheel, Up/Down, PgUp/PgDown, Home/End)")
        self.slider.valueChanged.connect(self.go_to)
        self.slider.hide()

    # --- content -------------------------------------------------------------------------------
    def set_frames(self, frames: list[tuple[Path, int]]) -> None:
        """Show another series: fitted to the view when its first frame arrives, nothing kept from the last one."""
        self.frames = list(frames)
        self.view = ViewState()
        self.position = 0
        self._clear_image()
        self.probe_text = self.measurement = ""
        self.measurements, self._drawing, self._pending = [], None, None
        self._draw_measurements()
        self.measurements_changed.emit()
        self._set_notice("")
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(self.frames) - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.slider.setVisible(len(self.frames) > 1)
        self._place_slider()
        self._fit_pending = True
        self.overlay.setText("")
        self._place_edge_letters()
        if self.frames:
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
        self.slider.blockSignals(True)
        self.slider.setValue(position)
        self.slider.blockSignals(False)

    def step(self, slices: int) -> None:
        self.go_to(self.position + slices)

    def go_to_last(self) -> None:
        self.go_to(len(self.frames) - 1)

    def _request(self, position: int) -> None:
        renderer, (path, frame) = self.renderer, self.frames[position]
        run_in_background(lambda cancel: _decode(renderer, position, path, frame), on_done=self._on_decoded,
                          on_failed=lambda error: self._on_decode_failed(position, (path, frame), error))
        for neighbour in (position + 1, position - 1):  # prefetch into the cache for smooth scrolling
            if 0 <= neighbour < len(self.frames):
                p, f = self.frames[neighbour]
                run_in_background(lambda cancel, n=neighbour, p=p, f=f: _decode(renderer, n, p, f))

    def _on_decoded(self, decoded) -> None:
        position, source, frame = decoded
        on_show = self.frames[position] if position < len(self.frames) else None
        if position != self.position or source != on_show:
            return  # a slice the user has already scrolled past, or one of a series no longer shown
        self._decoded = frame
        self._set_notice("")
        if self.probe_text:  # hovering while scrolling: this slice's value (a new series starts without one)
            self._update_probe()
        if self.view.window is None:
            self.view = replace(self.view, window=self._default_window())
        self._show()
        if self._fit_pending:
            self._fit_pending = False
            self.fit()
        self.frame_changed.emit(self.position, len(self.frames))

    def _on_decode_failed(self, position: int, source: tuple[Path, int], error: Exception) -> None:
        on_show = self.frames[position] if position < len(self.frames) else None
        if position != self.position or source != on_show:
            return
        reason = str(error) or type(error).__name__
        if source[0].name not in reason:  # say which file, as the decoder's own messages do
            reason = f"{source[0].name}: {reason}"
        self._clear_image()  # no pixels of another frame under this one's overlay
        self._set_notice(f"This image cannot be shown.\n\n{reason}")
        self._update_overlay()
        self.message.emit(reason)
        self.frame_changed.emit(self.position, len(self.frames))

    def _clear_image(self) -> None:
        self._decoded = self.shown = None
        self.item.setPixmap(QPixmap())
        self.viewport().update()

    def _set_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        self._place_notice()

    def _place_notice(self) -> None:
        if not self.notice.text():
            return
        viewport = self.viewport().geometry()
        width = max(120, min(520, viewport.width() - 40))
        self.notice.setFixedWidth(width)
        self.notice.adjustSize()
        self.notice.move(viewport.center().x() - width // 2, viewport.center().y() - self.notice.height() // 2)

    def _show(self) -> None:
        if self._decoded is None:
            return
        pixels = render(self._decoded, self.header, self.view.window, self.view.invert)
        self.shown = orient(pixels, replace(self.view, region=None))
        self.item.setPixmap(QPixmap.fromImage(to_qimage(self.shown)))
        self.scene().setSceneRect(self.item.boundingRect())
        self._draw_measurements()
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

    def apply_preset_key(self, name: str) -> None:
        """A preset hotkey: applied to CT in HU; on other data it says why nothing happened."""
        if name in self.presets():
            self.apply_preset(name)
        elif self.header is not None:
            modality = self.header.get("Modality") or "not CT"
            self.message.emit(f"The {name} preset is for CT in Hounsfield units; this is {modality}.")

    def auto_window(self) -> None:
        from app.studies.pixels import auto_window

        if self._decoded is not None:
            self.set_window(auto_window(modality_values(self._decoded, self.header)))

    # --- geometry ------------------------------------------------------------------------------
    def fit(self) -> None:
        if not self.item.pixmap().isNull():
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)
            self._fitted = True
            self._update_overlay()

    def actual_size(self) -> None:
        self.resetTransform()
        self._fitted = False
        self._update_overlay()

    def zoom_by(self, factor: float) -> None:
        self.scale(factor, factor)
        self._fitted = False
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
        elif len(self.frames) > 1:
            rate = fps or float(self.header.get("RecommendedDisplayFrameRate", 0) or self.header.get("CineRate", 0)
                                or 15)
            self.cine.start(int(1000 / max(1.0, rate)))
        self.cine_changed.emit(self.cine.isActive())

    # --- tools and measurements ----------------------------------------------------------------
    def select_tool(self, tool: Tool, toggle: bool = True) -> None:
        """What left-drag does; a tool's key pressed again (toggle) goes back to window/level."""
        if toggle and tool == self.tool:
            tool = Tool.WINDOW
        self.tool = tool
        self.viewport().setCursor(CURSORS[tool])
        self.tool_changed.emit(tool)

    @property
    def measuring(self) -> bool:
        return self.tool == Tool.RULER

    def toggle_measuring(self) -> None:
        self.select_tool(Tool.RULER)

    def measurements_on_slice(self, position: int | None = None) -> list[Measurement]:
        if not self.frames:
            return []
        source = self.frames[self.position if position is None else position]
        return [m for m in self.measurements if m.source == source]

    def delete_measurement(self, measurement: Measurement) -> None:
        self.measurements = [m for m in self.measurements if m is not measurement]
        self._after_measurements_changed()

    def delete_last_measurement(self) -> None:
        on_slice = self.measurements_on_slice()
        if on_slice:
            self.delete_measurement(on_slice[-1])

    def clear_measurements(self) -> None:
        self.measurements = []
        self._after_measurements_changed()

    def _after_measurements_changed(self) -> None:
        self._draw_measurements()
        self._update_overlay()
        self.measurements_changed.emit()

    def _draw_measurements(self) -> None:
        """Only this slice's measurements (and one being drawn), placed for the current rotation and flips."""
        for item in self._measurement_items:
            self.scene().removeItem(item)
        self._measurement_items = []
        on_slice = self.measurements_on_slice() if self._decoded is not None else []
        if self._pending is not None:
            on_slice.append(self._pending)
        for m in on_slice:
            self._measurement_items += draw(self.scene(), m, self._decoded.shape[:2], self.view)
        self.measurement = on_slice[-1].text if on_slice else ""

    def _frame_point(self, position) -> tuple[float, float]:
        """A viewport position as a (row, column) of the stored frame, continuous."""
        scene = self.mapToScene(position.toPoint())
        return shown_to_source_point(scene.x(), scene.y(), self._decoded.shape[:2], self.view)

    def _update_drawing(self, position, finished: bool) -> None:
        kind, start = self._drawing
        points = (self._frame_point(position),) if kind == "point" else (start, self._frame_point(position))
        self._pending = measure(kind, self.frames[self.position], points, self._decoded, self.header)
        if finished:
            if self._pending is not None:
                self.measurements.append(self._pending)
            self._drawing, self._pending = None, None
            self.measurements_changed.emit()
        self._draw_measurements()
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
        try:
            ds = self.header
        except PixelDecodeError:  # not even the header can be read: the notice says so
            ds = None
        if ds is None:
            self.overlay.setText("")
            self._place_edge_letters()
            return
        lines = []
        if self.show_identifiers:
            lines.append(f"{ds.get('PatientName', '')}  {ds.get('PatientID', '')}")
        lines.append(f"{ds.get('Modality', '')}  {self.position + 1}/{len(self.frames)}")
        if self._decoded is None:  # nothing on show (yet): no window, zoom or letters that would describe nothing
            self.overlay.setText("\n".join(lines))
            self.overlay.adjustSize()
            self._place_edge_letters()
            return
        if self.view.window is not None and not is_colour(ds):
            lines.append(f"W {self.view.window.width:.0f}  L {self.view.window.centre:.0f}")
        lines.append(f"zoom {self.zoom() * 100:.0f}%")
        lines += slice_lines(ds)
        if str(ds.get("LossyImageCompression", "00")) == "01":
            lines.append("LOSSY")
        if self.probe_text:
            lines.append(self.probe_text)
        if self.measurement:
            lines.append(self.measurement)
        self.overlay.setText("\n".join(lines))
        self.overlay.adjustSize()
        self._place_edge_letters()

    def _place_edge_letters(self) -> None:
        letters = None
        if self._decoded is not None and self.frames and self.header is not None:
            value = self.header.get("ImageOrientationPatient")
            letters = edge_letters(tuple(float(v) for v in value) if value is not None and len(value) == 6 else None,
                                   self.view)
        width, height = self.viewport().width(), self.viewport().height()
        if self.slider.isVisible():
            width -= self.slider.width()
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
        self._drag_button = self._drag_role(event.button())
        self._drag_window = self.view.window
        if self._drag_button in DRAWN and self._decoded is not None:
            self._drawing = (DRAWN[self._drag_button], self._frame_point(event.position()))
            self._update_drawing(event.position(), finished=False)

    def _drag_role(self, button) -> Tool | None:
        """Left-drag follows the selected tool; middle always pans and right always zooms."""
        return {Qt.MouseButton.LeftButton: self.tool, Qt.MouseButton.MiddleButton: Tool.PAN,
                Qt.MouseButton.RightButton: Tool.ZOOM}.get(button)

    def _update_probe(self) -> None:
        """The value under the cursor, while the cursor is over the image."""
        position = self.viewport().mapFromGlobal(QCursor.pos())
        point = self._source_point(QPointF(position)) if self.viewport().rect().contains(position) else None
        self.probe_text = f"{probe(self._decoded, self.header, *point)} @ ({point[1]}, {point[0]})" if point else ""

    def leaveEvent(self, event) -> None:  # noqa: N802
        super().leaveEvent(event)
        self.probe_text = ""
        self._update_overlay()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drag_start is None:
            point = self._source_point(event.position())
            self.probe_text = (f"{probe(self._decoded, self.header, *point)} @ ({point[1]}, {point[0]})"
                               if point is not None else "")
            self._update_overlay()
            return
        delta = event.position() - self._drag_start
        role = self._drag_button
        if role in DRAWN:
            if self._drawing is not None:
                self._update_drawing(event.position(), finished=False)
        elif role == Tool.WINDOW and self._drag_window is not None:
            w = self._drag_window
            step = WL_SENSITIVITY * max(w.width, 1.0) / 256
            self.view = replace(self.view, window=Window(w.centre - delta.y() * step,
                                                         max(1.0, w.width + delta.x() * step), w.function))
            self._show()
        elif role == Tool.PAN:
            self.horizontalScrollBar().setValue(int(self.horizontalScrollBar().value() - delta.x()))
            self.verticalScrollBar().setValue(int(self.verticalScrollBar().value() - delta.y()))
            self._drag_start = event.position()
        elif role == Tool.ZOOM:
            self.zoom_by(1.01 ** (-delta.y()))
            self._drag_start = event.position()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._drawing is not None and self._decoded is not None:
            self._update_drawing(event.position(), finished=True)
        self._drawing = None
        self._drag_start = None

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fitted:  # the window (or the splitter) changed size: still the whole image, as large as fits
            self.fit()
        self._place_slider()
        self._place_edge_letters()
        self._place_notice()

    def _place_slider(self) -> None:
        viewport = self.viewport().geometry()
        self.slider.setFixedHeight(max(40, viewport.height() - 80))
        self.slider.move(viewport.right() - self.slider.width() - 2, viewport.top() + 40)

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() // 120
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15**steps)
        elif steps:
            self.go_to(self.position - steps)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        command = command_for(event)
        if command is None:
            super().keyPressEvent(event)
        else:
            run(self, command)

