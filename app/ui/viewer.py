"""The DICOM viewer: one series (or a multi-frame file) with the usual mouse and keyboard conventions.

Left-drag does what the selected tool does (window/level by default; zoom, pan, ruler, ellipse, probe), middle-drag
pans, right-drag zooms, the wheel scrolls slices (Ctrl+wheel zooms), a slider at the right edge moves through the
series; the keys are `viewer_tools.COMMANDS` (the toolbar and Help › Keyboard shortcuts are built from the same
table). Hovering shows the value under the cursor. Measurements stay with the slice they were made on.
Frames are decoded off the GUI thread through a bounded cache; window changes re-render the decoded frame.
A new series starts fitted, with no probe value or measurement from the last one; a frame that cannot be decoded
is explained in the viewer itself. Overlay text is outlined so that it reads over any pixels.
What the model is given is `model_view_png()`: the same pixels the widget shows.

The widget is put together from parts with one job each: `ImageDisplay` (decoding and showing the frame),
`WindowLevel`, `ViewTransform` (zoom, rotation, flips, the model's view), `SliceNavigation`, `MouseTools` (what
the mouse and keys do), `MeasurementList` and `OverlayText`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

from app.studies.frames import FrameCache
from app.studies.view import FrameRenderer, ViewState
from app.ui.viewer_display import ImageDisplay, _decode, make_notice, to_qimage
from app.ui.viewer_measurements import Measurement
from app.ui.viewer_measuring import MeasurementList
from app.ui.viewer_mouse import CURSORS, DRAWN, WL_SENSITIVITY, MouseTools
from app.ui.viewer_overlay import OutlinedText, OverlayText
from app.ui.viewer_slices import SliceNavigation, make_cine, make_slider
from app.ui.viewer_tools import Tool
from app.ui.viewer_transform import ViewTransform
from app.ui.viewer_window import WindowLevel

__all__ = ["CURSORS", "DRAWN", "WL_SENSITIVITY", "OutlinedText", "Viewer", "_decode", "to_qimage"]


class Viewer(ImageDisplay, WindowLevel, ViewTransform, SliceNavigation, MouseTools, MeasurementList, OverlayText,
             QGraphicsView):
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
        self._drag_window = None
        self.overlay = OutlinedText(self, "#e0e0e0", monospace=True)
        self.overlay.move(8, 8)
        self.edge_labels = {edge: OutlinedText(self, "#f0d060", bold=True)
                            for edge in ("left", "right", "top", "bottom")}
        self.notice = make_notice(self)
        self._fit_pending = False  # a new series is fitted when its first frame arrives
        self._fitted = False  # fitted, and not zoomed since: a resize fits again
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.cine = make_cine(self)
        self.tool = Tool.WINDOW  # what left-drag does
        self.probe_text = ""
        self.measurement = ""  # the latest measurement on this slice, in words, for the overlay
        self.measurements: list[Measurement] = []  # of this series, each with its slice
        self._other_series_measurements: dict[tuple, list[Measurement]] = {}  # by their series' frames
        self._drawing: tuple[str, tuple] | None = None  # a measurement being drawn: kind, its points fixed so far
        self._pending: Measurement | None = None
        self._measurement_items: list = []
        self._placed_around: list = []  # what the labels were last kept off (overlay text, letters, slider)
        self.slider = make_slider(self)

    def set_frames(self, frames: list[tuple[Path, int]]) -> None:
        """Show another series: fitted to the view when its first frame arrives, nothing kept from the last one
        but its measurements (shown again when that series is, while the app runs)."""
        self._set_aside_measurements()
        self.frames = list(frames)
        self.view = ViewState()
        self.position = 0
        self._clear_image()
        self.probe_text = ""
        self._series_measurements()
        self._set_notice("")
        self._set_slider(0, len(self.frames))
        self._place_slider()
        self._fit_pending = True
        self.overlay.setText("")
        self._place_edge_letters()
        if self.frames:
            self._request(0)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if self._fitted:  # the window (or the splitter) changed size: still the whole image, as large as fits
            self.fit()
        self._place_slider()
        self._place_edge_letters()
        self._place_notice()
        self._place_labels()  # those by an edge of the view stay inside it

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802 (Qt override)
        super().scrollContentsBy(dx, dy)
        self._place_labels()  # panned: a label by an edge of the view stays inside it
