"""The angle tool and the rectangle region, drawn as a user would on synthetic frames whose values are known, so
that every result is checked against its hand-derived value."""

import math

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsRectItem

from app.studies.measure import rectangle_stats
from app.ui.measurements_panel import MeasurementsPanel
from app.ui.viewer_measurements import OutlinedLabel
from app.ui.viewer_tools import Tool

SIZE = 128


def _frame(extra: int = 0) -> np.ndarray:
    """Stored value = column + 2 x row (+ extra): a rectangle's statistics follow from its rows and columns."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    return (cols + 2 * rows + extra).astype(np.int16)


@pytest.fixture
def synthetic(tmp_path):
    """Two CT slices (0.5 mm rows x 0.8 mm columns, HU = stored - 1024) and one uncalibrated MR without a rescale."""
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert (base.Rows, base.Columns) == (SIZE, SIZE)

    def save(name, pixels, **changes):
        ds = base.copy()
        ds.SOPInstanceUID = generate_uid()
        ds.RescaleSlope, ds.RescaleIntercept, ds.PixelSpacing = 1, -1024, [0.5, 0.8]
        ds.PixelData = pixels.tobytes()
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        ds.save_as(tmp_path / name)
        return tmp_path / name

    ct = [(save(f"ct{i}.dcm", _frame(100 * i), ImagePositionPatient=[0, 0, float(i)]), 0) for i in range(2)]
    mr = [(save("mr.dcm", _frame(), Modality="MR", PixelSpacing=None, RescaleSlope=None,
                RescaleIntercept=None), 0)]
    return ct, mr


def _load(qtbot, viewer, frames):
    viewer.set_frames(frames)
    qtbot.waitUntil(lambda: viewer.shown is not None and viewer._decoded is not None, timeout=5000)
    viewer.actual_size()  # one image pixel per screen pixel: a click lands on a whole pixel


def _at(viewer, x, y):
    return viewer.mapFromScene(QPointF(x, y))


def _click(viewer, x, y):
    QTest.mouseClick(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, _at(viewer, x, y))


def _drag(viewer, start, end):
    QTest.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(viewer.viewport(), end)
    QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def _shown(viewer, kind):
    return [i for i in viewer.scene().items() if isinstance(i, kind) and i.isVisible()]


def test_an_angle_takes_three_clicks_with_the_vertex_in_the_middle(qtbot, viewer, synthetic):
    ct, mr = synthetic
    panel = MeasurementsPanel(viewer)
    qtbot.addWidget(panel)
    _load(qtbot, viewer, ct)
    QTest.keyClick(viewer, Qt.Key.Key_G)
    assert viewer.tool == Tool.ANGLE

    _click(viewer, 80, 20)  # (x, y) = (column, row): one end
    QTest.mouseMove(viewer.viewport(), _at(viewer, 20, 20))
    assert len(_shown(viewer, QGraphicsPathItem)) == 2 and _shown(viewer, OutlinedLabel) == []  # the first arm
    _click(viewer, 20, 20)  # the vertex
    QTest.mouseMove(viewer.viewport(), _at(viewer, 20, 80))
    assert [label.text() for label in _shown(viewer, OutlinedLabel)] == ["90.0°"]  # shown while drawing
    assert viewer.measurements == []
    _click(viewer, 20, 80)  # the other end: a right angle whatever the pixel spacing
    assert [m.text for m in viewer.measurements] == ["angle 90.0°"]
    assert viewer.measurements[0].points == ((20.0, 80.0), (20.0, 20.0), (80.0, 20.0))

    # 45° in pixels, but the columns are 0.8 mm and the rows 0.5 mm: arms of (0, 48) and (30, 48) mm.
    for x, y in ((80, 20), (20, 20), (80, 80)):
        _click(viewer, x, y)
    expected = f"angle {math.degrees(math.atan2(30, 48)):.1f}°"
    assert expected == "angle 32.0°" and viewer.measurements[1].text == expected
    assert expected in viewer.overlay.text()
    assert [panel.list.item(i).text() for i in range(panel.list.count())] == ["Slice 1 · angle 90.0°",
                                                                              f"Slice 1 · {expected}"]
    assert sorted(label.text() for label in _shown(viewer, OutlinedLabel)) == ["32.0°", "90.0°"]

    viewer.go_to(1)  # tied to its slice
    qtbot.waitUntil(lambda: "2/2" in viewer.overlay.text(), timeout=5000)
    assert _shown(viewer, OutlinedLabel) == [] and viewer.measurements_on_slice() == []
    _click(viewer, 80, 20)  # half drawn, then another tool: dropped
    QTest.keyClick(viewer, Qt.Key.Key_W)
    assert _shown(viewer, QGraphicsPathItem) == [] and len(viewer.measurements) == 2

    panel.list.setCurrentRow(0)
    panel.delete_button.click()
    assert [m.text for m in viewer.measurements] == [expected] and panel.list.count() == 1

    _load(qtbot, viewer, mr)  # uncalibrated: the angle in pixels
    viewer.select_tool(Tool.ANGLE)
    for x, y in ((80, 20), (20, 20), (80, 80)):
        _click(viewer, x, y)
    assert [m.text for m in viewer.measurements] == ["angle 45.0°"]


def test_a_rectangle_reports_mean_sd_min_max_and_area_of_its_pixels(qtbot, viewer, synthetic):
    ct, mr = synthetic
    _load(qtbot, viewer, ct)
    QTest.keyClick(viewer, Qt.Key.Key_B)
    assert viewer.tool == Tool.RECTANGLE
    _drag(viewer, _at(viewer, 30, 20), _at(viewer, 60, 40))  # columns 30..59, rows 20..39: 600 pixel centres
    m = viewer.measurements[0]
    assert m.kind == "rectangle" and m.points == ((20.0, 30.0), (40.0, 60.0))
    assert len(_shown(viewer, QGraphicsRectItem)) == 2  # outlined
    stats = rectangle_stats(viewer._decoded, viewer.header, *m.points)
    # HU = column + 2 row - 1024; the columns and rows vary independently over the rectangle.
    assert stats.pixels == 600 and stats.unit == " HU"
    assert stats.mean == pytest.approx(44.5 + 2 * 29.5 - 1024)
    assert stats.sd == pytest.approx(math.sqrt((30**2 - 1) / 12 + 4 * (20**2 - 1) / 12))
    assert (stats.minimum, stats.maximum) == (30 + 40 - 1024, 59 + 78 - 1024)
    assert stats.area_mm2 == pytest.approx(20 * 0.5 * 30 * 0.8) and stats.area_px == 600
    assert m.text == "mean -920.5 HU  SD 14.4 HU  min -954 HU  max -887 HU  area 240.0 mm²"
    assert m.text in viewer.overlay.text()

    _drag(viewer, _at(viewer, 60, 40), _at(viewer, 30, 20))  # drawn the other way round: the same region
    assert viewer.measurements[1].text == m.text

    _load(qtbot, viewer, mr)  # no rescale, no pixel spacing: stored values and square pixels
    viewer.select_tool(Tool.RECTANGLE, toggle=False)  # still selected: not a toggle back to W/L
    _drag(viewer, _at(viewer, 30, 20), _at(viewer, 60, 40))
    assert [m.text for m in viewer.measurements] == ["mean 103.5  SD 14.4  min 70  max 137  area 600 px² "
                                                     "(uncalibrated)"]


def test_the_ellipse_reports_min_and_max_from_the_same_statistics(qtbot, viewer, synthetic):
    ct, _ = synthetic
    _load(qtbot, viewer, ct)
    viewer.select_tool(Tool.ELLIPSE)
    _drag(viewer, _at(viewer, 30, 20), _at(viewer, 60, 40))  # centre (row 30, column 45), radii 10 x 15
    m = viewer.measurements[0]
    assert m.ellipse == ((30.0, 45.0), (10.0, 15.0))
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    inside = ((rows + 0.5 - 30) / 10) ** 2 + ((cols + 0.5 - 45) / 15) ** 2 <= 1
    hu = cols + 2 * rows - 1024
    assert f"min {hu[inside].min()} HU  max {hu[inside].max()} HU" in m.text
    assert f"area {math.pi * 10 * 15 * 0.5 * 0.8:.1f} mm²" in m.text
