"""Measurement labels placed on screen so that none covers another.

A label keeps its size on screen at any zoom while the distances between the points it belongs to change, so the
labels are placed in screen pixels, in drawing order: each goes beside its anchor unless a label placed before it is
there; then it moves down, up or to a side just far enough to be clear of every placed one, the nearest such
spot, and a short leader line joins it to its anchor."""

from __future__ import annotations

from math import hypot

from PySide6.QtCore import QLineF, QPointF, QRectF
from PySide6.QtGui import QTransform

GAP = 2.0  # screen pixels kept between two labels (their outline is drawn 1.5 px outside the glyphs)
LEADER_FROM = 4.0  # screen pixels: a label moved further than this from its anchor is joined to it by a line


def free_spot(wanted: QRectF, placed: list[QRectF]) -> QRectF:
    """`wanted` when no placed rectangle intersects it, else the nearest rectangle of its size clear of them all.

    The nearest clear spot has each of its sides either where `wanted` has it or against a placed rectangle's
    side, so those are the only positions tried. The one below everything is always clear."""
    if not any(wanted.intersects(other) for other in placed):
        return wanted
    width, height = wanted.width(), wanted.height()
    xs = {wanted.left()} | {r.right() for r in placed} | {r.left() - width for r in placed}
    ys = {wanted.top()} | {r.bottom() for r in placed} | {r.top() - height for r in placed}
    # Nearest first; at equal distance below rather than above and right rather than left (reading order).
    spots = sorted(((x, y) for x in xs for y in ys),
                   key=lambda s: (hypot(s[0] - wanted.left(), s[1] - wanted.top()), s[1] < wanted.top(),
                                  s[0] < wanted.left()))
    for x, y in spots:
        spot = QRectF(x, y, width, height)
        if not any(spot.intersects(other) for other in placed):
            return spot
    raise AssertionError("unreachable: the spot below every placed rectangle is clear")


def place_labels(labels, to_screen: QTransform) -> None:
    """Places `OutlinedLabel`s (in drawing order) for a view whose scene-to-viewport transform is `to_screen`."""
    from_screen, _ = to_screen.inverted()
    placed: list[QRectF] = []
    for label in labels:
        anchor = to_screen.map(label.anchor)
        wanted = label.boundingRect().translated(anchor + label.NUDGE)
        spot = free_spot(wanted, placed)
        placed.append(spot.adjusted(-GAP, -GAP, GAP, GAP))  # the next ones keep the gap from it
        label.setPos(from_screen.map(spot.topLeft()))  # it ignores the view's scale: screen pixels from here on
        nearest = QPointF(min(max(anchor.x(), spot.left()), spot.right()),
                          min(max(anchor.y(), spot.top()), spot.bottom()))
        moved_away = spot != wanted and QLineF(nearest, anchor).length() > LEADER_FROM
        label.point_to(QLineF(from_screen.map(nearest), label.anchor) if moved_away else None)
