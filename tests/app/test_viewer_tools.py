"""The viewer's toolbar, hotkeys, slice slider and measurements, driven as a user would, offscreen."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QKeySequence, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QGraphicsEllipseItem, QGraphicsLineItem, QGraphicsPathItem

from app.studies.measure import describe_roi, ellipse_stats
from app.studies.pixels import Window
from app.ui.measurements_panel import MeasurementsPanel
from app.ui.viewer_measurements import PROBE_ARM, OutlinedLabel
from app.ui.viewer_tools import COMMANDS, Tool, build_toolbar
from tests.support.menus import on_next_menu


@pytest.fixture
def ct_series(tmp_path):
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    paths = []
    for i in range(5):
        ds = base.copy()
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [0, 0, float(i)]
        ds.SliceLocation = float(i) * 2.5
        ds.PixelData = (ds.pixel_array + i * 50).astype(ds.pixel_array.dtype).tobytes()
        path = tmp_path / f"s{i}.dcm"
        ds.save_as(path)
        paths.append(path)
    return [(p, 0) for p in paths]


def _load(qtbot, viewer, frames, shape=None):
    viewer.set_frames(frames)
    qtbot.waitUntil(lambda: viewer.shown is not None and (shape is None or viewer.shown.shape[:2] == shape),
                    timeout=5000)


def _drag(viewer, start, end, button=Qt.MouseButton.LeftButton):
    QTest.mousePress(viewer.viewport(), button, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(viewer.viewport(), (start + end) / 2)
    QTest.mouseMove(viewer.viewport(), end)
    QTest.mouseRelease(viewer.viewport(), button, Qt.KeyboardModifier.NoModifier, end)


def _at(viewer, x, y):
    """The viewport position of a point of the shown image."""
    return viewer.mapFromScene(QPointF(x, y))


def _visible(viewer, kind):
    return [i for i in viewer.scene().items() if isinstance(i, kind) and i.isVisible()]


def _go_to_slice(qtbot, viewer, position):
    viewer.go_to(position)
    qtbot.waitUntil(lambda: f"{position + 1}/5" in viewer.overlay.text() and viewer.shown is not None, timeout=5000)


def test_the_toolbar_tool_decides_what_left_drag_does(qtbot, viewer, ct_series):
    bar = build_toolbar(viewer)
    qtbot.addWidget(bar)
    _load(qtbot, viewer, ct_series)
    assert viewer.tool == Tool.WINDOW and bar.tool_actions[Tool.WINDOW].isChecked()
    centre = viewer.viewport().rect().center()
    window, zoom = viewer.view.window, viewer.zoom()

    bar.tool_actions[Tool.ZOOM].trigger()
    _drag(viewer, centre, centre + QPoint(0, -60))  # up: zoom in
    assert viewer.zoom() > zoom * 1.3 and viewer.view.window == window

    bar.tool_actions[Tool.PAN].trigger()
    before = viewer.mapToScene(centre)
    _drag(viewer, centre, centre - QPoint(40, 30))
    after = viewer.mapToScene(centre)
    assert after.x() > before.x() and after.y() > before.y() and viewer.view.window == window  # dragged along

    bar.tool_actions[Tool.WINDOW].trigger()
    _drag(viewer, centre, centre + QPoint(64, 0))
    assert viewer.view.window.width > window.width

    QTest.keyClick(viewer, Qt.Key.Key_M)  # the key selects the tool and the toolbar follows
    assert viewer.tool == Tool.RULER and bar.tool_actions[Tool.RULER].isChecked()
    QTest.keyClick(viewer, Qt.Key.Key_M)  # pressed again: back to window/level
    assert viewer.tool == Tool.WINDOW and bar.tool_actions[Tool.WINDOW].isChecked()


def test_middle_and_right_drag_keep_their_meaning_whatever_the_tool(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.select_tool(Tool.RULER)
    centre = viewer.viewport().rect().center()
    zoom = viewer.zoom()
    _drag(viewer, centre, centre + QPoint(0, -50), Qt.MouseButton.RightButton)
    assert viewer.zoom() > zoom and viewer.measurements == []


def test_the_toolbar_lists_every_tool_with_its_shortcut(qtbot, viewer):
    bar = build_toolbar(viewer)
    qtbot.addWidget(bar)
    tips = {a.text(): a.toolTip() for a in bar.actions() if a.text()}
    for label in ("W/L", "Zoom", "Pan", "Ruler", "Ellipse", "Probe", "Rotate", "Flip H", "Flip V", "Invert",
                  "Cine", "Fit", "Reset"):
        command = next(c for c in COMMANDS if c.label == label)
        assert tips[label].endswith(f"({command.keys[0]})")
    viewer.set_frames([(Path(get_testdata_file("examples_ybr_color.dcm")), i) for i in range(30)])
    qtbot.waitUntil(lambda: viewer.shown is not None, timeout=5000)
    cine = next(a for a in bar.actions() if a.text() == "Cine")
    cine.trigger()
    assert viewer.cine.isActive() and cine.isChecked()
    QTest.keyClick(viewer, Qt.Key.Key_Space)
    assert not viewer.cine.isActive() and not cine.isChecked()


def test_preset_hotkeys_apply_to_hounsfield_data_only(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    QTest.keyClick(viewer, Qt.Key.Key_3)
    assert viewer.view.window == Window(-600, 1500)  # lung
    QTest.keyClick(viewer, Qt.Key.Key_4)
    assert viewer.view.window == Window(500, 2000)  # bone
    QTest.keyClick(viewer, Qt.Key.Key_0)
    assert viewer.view.window == Window(40, 400)  # the file's own (here: the CT default)
    messages = []
    viewer.message.connect(messages.append)
    _load(qtbot, viewer, [(Path(get_testdata_file("MR_small.dcm")), 0)], (64, 64))
    window = viewer.view.window
    QTest.keyClick(viewer, Qt.Key.Key_3)
    assert viewer.view.window == window and "Hounsfield" in messages[-1] and "MR" in messages[-1]


def test_the_slice_slider_and_the_overlay_follow_the_series(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    assert viewer.slider.isVisible() and viewer.slider.maximum() == 4
    assert viewer.viewport().geometry().contains(viewer.slider.geometry())
    assert "loc 0.0 mm  thick 5.0 mm" in viewer.overlay.text()
    viewer.slider.setValue(3)
    qtbot.waitUntil(lambda: "4/5" in viewer.overlay.text() and "loc 7.5 mm" in viewer.overlay.text(), timeout=5000)
    QTest.keyClick(viewer, Qt.Key.Key_Up)
    assert viewer.slider.value() == 2
    _load(qtbot, viewer, [(Path(get_testdata_file("US1_UNCR.dcm")), 0)], (480, 640))
    assert not viewer.slider.isVisible()  # one image: nothing to slide through
    assert "loc " not in viewer.overlay.text() and "thick" not in viewer.overlay.text()  # not in this header


def test_rulers_stay_with_their_slice_and_can_be_deleted(qtbot, viewer, ct_series):
    panel = MeasurementsPanel(viewer)
    qtbot.addWidget(panel)
    panel.show()
    _load(qtbot, viewer, ct_series)
    viewer.actual_size()
    QTest.keyClick(viewer, Qt.Key.Key_M)
    _drag(viewer, _at(viewer, 10, 20), _at(viewer, 110, 20))  # 100 pixels on slice 1
    _drag(viewer, _at(viewer, 10, 40), _at(viewer, 10, 70))  # 30 pixels on slice 1
    _go_to_slice(qtbot, viewer, 2)
    assert _visible(viewer, QGraphicsLineItem) == []  # slice 3 has none
    _drag(viewer, _at(viewer, 20, 20), _at(viewer, 60, 20))  # 40 pixels on slice 3
    spacing = float(viewer.header.PixelSpacing[1])
    assert len(viewer.measurements) == 3 and len(_visible(viewer, QGraphicsLineItem)) == 2  # one ruler, outlined
    assert viewer.measurements[2].text == f"length {40 * spacing:.1f} mm"
    texts = [panel.list.item(i).text() for i in range(panel.list.count())]
    assert texts == [f"Slice 1 · length {100 * spacing:.1f} mm", f"Slice 1 · length {30 * spacing:.1f} mm",
                     f"Slice 3 · length {40 * spacing:.1f} mm"]
    assert [panel.list.item(i).font().bold() for i in range(3)] == [False, False, True]  # the slice on show

    panel.list.itemClicked.emit(panel.list.item(0))  # back to slice 1 from the list
    qtbot.waitUntil(lambda: "1/5" in viewer.overlay.text(), timeout=5000)
    assert len(_visible(viewer, QGraphicsLineItem)) == 4  # its two rulers
    QTest.keyClick(viewer, Qt.Key.Key_R)  # rotated: the rulers turn with the pixels
    ends = sorted((round(i.line().x1(), 1), round(i.line().y1(), 1)) for i in _visible(viewer, QGraphicsLineItem))
    height = viewer._decoded.shape[0]
    assert (height - 20, 10) in ends and (height - 40, 10) in ends  # (row, col) -> (x, y) = (H - row, col)

    panel.list.setCurrentRow(0)
    panel.delete_button.click()
    assert [m.text for m in viewer.measurements] == [f"length {30 * spacing:.1f} mm", f"length {40 * spacing:.1f} mm"]
    assert len(_visible(viewer, QGraphicsLineItem)) == 2 and panel.list.count() == 2
    QTest.keyClick(viewer, Qt.Key.Key_Delete)  # the last one on this slice
    assert len(viewer.measurements) == 1 and _visible(viewer, QGraphicsLineItem) == []
    panel.clear_button.click()
    assert viewer.measurements == [] and panel.empty.isVisible() and not panel.list.isVisible()


def test_the_measurement_list_has_a_context_menu_from_the_mouse_and_the_keyboard(qtbot, viewer, ct_series):
    panel = MeasurementsPanel(viewer)
    qtbot.addWidget(panel)
    panel.show()
    _load(qtbot, viewer, ct_series)
    viewer.actual_size()
    QTest.keyClick(viewer, Qt.Key.Key_M)
    for position, length in ((0, 100), (2, 30), (4, 60)):  # on slices 1, 3 and 5
        _go_to_slice(qtbot, viewer, position)
        _drag(viewer, _at(viewer, 10, 20), _at(viewer, 10 + length, 20))
    spacing = float(viewer.header.PixelSpacing[1])
    first, second, third = viewer.measurements
    shown = []

    def take(action_text):
        def act(menu):
            actions = [a for a in menu.actions() if a.text()]
            shown.append(([a.text() for a in actions], menu.geometry().top()))
            chosen = next(a for a in actions if a.text().split("\t")[0] == action_text)
            menu.close()
            chosen.trigger()
        return act

    def focus_list():  # the keyboard on the list (after a menu the offscreen platform gives it to no one)
        panel.activateWindow()
        panel.list.setFocus()
        qtbot.waitUntil(panel.list.hasFocus)

    focus_list()
    panel.list.setCurrentRow(0)
    QTest.keyClick(panel.list, Qt.Key.Key_Down)  # the second measurement, on slice 3
    on_next_menu(take("Go to its slice"))
    QTest.keyClick(panel.list, Qt.Key.Key_Menu)
    assert shown[-1][0] == ["Go to its slice", f"Delete\t{QKeySequence(QKeySequence.StandardKey.Delete).toString()}",
                            "Clear all"]
    row = panel.list.visualItemRect(panel.list.item(1))  # the menu drops from that row
    assert shown[-1][1] == panel.list.viewport().mapToGlobal(row.bottomLeft()).y()
    qtbot.waitUntil(lambda: "3/5" in viewer.overlay.text(), timeout=5000)

    focus_list()
    on_next_menu(take("Delete"))
    QTest.keyClick(panel.list, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    assert viewer.measurements == [first, third]
    assert [panel.list.item(i).text() for i in range(panel.list.count())] == \
        [f"Slice 1 · length {100 * spacing:.1f} mm", f"Slice 5 · length {60 * spacing:.1f} mm"]

    at = panel.list.visualItemRect(panel.list.item(1)).center()  # the mouse: the measurement under the pointer
    on_next_menu(take("Go to its slice"))
    panel.list.customContextMenuRequested.emit(at)
    qtbot.waitUntil(lambda: "5/5" in viewer.overlay.text(), timeout=5000)
    assert panel.list.currentRow() == 1

    focus_list()
    QTest.keyClick(panel.list, Qt.Key.Key_Delete)  # Delete removes the selected one
    assert viewer.measurements == [first] and panel.list.currentRow() == 0  # the next Delete takes the next one
    on_next_menu(take("Clear all"))
    focus_list()
    QTest.keyClick(panel.list, Qt.Key.Key_Menu)
    assert viewer.measurements == [] and panel.empty.isVisible()


def test_an_ellipse_reports_the_statistics_of_its_pixels(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.actual_size()
    QTest.keyClick(viewer, Qt.Key.Key_E)
    _drag(viewer, _at(viewer, 40, 30), _at(viewer, 80, 60))
    assert len(viewer.measurements) == 1 and len(_visible(viewer, QGraphicsEllipseItem)) == 2
    m = viewer.measurements[0]
    centre, radii = m.ellipse
    assert abs(centre[0] - 45) <= 1 and abs(centre[1] - 60) <= 1 and abs(radii[0] - 15) <= 1
    ds = viewer.header
    stats = ellipse_stats(viewer._decoded, ds, centre, radii)
    assert m.text == describe_roi(stats) and " HU" in m.text and m.text in viewer.overlay.text()
    mask_values = viewer._decoded.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    rows, cols = np.mgrid[0:128, 0:128]
    inside = ((rows + 0.5 - centre[0]) / radii[0]) ** 2 + ((cols + 0.5 - centre[1]) / radii[1]) ** 2 <= 1
    assert stats.mean == pytest.approx(mask_values[inside].mean()) and stats.pixels == inside.sum()


def test_the_probe_tool_marks_a_value_on_its_slice(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.actual_size()
    QTest.keyClick(viewer, Qt.Key.Key_D)
    point = _at(viewer, 30.5, 40.5)
    QTest.mouseClick(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, point)
    ds = viewer.header
    row, col = viewer.measurements[0].points[0]
    r, c = int(row), int(col)
    assert abs(r - 40) <= 1 and abs(c - 30) <= 1
    value = viewer._decoded[r, c] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert viewer.measurements[0].text == f"value {value:.0f} HU @ ({c}, {r})"
    _go_to_slice(qtbot, viewer, 1)
    assert viewer.measurements_on_slice() == [] and "value " not in viewer.overlay.text()


def test_the_probe_reads_the_slice_on_show_and_goes_when_the_cursor_leaves(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.actual_size()
    spot = _at(viewer, 30.5, 40.5)
    QTest.mouseMove(viewer.viewport(), spot)
    qtbot.waitUntil(lambda: " HU @ (" in viewer.probe_text, timeout=2000)
    first = viewer.probe_text
    QTest.keyClick(viewer, Qt.Key.Key_Down)  # the cursor stays; slice 2 is 50 HU brighter (see ct_series)
    qtbot.waitUntil(lambda: "2/5" in viewer.overlay.text(), timeout=5000)
    value, where = first.split(" HU @ ")
    assert viewer.probe_text == f"{int(value) + 50} HU @ {where}"
    QApplication.sendEvent(viewer, QEvent(QEvent.Type.Leave))
    assert viewer.probe_text == "" and " HU @ " not in viewer.overlay.text()


def test_the_number_keys_are_the_ct_presets_the_readme_names(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    named = {"2": "soft tissue", "3": "lung", "4": "bone", "5": "brain", "6": "subdural", "7": "stroke",
             "8": "liver", "9": "mediastinum"}
    windows = {"soft tissue": (40, 400), "lung": (-600, 1500), "bone": (500, 2000), "brain": (40, 80),
               "subdural": (75, 200), "stroke": (40, 40), "liver": (90, 150), "mediastinum": (50, 350)}
    for key, name in named.items():
        QTest.keyClick(viewer, QKeySequence(key)[0].key())
        assert viewer.view.window == Window(*windows[name]), (key, name)
        assert f"W {windows[name][1]}  L {windows[name][0]}" in viewer.overlay.text(), key


def test_esc_resets_window_zoom_rotation_flips_and_inversion(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    fitted = viewer.zoom()
    QTest.keyClick(viewer, Qt.Key.Key_3)  # lung
    for key in (Qt.Key.Key_R, Qt.Key.Key_H, Qt.Key.Key_V, Qt.Key.Key_I):
        QTest.keyClick(viewer, key)
    QTest.keyClick(viewer, Qt.Key.Key_1)  # actual size
    viewer.zoom_by(3)
    view = viewer.view
    assert (view.window, view.rotation, view.flip_horizontal, view.flip_vertical, view.invert) == \
        (Window(-600, 1500), 90, True, True, True)
    assert viewer.zoom() != pytest.approx(fitted)
    QTest.keyClick(viewer, Qt.Key.Key_Escape)
    view = viewer.view
    assert (view.window, view.rotation, view.flip_horizontal, view.flip_vertical, view.invert) == \
        (Window(40, 400), 0, False, False, False)  # the file's own window (here the CT default), as opened
    assert viewer.zoom() == pytest.approx(fitted)  # fitted again


def test_page_keys_move_ten_slices_and_middle_drag_pans_whatever_the_tool(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    QTest.keyClick(viewer, Qt.Key.Key_End)
    QTest.keyClick(viewer, Qt.Key.Key_Up)
    assert viewer.position == 3
    QTest.keyClick(viewer, Qt.Key.Key_PageUp)  # ten back: clamped to the first of five
    assert viewer.position == 0
    QTest.keyClick(viewer, Qt.Key.Key_PageDown)
    assert viewer.position == 4

    viewer.zoom_by(4)  # larger than the view: something to pan
    for tool in (Tool.RULER, Tool.ELLIPSE, Tool.ZOOM):
        viewer.select_tool(tool, toggle=False)
        centre = viewer.viewport().rect().center()
        before, zoom, window = viewer.mapToScene(centre), viewer.zoom(), viewer.view.window
        _drag(viewer, centre, centre - QPoint(40, 30), Qt.MouseButton.MiddleButton)
        after = viewer.mapToScene(centre)
        assert after.x() > before.x() and after.y() > before.y(), tool
        assert viewer.zoom() == zoom and viewer.view.window == window and viewer.measurements == [], tool


def test_zooming_keeps_the_point_it_started_from_in_place(qtbot, viewer, ct_series):
    """A right-drag zooms about where it started and Ctrl+wheel about the pointer, as viewers do: the image point
    there stays there."""
    _load(qtbot, viewer, ct_series)
    viewer.zoom_by(4)  # larger than the view: there is room to keep any point in place
    start = QPoint(150, 200)
    under = viewer.mapToScene(start)
    _drag(viewer, start, start + QPoint(0, -60), Qt.MouseButton.RightButton)
    assert viewer.zoom() > 4
    after = viewer.mapFromScene(under)
    assert abs(after.x() - start.x()) <= 1 and abs(after.y() - start.y()) <= 1, (after, start)

    zoom, point = viewer.zoom(), QPoint(420, 380)
    under = viewer.mapToScene(point)
    QApplication.sendEvent(viewer.viewport(), QWheelEvent(
        QPointF(point), viewer.viewport().mapToGlobal(QPointF(point)), QPoint(), QPoint(0, 120),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase, False))
    assert viewer.zoom() > zoom
    after = viewer.mapFromScene(under)
    assert abs(after.x() - point.x()) <= 1 and abs(after.y() - point.y()) <= 1, (after, point)


def test_a_shape_dragged_past_the_image_ends_at_its_edge_and_keeps_its_label_in_reach(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.resize(700, 500)  # wider than the fitted image: room beside it
    viewer.fit()
    viewer.select_tool(Tool.RECTANGLE, toggle=False)
    right_of_image = _at(viewer, 140, 150)  # past the 128 x 128 image's right and bottom edges
    _drag(viewer, _at(viewer, 100, 100), right_of_image)
    (rectangle,) = viewer.measurements
    assert [tuple(round(v) for v in p) for p in rectangle.points] == [(100, 100), (128, 128)]
    viewer.zoom_by(8)
    for bar in (viewer.horizontalScrollBar(), viewer.verticalScrollBar()):
        bar.setValue(bar.maximum())  # as far as panning goes: the image's bottom-right corner
    (label,) = [i for i in _visible(viewer, OutlinedLabel)]
    on_screen = label.deviceTransform(viewer.viewportTransform()).mapRect(label.boundingRect())
    assert QRectF(viewer.viewport().rect()).contains(on_screen)

    viewer.select_tool(Tool.PROBE, toggle=False)  # a probe beside the image measures nothing
    viewer.fit()
    QTest.mouseClick(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     _at(viewer, 140, 60))
    assert len(viewer.measurements) == 1


def test_a_probe_cross_keeps_its_size_on_screen_at_any_zoom(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.fit()
    QTest.keyClick(viewer, Qt.Key.Key_D)
    QTest.mouseClick(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     _at(viewer, 64.5, 64.5))

    def cross_width() -> float:
        crosses = [i for i in _visible(viewer, QGraphicsPathItem)]
        assert crosses
        return max(i.deviceTransform(viewer.viewportTransform()).mapRect(i.boundingRect()).width() for i in crosses)

    fitted = cross_width()
    assert fitted <= 2 * PROBE_ARM + 4  # its arms and outline, in screen pixels
    viewer.zoom_by(10)
    assert cross_width() == pytest.approx(fitted, abs=1)


def test_measurements_come_back_with_their_series(qtbot, viewer, ct_series, tmp_path):
    """Another series shows none of this one's measurements; this one's are there again when it comes back
    (while the app runs), each on its own slice."""
    _load(qtbot, viewer, ct_series)
    viewer.actual_size()
    viewer.select_tool(Tool.RULER, toggle=False)
    _go_to_slice(qtbot, viewer, 2)
    _drag(viewer, _at(viewer, 10, 10), _at(viewer, 50, 10))
    (ruler,) = viewer.measurements
    other = [(Path(get_testdata_file("MR_small.dcm")), 0)]
    _load(qtbot, viewer, other, shape=(64, 64))
    assert viewer.measurements == [] and not _visible(viewer, QGraphicsLineItem)
    _load(qtbot, viewer, ct_series)
    assert viewer.measurements == [ruler] and viewer.measurements_on_slice() == []  # on slice 3, not 1
    _go_to_slice(qtbot, viewer, 2)
    assert viewer.measurements_on_slice() == [ruler] and _visible(viewer, QGraphicsLineItem)
