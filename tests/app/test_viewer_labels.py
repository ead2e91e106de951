"""Measurement labels never cover each other on screen: drawn as a user would, next to each other, then zoomed,
rotated and deleted, with every label's rectangle checked in viewport coordinates."""

from itertools import combinations
from math import hypot

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtTest import QTest

from app.studies.measure import source_to_shown
from app.ui.viewer_measurements import OutlinedLabel
from app.ui.viewer_tools import Tool


@pytest.fixture
def ct(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # 128 x 128
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "ct.dcm")
    return [(tmp_path / "ct.dcm", 0)]


def _load(qtbot, viewer, frames):
    viewer.set_frames(frames)
    qtbot.waitUntil(lambda: viewer.shown is not None and viewer._decoded is not None, timeout=5000)


def _drag(viewer, tool, start, end):
    """A measurement dragged from one point of the shown image to another, (x, y) = (column, row)."""
    viewer.select_tool(tool, toggle=False)
    start, end = viewer.mapFromScene(QPointF(*start)), viewer.mapFromScene(QPointF(*end))
    QTest.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(viewer.viewport(), end)
    QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def _labels(viewer) -> dict[str, OutlinedLabel]:
    return {i.text(): i for i in viewer.scene().items() if isinstance(i, OutlinedLabel) and i.isVisible()}


def _on_screen(viewer, label) -> QRectF:
    """Where a label is drawn, in viewport pixels."""
    return label.deviceTransform(viewer.viewportTransform()).mapRect(label.boundingRect())


def _anchor(viewer, m) -> QPointF:
    """The point of a measurement's shape its label belongs beside, in viewport pixels: a ruler's end, the
    bottom-right corner of a region's box, a probe's point."""
    shown = [QPointF(*source_to_shown(r, c, viewer._decoded.shape[:2], viewer.view)) for r, c in m.points]
    point = QRectF(shown[0], shown[1]).normalized().bottomRight() if m.kind == "ellipse" else shown[-1]
    return viewer.viewportTransform().map(point)


def _distance(point: QPointF, rect: QRectF) -> float:
    return hypot(max(rect.left() - point.x(), 0, point.x() - rect.right()),
                 max(rect.top() - point.y(), 0, point.y() - rect.bottom()))


def _assert_apart_and_near(viewer, reach: float):
    """No two labels intersect on screen, and each is within `reach` screen pixels of its anchor."""
    labels = _labels(viewer)
    rects = {text: _on_screen(viewer, label) for text, label in labels.items()}
    assert len(rects) == len(viewer.measurements_on_slice())
    for (a, ra), (b, rb) in combinations(rects.items(), 2):
        # with a pixel to spare: their outlines are drawn just outside the text
        assert not ra.adjusted(-1, -1, 1, 1).intersects(rb), f"{a!r} at {ra} covers {b!r} at {rb} ({viewer.zoom()})"
    for m in viewer.measurements_on_slice():
        assert _distance(_anchor(viewer, m), rects[m.label]) <= reach, (m.label, viewer.zoom())


def test_an_ellipse_and_a_ruler_next_to_it_keep_their_labels_apart_at_any_zoom(qtbot, viewer, ct):
    _load(qtbot, viewer, ct)
    viewer.actual_size()
    _drag(viewer, Tool.RULER, (100, 20), (66, 64))  # its length is written at its end, (66, 64)
    ruler = viewer.measurements[0]
    alone = _on_screen(viewer, _labels(viewer)[ruler.label])
    assert _distance(_anchor(viewer, ruler), alone) < 5  # just beside its end
    _drag(viewer, Tool.ELLIPSE, (30, 30), (64, 62))  # its statistics at the box's bottom-right corner, (64, 62)
    ellipse = viewer.measurements[1]
    ruler_label, ellipse_label = _labels(viewer)[ruler.label], _labels(viewer)[ellipse.label]
    reach = ellipse_label.boundingRect().height() + ruler_label.boundingRect().height() + 8  # past the other one
    _assert_apart_and_near(viewer, reach)
    # Where each would be drawn alone, they overlap: the later one has moved off its anchor.
    wanted = ellipse_label.boundingRect().translated(viewer.viewportTransform().map(QPointF(64, 62))
                                                     + OutlinedLabel.NUDGE)
    assert wanted.intersects(_on_screen(viewer, ruler_label))
    assert _on_screen(viewer, ruler_label) == alone  # the first one drawn stays where it was
    moved = _on_screen(viewer, ellipse_label)
    assert moved.topLeft() != wanted.topLeft()
    # A leader line joins the moved label to its anchor (the bottom-right corner of the ellipse's box), drawn
    # under every label.
    assert all(line.isVisible() for line in ellipse_label.leader)
    to_screen = viewer.viewportTransform()
    start, end = (to_screen.map(p) for p in (ellipse_label.leader[1].line().p1(), ellipse_label.leader[1].line().p2()))
    corner = _anchor(viewer, ellipse)
    assert hypot(end.x() - corner.x(), end.y() - corner.y()) < 1 and _distance(start, moved) < 1
    assert all(line.zValue() < label.zValue() for line in ellipse_label.leader for label in _labels(viewer).values())
    assert not any(line.isVisible() for line in ruler_label.leader)

    for factor in (0.5, 3.0, 2.0, 4.0, 0.1):  # the anchors move apart and together on screen
        viewer.zoom_by(factor)
        _assert_apart_and_near(viewer, reach)
    viewer.fit()
    _assert_apart_and_near(viewer, reach)
    viewer.zoom_by(20)  # far enough apart on screen: both beside their own anchors again
    _assert_apart_and_near(viewer, reach)
    for m in (ruler, ellipse):
        label = _labels(viewer)[m.label]
        assert _distance(_anchor(viewer, m), _on_screen(viewer, label)) < 5  # just beside it
        assert not any(line.isVisible() for line in label.leader)
    viewer.fit()
    for _ in range(4):  # rotated and flipped: drawn again, and placed again
        viewer.rotate_view(90)
        _assert_apart_and_near(viewer, reach)
    viewer.flip(horizontal=True)
    _assert_apart_and_near(viewer, reach)
    viewer.flip(horizontal=True)

    viewer.delete_measurement(ruler)  # alone again: beside its own anchor, without a leader
    label = _labels(viewer)[ellipse.label]
    assert list(_labels(viewer)) == [ellipse.label]
    wanted = label.boundingRect().translated(viewer.viewportTransform().map(QPointF(64, 62)) + OutlinedLabel.NUDGE)
    assert _on_screen(viewer, label) == wanted
    assert not any(line.isVisible() for line in label.leader)


def test_crowded_probes_are_stacked_beside_each_other_not_on_top(qtbot, viewer, ct):
    _load(qtbot, viewer, ct)
    viewer.fit()
    for i in range(6):  # six probe points a pixel or two apart: their values would be written over each other
        _drag(viewer, Tool.PROBE, (60 + i % 2, 60 + i // 2), (60 + i % 2, 60 + i // 2))
    assert len(viewer.measurements) == 6 and len(set(m.label for m in viewer.measurements)) == 6
    height = max(label.boundingRect().height() for label in _labels(viewer).values())
    reach = 4 * height  # stacked above, below and beside each other: a few lines from its point at most
    _assert_apart_and_near(viewer, reach)
    viewer.zoom_by(0.2)
    _assert_apart_and_near(viewer, reach)
    viewer.zoom_by(50)  # apart on screen: each beside its own point
    _assert_apart_and_near(viewer, 5)


def _assert_inside(viewer) -> int:
    """Every label whose point is in view is wholly in view; returns how many points are in view."""
    view = QRectF(viewer.viewport().rect())
    labels = _labels(viewer)
    in_view = [m for m in viewer.measurements_on_slice() if view.contains(_anchor(viewer, m))]
    for m in in_view:
        assert view.contains(_on_screen(viewer, labels[m.label])), (m.label, _on_screen(viewer, labels[m.label]), view)
    return len(in_view)


def _overlay_text(viewer) -> list[QRectF]:
    """The corner text and the orientation letters, in viewport pixels."""
    shown = [w for w in (viewer.overlay, *viewer.edge_labels.values()) if w.text()]
    assert viewer.overlay in shown and len(shown) == 5
    return [QRectF(w.geometry()).translated(-QPointF(viewer.viewport().pos())) for w in shown]


def test_labels_by_the_edges_of_the_view_stay_inside_it_when_fitted_zoomed_and_panned(qtbot, viewer, ct):
    _load(qtbot, viewer, ct)
    viewer.fit()
    corners = [(0.5, 0.5), (127.5, 0.5), (0.5, 127.5), (127.5, 127.5)]  # (x, y) at the image's four corners
    for x, y in corners:
        _drag(viewer, Tool.PROBE, (x, y), (x, y))
    assert len(viewer.measurements) == 4
    height = max(label.boundingRect().height() for label in _labels(viewer).values())
    # By the right edge a label goes to the point's left, by the bottom above it: still beside its point. The
    # top-left one would cover the overlay text: it goes below it, joined to its point by a leader line.
    assert _assert_inside(viewer) == 4
    overlay = _overlay_text(viewer)
    reach = overlay[0].height() + height
    _assert_apart_and_near(viewer, reach)
    for text, label in _labels(viewer).items():
        assert not any(_on_screen(viewer, label).intersects(rect) for rect in overlay), text
    assert all(line.isVisible() for line in _labels(viewer)[viewer.measurements[0].label].leader)

    viewer.zoom_by(6)  # the corners are now outside the view; those whose points are in view stay in it
    for bar, end in ((viewer.horizontalScrollBar(), "maximum"), (viewer.verticalScrollBar(), "maximum")):
        bar.setValue(getattr(bar, end)())  # panned to the image's bottom-right corner, against the view's edges
    bottom_right = viewer.measurements[3]
    anchor = _anchor(viewer, bottom_right)
    assert QRectF(viewer.viewport().rect()).contains(anchor)
    label = _on_screen(viewer, _labels(viewer)[bottom_right.label])
    assert QRectF(viewer.viewport().rect()).contains(label) and _distance(anchor, label) <= 5
    viewer.horizontalScrollBar().setValue(0)  # panned to the bottom-left corner: that label moves in with it
    bottom_left = viewer.measurements[2]
    label = _on_screen(viewer, _labels(viewer)[bottom_left.label])
    assert QRectF(viewer.viewport().rect()).contains(label) and _distance(_anchor(viewer, bottom_left), label) <= 5

    for bar in (viewer.horizontalScrollBar(), viewer.verticalScrollBar()):
        bar.setValue(bar.maximum() // 2)
    assert _assert_inside(viewer) == 0  # zoomed into the middle: the points are out of view, and so are their labels
    viewer.resize(viewer.width() - 60, viewer.height() - 40)  # a smaller view, fitted: all in view again
    viewer.fit()
    assert _assert_inside(viewer) == 4
    _assert_apart_and_near(viewer, reach)
