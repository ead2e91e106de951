"""The main window around the viewer: the angle and rectangle tools on the toolbar and in Help › Keyboard
shortcuts, recent studies opened with one click, and a status line on which nothing old lingers."""

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app import INTENDED_USE
from app.ui.main import MainWindow
from app.ui.status_line import MessageLine
from app.ui.viewer_tools import Tool


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def _png(tmp_path, name, size=(60, 90)):
    path = tmp_path / name
    Image.fromarray(np.zeros(size, dtype=np.uint8)).save(path)
    return path


def test_angle_and_rectangle_are_on_the_toolbar_and_in_the_shortcuts(window, qtbot):
    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    bar = window.viewer_toolbar
    for tool, key, words in ((Tool.ANGLE, "G", "angle"), (Tool.RECTANGLE, "B", "rectangle")):
        action = bar.tool_actions[tool]
        assert action.text() == tool.value and action.toolTip().endswith(f"({key})") and words in action.toolTip()
        action.trigger()
        assert window.series_viewer.tool == tool
    QTest.keyClick(window.series_viewer, Qt.Key.Key_G)  # the key selects it; the toolbar follows
    assert window.series_viewer.tool == Tool.ANGLE and bar.tool_actions[Tool.ANGLE].isChecked()
    dialog = window.show_shortcuts()
    qtbot.addWidget(dialog)
    viewer_rows = {keys: does for group, keys, does in dialog.rows() if group.startswith("Viewer")}
    assert "angle" in viewer_rows["G"] and "vertex" in viewer_rows["G"]
    assert "rectangle" in viewer_rows["B"] and "min, max" in viewer_rows["B"]


def test_one_click_on_a_recent_study_opens_it(window, qtbot, tmp_path):
    first, second = _png(tmp_path, "first.png"), _png(tmp_path, "second.png", (40, 70))
    window.settings.recent = [str(first), str(second)]
    window.browser.set_recent(window.settings.recent)
    opened = []
    window.browser.open_requested.connect(opened.append)
    recent = window.browser.recent
    QTest.mouseClick(recent.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     recent.visualItemRect(recent.item(1)).center())
    qtbot.waitUntil(lambda: window.current_path == str(second) and window.series_viewer.shown is not None,
                    timeout=5000)
    assert window.series_viewer.shown.shape[:2] == (40, 70) and opened == [str(second)]

    # A double-click, as users of other lists do: opened once, not twice.
    opened.clear()
    centre = recent.visualItemRect(recent.item(1)).center()  # the list is in its new order: first.png is second
    path = recent.item(1).data(Qt.ItemDataRole.UserRole)
    for step in (QTest.mousePress, QTest.mouseRelease, QTest.mouseDClick, QTest.mouseRelease):
        step(recent.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    assert opened == [path]
    qtbot.waitUntil(lambda: window.current_path == path, timeout=5000)

    window.activateWindow()  # and Enter opens the selected one
    assert QTest.qWaitForWindowActive(window)
    recent.setFocus()
    recent.setCurrentRow(0)
    opened.clear()
    QTest.keyClick(recent, Qt.Key.Key_Return)
    assert opened == [recent.item(0).data(Qt.ItemDataRole.UserRole)]


def test_transient_messages_time_out_and_the_newest_standing_one_comes_back(window, qtbot, tmp_path):
    status = window.statusBar()
    assert status.currentMessage() == INTENDED_USE
    status.transient_ms = 50
    window.open_path(get_testdata_file("MR_small.dcm"))
    qtbot.waitUntil(lambda: "1 series" in status.currentMessage(), timeout=5000)
    opened = status.currentMessage()
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)

    QTest.keyClick(window.series_viewer, Qt.Key.Key_3)  # a CT preset on MR: a hint, not the state of the window
    assert "Hounsfield" in status.currentMessage()
    qtbot.waitUntil(lambda: status.currentMessage() == opened, timeout=5000)  # the hint is gone

    window.series_viewer.message.emit("MR_small.dcm: a hint")  # ... replaced at once by a newer standing message
    window.open_path(str(_png(tmp_path, "scan.png")))
    assert status.currentMessage() == "Opening scan.png…"
    qtbot.waitUntil(lambda: "90×60" in status.currentMessage(), timeout=5000)
    standing = status.currentMessage()
    assert "MR" not in standing and "Hounsfield" not in standing
    window.series_viewer.message.emit("scan.png: a passing hint")
    assert status.currentMessage() == "scan.png: a passing hint"
    qtbot.waitUntil(lambda: status.currentMessage() == standing, timeout=5000)  # the newest, not an older one
    assert status.toolTip() == standing  # the whole message, if the line is too narrow to show it


def test_the_chat_line_clears_an_outcome_and_keeps_a_standing_message(qtbot):
    line, clock = MessageLine(), MessageLine()
    line.transient_ms = clock.transient_ms = 50
    line.flash("Answer copied.")
    qtbot.waitUntil(lambda: line.text() == "", timeout=5000)
    line.flash("Exported to a.md.")
    line.setText("The engine stopped unexpectedly.")  # a standing message replaces the outcome before it times out
    clock.flash("tick")  # started after: it times out after the outcome's timer would have
    qtbot.waitUntil(lambda: clock.text() == "", timeout=5000)
    assert line.text() == "The engine stopped unexpectedly."
