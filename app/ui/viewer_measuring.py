"""The viewer's measurements: those of the series, each kept with its slice, drawn on their slice only, and the
one being drawn."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF

from app.studies.measure import shown_to_source_point
from app.ui.label_placement import place_labels
from app.ui.viewer_measurements import Measurement, OutlinedLabel, draw, measure


class MeasurementList:
    """Part of `Viewer`: the series' measurements and the one being drawn (kind, its points fixed so far)."""

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
        self._place_labels()

    def _place_labels(self) -> None:
        """The labels, none over another and each inside the view, at the current zoom. Again whenever the zoom,
        the scroll position or the view's size changes (a rotation or flip draws them again)."""
        labels = [item for item in self._measurement_items if isinstance(item, OutlinedLabel)]
        self._placed_around = self._label_obstacles()
        place_labels(labels, self.viewportTransform(), QRectF(self.viewport().rect()), self._placed_around)

    def _label_obstacles(self) -> list[QRectF]:
        """Where the overlay text, the orientation letters and the slice slider are, in viewport pixels: labels
        are kept off them."""
        widgets = [self.overlay, *self.edge_labels.values(), self.slider]
        offset = QPointF(self.viewport().pos())
        return [QRectF(w.geometry()).translated(-offset) for w in widgets
                if not w.isHidden() and (w is self.slider or w.text())]

    def _keep_labels_clear(self) -> None:
        """After the overlay text or the letters moved or changed size: placed again if they are elsewhere now."""
        if self._label_obstacles() != self._placed_around:
            self._place_labels()

    def _frame_point(self, position) -> tuple[float, float]:
        """A viewport position as a (row, column) of the stored frame, continuous."""
        scene = self.mapToScene(position.toPoint())
        return shown_to_source_point(scene.x(), scene.y(), self._decoded.shape[:2], self.view)

    def _frame_point_on_image(self, position) -> tuple[float, float]:
        """`_frame_point`, kept on the image: a shape dragged past its edge ends at the edge (what lies beyond
        has no pixels to measure, and a label there could not be panned into view)."""
        row, col = self._frame_point(position)
        rows, cols = self._decoded.shape[:2]
        return min(max(row, 0.0), float(rows)), min(max(col, 0.0), float(cols))

    def _start_drawing(self, kind: str, fixed: tuple = ()) -> None:
        self._drawing = (kind, fixed)

    def _update_drawing(self, position, finished: bool) -> None:
        """The measurement being drawn, from its fixed points and the cursor; kept when `finished`."""
        kind, fixed = self._drawing
        # A probe outside the image measures nothing (see `measure`); the other shapes end at its edge.
        points = (*fixed, self._frame_point(position) if kind == "point" else self._frame_point_on_image(position))
        self._pending = measure(kind, self.frames[self.position], points, self._decoded, self.header)
        if finished:
            if self._pending is not None and self._pending.text:
                self.measurements.append(self._pending)
            self._drawing, self._pending = None, None
            self.measurements_changed.emit()
        self._draw_measurements()
        self._update_overlay()

    def _click_angle(self, position) -> None:
        """The angle tool: the first click fixes one end, the second the vertex, the third the other end."""
        kind, fixed = self._drawing if self._drawing is not None else ("angle", ())
        point = self._frame_point(position)
        if len(fixed) == 2:
            self._update_drawing(position, finished=True)
        else:
            self._start_drawing(kind, (*fixed, point))
            self._update_drawing(position, finished=False)

    def _cancel_drawing(self) -> None:
        """A measurement left half drawn (another tool, another slice) is dropped."""
        if self._drawing is not None or self._pending is not None:
            self._drawing, self._pending = None, None
            self._draw_measurements()
            self._update_overlay()

    def _set_aside_measurements(self) -> None:
        """Another series is coming: this one's measurements wait for it to come back."""
        if self.measurements:
            self._other_series_measurements[tuple(self.frames)] = self.measurements

    def _series_measurements(self) -> None:
        """A new series: its own measurements, if it was measured before; nothing of the last one."""
        self.measurements = self._other_series_measurements.pop(tuple(self.frames), [])
        self._drawing, self._pending = None, None
        self.measurement = ""
        self._draw_measurements()
        self.measurements_changed.emit()
