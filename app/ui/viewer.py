"""The DICOM viewer: one series (or a multi-frame file) with the usual mouse and keyboard conventions.

Left-drag window/level, middle-drag pan, right-drag zoom, wheel scroll slices (Ctrl+wheel zoom); keys:
Up/Down/PageUp/PageDown/Home/End slices, R rotate, H/V flip, I invert, F fit, 1 actual size, Esc reset,
M measure (left-drag draws a ruler, in mm from Pixel Spacing), Space cine. Hovering shows the value under
the cursor.
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
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsLineItem, QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QLabel

from app.studies.frames import FrameCache, PixelDecodeError
from app.studies.measure import length, probe
from app.studies.orientation import edge_letters
from app.studies.pixels import Window, default_window, is_colour, is_hounsfield, modality_values, render
from app.studies.presets import CT_PRESETS
from app.studies.view import FrameRenderer, ViewState, orient, shown_to_source, to_png
from app.ui.background import run_in_background

WL_SENSITIVITY = 1.0  # window units per pixel of drag, times the current width / 256
OUTLINE = QColor(0, 0, 0, 230)  # around overlay text and the ruler: readable over white and inverted pixels


def to_qimage(pixels: np.ndarray) -> QImage:
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    if pixels.ndim == 2:
        image = QImage(pixels.data, width, height, pixels.strides[0], QImage.Format.Format_Grayscale8)
    else:
        image = QImage(pixels.data, width, height, pixels.strides[0], QImage.Format.Format_RGB888)
    return image.copy()  # own the memory


class OutlinedText(QLabel):
    """Plain overlay text drawn in its colour over a dark one-pixel outline, as viewers draw their annotations."""

    def __init__(self, parent, colour: str, bold: bool = False, monospace: bool = False):
        super().__init__(parent)
        self.colour = QColor(colour)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setMargin(1)  # room for the outline
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        font = self.font()
        if monospace:
            font.setFamily("monospace")
            font.setStyleHint(QFont.StyleHint.Monospace)
        font.setBold(bold)
        self.setFont(font)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.setFont(self.font())
        rect = self.contentsRect().adjusted(1, 1, -1, -1)
        flags = int(self.alignment())
        painter.setPen(OUTLINE)
        for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
            painter.drawText(rect.translated(dx, dy), flags, self.text())
        painter.setPen(self.colour)
        painter.drawText(rect, flags, self.text())


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
        self.measuring = False  # M toggles: left-drag measures instead of windowing
        self.probe_text = ""
        self.measurement = ""
        self._ruler = QGraphicsLineItem()
        self._ruler.setPen(QPen(QColor("#40e0ff"), 0))
        self._ruler.setZValue(2)
        self._ruler_outline = QGraphicsLineItem()  # a dark line under it: visible over bright pixels too
        outline_pen = QPen(OUTLINE, 3)
        outline_pen.setCosmetic(True)
        self._ruler_outline.setPen(outline_pen)
        self._ruler_outline.setZValue(1)
        for item in (self._ruler, self._ruler_outline):
            item.hide()
            self.scene().addItem(item)

    # --- content -------------------------------------------------------------------------------
    def set_frames(self, frames: list[tuple[Path, int]]) -> None:
        """Show another series: fitted to the view when its first frame arrives, nothing kept from the last one."""
        self.frames = list(frames)
        self.view = ViewState()
        self.position = 0
        self._clear_image()
        self.probe_text = self.measurement = ""
        self._show_ruler(False)
        self._set_notice("")
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
            return
        if len(self.frames) > 1:
            rate = fps or float(self.header.get("RecommendedDisplayFrameRate", 0) or self.header.get("CineRate", 0)
                                or 15)
            self.cine.start(int(1000 / max(1.0, rate)))

    def toggle_measuring(self) -> None:
        self.measuring = not self.measuring
        if not self.measuring:
            self._show_ruler(False)
            self.measurement = ""
            self._update_overlay()

    def _show_ruler(self, visible: bool) -> None:
        for item in (self._ruler, self._ruler_outline):
            item.setVisible(visible)

    def _set_ruler(self, x1: float, y1: float, x2: float, y2: float) -> None:
        for item in (self._ruler, self._ruler_outline):
            item.setLine(x1, y1, x2, y2)

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
        if self._decoded is not None and self.frames and self.header is not None:
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
            self._set_ruler(start.x(), start.y(), start.x(), start.y())
            self._show_ruler(True)

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
            self._set_ruler(line.x1(), line.y1(), end.x(), end.y())
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
            self.zoom_by(1.01 ** (-delta.y()))
            self._drag_start = event.position()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self._drag_start = None

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fitted:  # the window (or the splitter) changed size: still the whole image, as large as fits
            self.fit()
        self._place_edge_letters()
        self._place_notice()

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() // 120
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15**steps)
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
