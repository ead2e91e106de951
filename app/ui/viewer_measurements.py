"""Measurements kept with the slice they were made on: rulers, angles, ellipse and rectangle regions and probe
points, stored in the
frame's own coordinates (so rotations and flips move them with the pixels) and drawn only on their slice, each
line outlined so that it reads over bright and inverted pixels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from PySide6.QtCore import QLineF, QPointF, QRectF
from PySide6.QtGui import QColor, QFont, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsLineItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
)

from app.studies.measure import angle, describe_roi, ellipse_stats, length, probe, rectangle_stats, source_to_shown
from app.studies.view import ViewState
from app.ui.viewer_overlay import OUTLINE

COLOUR = QColor("#40e0ff")

Point = tuple[float, float]  # (row, column) of the stored frame, continuous


@dataclass(frozen=True)
class Measurement:
    kind: str  # "line" | "angle" | "ellipse" | "rectangle" | "point"
    source: tuple[Path, int]  # the slice: file and frame
    # line: its ends; angle: one end, the vertex, the other end (only the first arm while being drawn);
    # ellipse: two opposite corners of its box; rectangle: two opposite corners; point: the point
    points: tuple[Point, ...]
    text: str  # the whole result, as the overlay and the list show it
    label: str  # the short result drawn beside it

    @property
    def ellipse(self) -> tuple[Point, Point]:
        (r1, c1), (r2, c2) = self.points
        return ((r1 + r2) / 2, (c1 + c2) / 2), (abs(r2 - r1) / 2, abs(c2 - c1) / 2)


def measure(kind: str, source: tuple[Path, int], points: tuple[Point, ...], frame: np.ndarray,
            ds: Dataset) -> Measurement | None:
    """A measurement of the stored frame, or None when it has no size yet (an angle whose arms are still being
    drawn has no result yet)."""
    if kind == "angle":
        degrees = angle(ds, *points) if len(points) == 3 else None
        if degrees is not None:
            return Measurement(kind, source, points, f"angle {degrees:.1f}°", f"{degrees:.1f}°")
        return Measurement(kind, source, points, "", "") if len(set(points)) > 1 else None  # arms being drawn
    if kind == "line":
        (r1, c1), (r2, c2) = points
        if (r1, c1) == (r2, c2):
            return None
        result = length(ds, points[0], points[1])
        return Measurement(kind, source, points, f"length {result}", result)
    if kind == "ellipse":
        shape = Measurement(kind, source, points, "", "")
        centre, radii = shape.ellipse
        if min(radii) <= 0:
            return None
        text = describe_roi(ellipse_stats(frame, ds, centre, radii))
        return Measurement(kind, source, points, text, text.replace("  ", "\n"))
    if kind == "rectangle":
        (r1, c1), (r2, c2) = points
        if r1 == r2 or c1 == c2:
            return None
        text = describe_roi(rectangle_stats(frame, ds, points[0], points[1]))
        return Measurement(kind, source, points, text, text.replace("  ", "\n"))
    row, col = points[0]
    r, c = int(np.floor(row)), int(np.floor(col))
    if not (0 <= r < frame.shape[0] and 0 <= c < frame.shape[1]):
        return None
    value = probe(frame, ds, r, c)
    return Measurement(kind, source, points, f"value {value} @ ({c}, {r})", value)


class OutlinedLabel(QGraphicsSimpleTextItem):
    """Text of a constant size on screen, drawn over a dark outline, beside the point of its shape it belongs to
    (`label_placement` moves it off that point, with a leader line back to it, when another label is there)."""

    NUDGE = QPointF(3, 3)  # from the anchor to where the text starts, in screen pixels: just beside the point

    def __init__(self, text: str, anchor: QPointF):
        super().__init__(text)
        self.anchor = anchor  # scene coordinates
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        font = QFont()
        font.setBold(True)
        self.setFont(font)
        self.setZValue(3)
        self.leader = _outlined(QGraphicsLineItem)
        for line, z in zip(self.leader, (2.5, 2.6), strict=True):  # over the shapes, under every label's text
            line.setZValue(z)
            line.hide()

    def point_to(self, leader: QLineF | None) -> None:
        """Its leader line (scene coordinates, from the text to the anchor), or none."""
        for line in self.leader:
            line.setVisible(leader is not None)
            if leader is not None:
                line.setLine(leader)

    def paint(self, painter, option, widget=None) -> None:
        path = QPainterPath()
        for i, line in enumerate(self.text().split("\n")):
            path.addText(QPointF(0, painter.fontMetrics().ascent() + i * painter.fontMetrics().lineSpacing()),
                         self.font(), line)
        painter.setRenderHint(painter.RenderHint.Antialiasing)
        painter.strokePath(path, QPen(OUTLINE, 3))
        painter.fillPath(path, COLOUR)


PROBE_ARM = 5  # screen pixels from a probe's point to the end of each arm of its cross


def _outlined(make) -> list[QGraphicsItem]:
    """A shape twice: a dark outline under a one-pixel line in the measurement colour (both cosmetic: the same
    width on screen at any zoom)."""
    line = QPen(COLOUR, 0)
    outline = QPen(OUTLINE, 3)
    outline.setCosmetic(True)
    items = []
    for pen, z in ((outline, 1), (line, 2)):
        item = make()
        item.setPen(pen)
        item.setZValue(z)
        items.append(item)
    return items


def draw(scene: QGraphicsScene, m: Measurement, shape: tuple[int, int], view: ViewState) -> list[QGraphicsItem]:
    """The items that show one measurement over the shown image (scene coordinates are shown pixels)."""
    shown = [QPointF(*source_to_shown(r, c, shape, view)) for r, c in m.points]
    items: list[QGraphicsItem] = []
    if m.kind == "line":
        items += _outlined(lambda: QGraphicsLineItem(shown[0].x(), shown[0].y(), shown[1].x(), shown[1].y()))
        anchor = shown[1]
    elif m.kind == "angle":
        arms = QPainterPath(shown[0])
        for point in shown[1:]:
            arms.lineTo(point)
        items += _outlined(lambda: QGraphicsPathItem(arms))
        anchor = shown[1]  # the result beside the vertex
    elif m.kind in ("ellipse", "rectangle"):
        rect = QRectF(shown[0], shown[1]).normalized()
        shape_item = QGraphicsEllipseItem if m.kind == "ellipse" else QGraphicsRectItem
        items += _outlined(lambda: shape_item(rect))
        anchor = rect.bottomRight()
    else:
        path = QPainterPath()
        path.moveTo(-PROBE_ARM, 0)
        path.lineTo(PROBE_ARM, 0)
        path.moveTo(0, -PROBE_ARM)
        path.lineTo(0, PROBE_ARM)
        cross = _outlined(lambda: QGraphicsPathItem(path))
        for item in cross:  # in screen pixels at the point: the same size at any zoom, like its label
            item.setPos(shown[0])
            item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        items += cross
        anchor = shown[0]
    if m.label:
        label = OutlinedLabel(m.label, anchor)
        items += [label, *label.leader]
    for item in items:
        scene.addItem(item)
    return items
