"""What the mouse and the keys do in the viewer: left-drag follows the selected tool, middle-drag pans, right-drag
zooms, the wheel scrolls slices (Ctrl+wheel zooms), hovering shows the value under the cursor, and keys run
`viewer_tools.COMMANDS`."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QCursor

from app.studies.measure import probe
from app.studies.pixels import Window
from app.studies.view import shown_to_source
from app.ui.viewer_tools import Tool, command_for, run

WL_SENSITIVITY = 1.0  # window units per pixel of drag, times the current width / 256
# Tools that draw a measurement by dragging (the angle is drawn by clicks: `MeasurementList._click_angle`).
DRAWN = {Tool.RULER: "line", Tool.ELLIPSE: "ellipse", Tool.RECTANGLE: "rectangle", Tool.PROBE: "point"}
CURSORS = {Tool.WINDOW: Qt.CursorShape.ArrowCursor, Tool.ZOOM: Qt.CursorShape.SizeVerCursor,
           Tool.PAN: Qt.CursorShape.OpenHandCursor, Tool.RULER: Qt.CursorShape.CrossCursor,
           Tool.ANGLE: Qt.CursorShape.CrossCursor, Tool.ELLIPSE: Qt.CursorShape.CrossCursor,
           Tool.RECTANGLE: Qt.CursorShape.CrossCursor, Tool.PROBE: Qt.CursorShape.CrossCursor}


class MouseTools:
    """Part of `Viewer`: mouse, wheel and key events, dispatched to what they mean."""

    def select_tool(self, tool: Tool, toggle: bool = True) -> None:
        """What left-drag does; a tool's key pressed again (toggle) goes back to window/level."""
        if toggle and tool == self.tool:
            tool = Tool.WINDOW
        self._cancel_drawing()
        self.tool = tool
        self.viewport().setCursor(CURSORS[tool])
        self.tool_changed.emit(tool)

    @property
    def measuring(self) -> bool:
        return self.tool == Tool.RULER

    def toggle_measuring(self) -> None:
        self.select_tool(Tool.RULER)

    def _source_point(self, position) -> tuple[int, int] | None:
        """The stored frame's (row, column) under a viewport position."""
        if self._decoded is None:
            return None
        scene = self.mapToScene(position.toPoint())
        return shown_to_source(scene.x(), scene.y(), self._decoded.shape[:2], self.view)

    def _drag_role(self, button) -> Tool | None:
        """Left-drag follows the selected tool; middle always pans and right always zooms."""
        return {Qt.MouseButton.LeftButton: self.tool, Qt.MouseButton.MiddleButton: Tool.PAN,
                Qt.MouseButton.RightButton: Tool.ZOOM}.get(button)

    def _probe_text_at(self, point) -> str:
        return f"{probe(self._decoded, self.header, *point)} @ ({point[1]}, {point[0]})" if point is not None else ""

    def _update_probe(self) -> None:
        """The value under the cursor, while the cursor is over the image."""
        position = self.viewport().mapFromGlobal(QCursor.pos())
        point = self._source_point(QPointF(position)) if self.viewport().rect().contains(position) else None
        self.probe_text = self._probe_text_at(point)

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._drag_start = self._zoom_at = event.position()
        self._drag_button = self._drag_role(event.button())
        self._drag_window = self.view.window
        if self._drag_button in DRAWN and self._decoded is not None:
            kind = DRAWN[self._drag_button]
            self._start_drawing(kind, () if kind == "point" else (self._frame_point_on_image(event.position()),))
            self._update_drawing(event.position(), finished=False)
        elif self._drag_button == Tool.ANGLE and self._decoded is not None:
            self._click_angle(event.position())

    def _drawing_angle(self) -> bool:
        return self._drawing is not None and self._drawing[0] == "angle"

    def leaveEvent(self, event) -> None:  # noqa: N802
        super().leaveEvent(event)
        self.probe_text = ""
        self._update_overlay()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drawing_angle() and self._decoded is not None:  # its next arm follows the cursor
            self._update_drawing(event.position(), finished=False)
        if self._drag_start is None:
            self.probe_text = self._probe_text_at(self._source_point(event.position()))
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
        elif role == Tool.ZOOM:  # about the point where the drag started, which stays where it is
            self.zoom_by(1.01 ** (-delta.y()), at=self._zoom_at)
            self._drag_start = event.position()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._drawing is not None and not self._drawing_angle():
            if self._decoded is not None:
                self._update_drawing(event.position(), finished=True)
            self._drawing = None
        self._drag_start = None

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() // 120
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15**steps, at=event.position())
        elif steps:
            self.go_to(self.position - steps)

    def keyPressEvent(self, event) -> None:  # noqa: N802
        command = command_for(event)
        if command is None:
            super().keyPressEvent(event)
        else:
            run(self, command)
