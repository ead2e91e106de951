"""Measurement labels placed on screen so that none covers another.

A label keeps its size on screen at any zoom while the distances between the points it belongs to change, so the
labels are placed in screen pixels, in drawing order: each goes beside its anchor unless a label placed before it is
there; then it moves down, up or to a side just far enough to be clear of every placed one, the nearest such
spot, and a short leader line joins it to its anchor. A label whose anchor is in view stays wholly in view: by an
edge it goes on the anchor's other side (left of a point by the right edge, above one by the bottom)."""

from __future__ import annotations

from math import hypot

from PySide6.QtCore import QLineF, QPointF, QRectF
from PySide6.QtGui import QTransform

GAP = 2.0  # screen pixels kept between two labels (their outline is drawn 1.5 px outside the glyphs)
LEADER_FROM = 4.0  # screen pixels: a label moved further than this from its anchor is joined to it by a line


def free_spot(wanted: QRectF, placed: list[QRectF], bounds: QRectF | None = None) -> QRectF:
    """`wanted` when no placed rectangle intersects it, else the nearest rectangle of its size clear of them all
    (and inside `bounds`, when given).

    The nearest clear spot has each of its sides either where `wanted` has it, against a placed rectangle's side or
    against an edge of `bounds`, so those are the only positions tried. Without bounds the one below everything is
    always clear; within bounds a view crowded full of labels may have no clear spot: then `wanted` it is."""
    if not any(wanted.intersects(other) for other in placed):
        return wanted
    width, height = wanted.width(), wanted.height()
    xs = {wanted.left()} | {r.right() for r in placed} | {r.left() - width for r in placed}
    ys = {wanted.top()} | {r.bottom() for r in placed} | {r.top() - height for r in placed}
    if bounds is not None:
        xs = {x for x in xs | {bounds.left(), bounds.right() - width}
              if _within(x, width, bounds.left(), bounds.right())}
        ys = {y for y in ys | {bounds.top(), bounds.bottom() - height}
              if _within(y, height, bounds.top(), bounds.bottom())}
    # Nearest first; at equal distance below rather than above and right rather than left (reading order).
    spots = sorted(((x, y) for x in xs for y in ys),
                   key=lambda s: (hypot(s[0] - wanted.left(), s[1] - wanted.top()), s[1] < wanted.top(),
                                  s[0] < wanted.left()))
    for x, y in spots:
        spot = QRectF(x, y, width, height)
        if not any(spot.intersects(other) for other in placed):
            return spot
    if bounds is None:
        raise AssertionError("unreachable: the spot below every placed rectangle is clear")
    return wanted


def _within(start: float, length: float, low: float, high: float) -> bool:
    return start >= low and start + length <= high


def beside(anchor: QPointF, size: QRectF, nudge: QPointF, bounds: QRectF | None) -> QRectF:
    """Where a label of `size` goes beside `anchor`: right of and below it, or on its other side where that would
    cross an edge of `bounds` (the view), then pushed inside; a label of an anchor out of view stays by it."""
    spot = size.translated(anchor + nudge)
    if bounds is None or not bounds.contains(anchor):
        return spot
    if spot.right() > bounds.right():
        spot.moveRight(anchor.x() - nudge.x())
    if spot.bottom() > bounds.bottom():
        spot.moveBottom(anchor.y() - nudge.y())
    spot.moveLeft(min(max(spot.left(), bounds.left()), bounds.right() - spot.width()))
    spot.moveTop(min(max(spot.top(), bounds.top()), bounds.bottom() - spot.height()))
    return spot


def place_labels(labels, to_screen: QTransform, viewport: QRectF | None = None,
                 obstacles: list[QRectF] = ()) -> None:
    """Places `OutlinedLabel`s (in drawing order) for a view whose scene-to-viewport transform is `to_screen`,
    inside `viewport` (its rectangle in viewport pixels) where their anchors are in it, and off `obstacles` (other
    text over the view, in viewport pixels)."""
    from_screen, _ = to_screen.inverted()
    placed = [r.adjusted(-GAP, -GAP, GAP, GAP) for r in obstacles]
    for label in labels:
        anchor = to_screen.map(label.anchor)
        wanted = beside(anchor, label.boundingRect(), label.NUDGE, viewport)
        in_view = viewport is not None and viewport.contains(anchor)
        spot = free_spot(wanted, placed, viewport if in_view else None)
        placed.append(spot.adjusted(-GAP, -GAP, GAP, GAP))  # the next ones keep the gap from it
        label.setPos(from_screen.map(spot.topLeft()))  # it ignores the view's scale: screen pixels from here on
        nearest = QPointF(min(max(anchor.x(), spot.left()), spot.right()),
                          min(max(anchor.y(), spot.top()), spot.bottom()))
        moved_away = spot != wanted and QLineF(nearest, anchor).length() > LEADER_FROM
        label.point_to(QLineF(from_screen.map(nearest), label.anchor) if moved_away else None)
