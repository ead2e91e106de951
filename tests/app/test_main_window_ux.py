"""The main window as a new user meets it: a window within the screen, the start page, drag and drop, Help ›
Keyboard shortcuts and About, the viewer toolbar and measurements list, and the burned-in text confirmation before
an image is attached."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from PySide6.QtCore import QMimeData, QPoint, QPointF, QRect, Qt, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QFileDialog

from app.ui.empty_state import PROMPT
from app.ui.main import MainWindow
from app.ui.viewer_tools import COMMANDS, Tool
from app.ui.window_size import WINDOW_FRAME
from tests.support.menus import answer_next_box

TEXT_MARGIN = 4  # each side of an item view's text (the style's focus frame margin and a pixel)


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def _png(tmp_path, name="scan.png"):
    path = tmp_path / name
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90), dtype=np.uint8)).save(path)
    return path


def _drop(window, paths):
    """Drag local files over the window and drop them, as a file manager does."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = window.rect().center()
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    drop = QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    return enter, drop


def test_the_window_opens_within_the_screen_and_fits_a_1366_by_768_one(window):
    free = window.screen().availableGeometry()
    # No larger than the screen's free area (with room for a window frame): nothing hidden past its edges.
    assert window.height() <= free.height() - WINDOW_FRAME.height()
    assert window.width() <= max(free.width() - WINDOW_FRAME.width(), window.minimumSizeHint().width())
    hint = window.minimumSizeHint()  # and a laptop's 1366×768 screen takes all of it
    assert hint.width() <= 1366 - 16 and hint.height() <= 768 - 80, hint


def test_the_start_page_says_what_to_do_and_its_buttons_open(window, qtbot, tmp_path, monkeypatch):
    assert window.views.currentWidget() is window.empty_state and window.empty_state.isVisible()
    assert window.empty_state.title.text() == PROMPT
    assert not window.viewer_toolbar.isEnabled()  # no tools over nothing
    path = _png(tmp_path)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    window.empty_state.file_button.click()
    qtbot.waitUntil(lambda: window.current_path == str(path), timeout=5000)
    assert window.views.currentWidget() is window.series_viewer  # a PNG opens in the same viewer as DICOM
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "IM0001")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    window.empty_state.folder_button.click()
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    assert window.views.currentWidget() is window.series_viewer and window.viewer_toolbar.isEnabled()


def test_a_dropped_file_opens(window, qtbot, tmp_path):
    path = _png(tmp_path)
    enter, drop = _drop(window, [path])
    assert enter.isAccepted() and drop.isAccepted()
    qtbot.waitUntil(lambda: window.current_path == str(path), timeout=5000)
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    assert window.series_viewer.shown.shape[1] == 90 and window.views.currentWidget() is window.series_viewer
    assert str(path.resolve()) in window.settings.recent  # as File › Open would


def test_a_dropped_folder_and_several_dicom_files_open(window, qtbot, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "IM0001")
    _drop(window, [folder])
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    assert window.current_path == str(folder) and "CT" in window.series_viewer.overlay.text()
    files = [Path(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm")]
    _drop(window, files)  # two files at once: read together, both series offered
    qtbot.waitUntil(lambda: window.strip.count() == 2, timeout=5000)
    assert "2 series" in window.statusBar().currentMessage()


def test_a_drag_without_files_is_refused(window):
    mime = QMimeData()
    mime.setText("just text")
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def _native(sequence: QKeySequence) -> str:
    return sequence.toString(QKeySequence.SequenceFormat.NativeText)


def test_the_shortcuts_dialog_lists_what_is_registered(window, qtbot):
    late = QAction("Something added later", window, shortcut=QKeySequence("Ctrl+Shift+L"))
    window.menuBar().actions()[0].menu().addAction(late)  # a new menu entry appears without a list to update
    dialog = window.show_shortcuts()
    qtbot.addWidget(dialog)
    rows = dialog.rows()
    listed = {(keys, does) for _, keys, does in rows}
    keys_listed = {keys for _, keys, _ in rows}
    for command in COMMANDS:  # every viewer key the viewer dispatches, from the same table
        assert (" / ".join(command.keys), command.description) in listed
    menu_shortcuts = [a for a in window.findChildren(QAction) if not a.shortcut().isEmpty()]
    assert late in menu_shortcuts
    assert {"Ctrl+O", "Ctrl+T", "Ctrl+/", "Ctrl+Shift+L"} <= {a.shortcut().toString() for a in menu_shortcuts}
    for action in menu_shortcuts:
        assert any(_native(action.shortcut()) in keys for keys in keys_listed), action.text()
    for shortcut in window.findChildren(QShortcut):  # the chat's and the measurements list's own
        assert _native(shortcut.key()) in keys_listed
    assert any(group == "Chat" and keys == _native(QKeySequence("Ctrl+Return")) for group, keys, _ in rows)
    assert ("Left drag", "the selected tool (window/level unless another is chosen)") in listed
    for what in ("the current conversation", "the turn at the text cursor", "the selected measurement"):
        for keys in ("Menu", "Shift+F10"):  # the keyboard's context menus, each saying what it is for
            assert (_native(QKeySequence(keys)), f"Context menu of {what}") in listed


def _cut_off(tree) -> list[str]:
    """The shortcuts whose keys or description the tree does not show in full (cut off, or past its right edge)."""
    metrics, width = tree.fontMetrics(), tree.viewport().width()
    cut = []
    for group in (tree.topLevelItem(g) for g in range(tree.topLevelItemCount())):
        for item in (group.child(i) for i in range(group.childCount())):
            for column in (0, 1):
                rect = tree.visualRect(tree.indexFromItem(item, column))
                room = QRect(0, 0, rect.width() - 2 * TEXT_MARGIN, 100_000)
                needed = metrics.boundingRect(room, Qt.TextFlag.TextWordWrap, item.text(column)).size()
                if needed.height() > rect.height() or needed.width() > room.width() or rect.right() >= width:
                    cut.append(item.text(column))
    return cut


def test_every_shortcut_is_read_in_full_on_a_laptop_screen(window, qtbot):
    dialog = window.show_shortcuts()
    qtbot.addWidget(dialog)
    qtbot.waitExposed(dialog)
    assert dialog.width() <= 1366 - 16 and dialog.height() <= 768 - 80  # within a 1366×768 screen's free area
    longest = max((does for _, _, does in dialog.rows()), key=len)
    assert len(longest) > 70  # the angle's and the ellipse's: longer than a line of a narrow dialog
    assert _cut_off(dialog.tree) == []
    dialog.resize(420, dialog.height())  # narrower: the descriptions wrap onto more lines, none is cut off
    qtbot.waitUntil(lambda: dialog.tree.viewport().width() < 420 and _cut_off(dialog.tree) == [], timeout=5000)
    [item] = dialog.tree.findItems(longest, Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive, 1)
    row = dialog.tree.visualRect(dialog.tree.indexFromItem(item, 1))
    assert row.height() >= 2 * dialog.tree.fontMetrics().lineSpacing()


def test_the_shortcuts_shown_are_the_keys_the_viewer_obeys(qtbot, tmp_path):
    """Each listed viewer key does what the table says: the same table drives the key handler."""
    from PySide6.QtTest import QTest

    from app.ui.viewer import Viewer

    viewer = Viewer()
    qtbot.addWidget(viewer)
    viewer.resize(400, 400)
    viewer.show()
    viewer.set_frames([(Path(get_testdata_file("CT_small.dcm")), 0)])
    qtbot.waitUntil(lambda: viewer.shown is not None, timeout=5000)
    tools = {c.keys[0]: c.tool for c in COMMANDS if c.tool is not None}
    for key, tool in tools.items():
        QTest.keyClick(viewer, QKeySequence(key)[0].key())
        assert viewer.tool == tool or (tool == Tool.WINDOW and viewer.tool == Tool.WINDOW), key


def test_about_names_versions_model_files_and_licences(window, qtbot, converted, tmp_path):
    from importlib import metadata

    from PySide6.QtCore import qVersion

    from inference.store.manifest import Manifest

    folder = tmp_path / "data" / "models" / "tiny"
    shutil.copytree(converted("qwen2", "original", "Q8_0"), folder)
    window.refresh_models()
    dialog = window.show_about()
    qtbot.addWidget(dialog)
    text = dialog.text.toPlainText()
    manifest = Manifest.read(folder)
    for expected in (qVersion(), metadata.version("pydicom"), metadata.version("llama-cpp-python"),
                     manifest.text.file, manifest.text.sha256, manifest.mmproj.file, manifest.mmproj.sha256,
                     "LGPL-3.0", "pydicom", "MIT", "Apache-2.0"):
        assert expected in text, expected


def test_about_without_a_model_says_so(window, qtbot):
    dialog = window.show_about()
    qtbot.addWidget(dialog)
    assert "Model in use" in dialog.text.toPlainText() and "None." in dialog.text.toPlainText()


def test_the_toolbar_drives_the_viewer_and_the_measurements_are_listed(window, qtbot):
    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    viewer = window.series_viewer
    ruler = next(a for a in window.viewer_toolbar.actions() if a.text() == "Ruler")
    assert "(M)" in ruler.toolTip()
    ruler.trigger()
    assert viewer.tool == Tool.RULER
    from PySide6.QtTest import QTest

    centre = viewer.viewport().rect().center()
    QTest.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(viewer.viewport(), centre + QPoint(100, 0))
    QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       centre + QPoint(100, 0))
    assert window.measurements.list.count() == 1
    assert window.measurements.list.item(0).text().startswith("Slice 1 · length ")


# --- burned-in text -----------------------------------------------------------------------------------------------


def _open(window, qtbot, name):
    window.open_path(get_testdata_file(name))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None and window.current_path
                    and window.current_path.endswith(name), timeout=5000)


def test_burned_in_text_is_confirmed_before_attaching(window, qtbot):
    _open(window, qtbot, "US1_UNCR.dcm")
    seen = []
    answer_next_box(None, seen)  # cancel
    window.attach_view(False)
    assert len(seen) == 1 and "US images often have text burned into the pixels" in seen[0]
    assert window.chat.pending_images == []  # cancelled: nothing attached
    assert "Nothing attached" in window.statusBar().currentMessage()
    answer_next_box("Attach anyway", seen)
    window.attach_view(False)
    assert len(seen) == 2 and len(window.chat.pending_images) == 1
    window.attach_view(True)  # the same series again: not asked twice in a session
    assert len(seen) == 2 and len(window.chat.pending_images) == 2


def test_no_confirmation_for_a_ct_without_burned_in_text(window, qtbot):
    _open(window, qtbot, "CT_small.dcm")
    seen = []
    answer_next_box(None, seen)  # were a box to come, it would be cancelled and noted
    window.attach_view(False)
    assert seen == [] and len(window.chat.pending_images) == 1


def test_a_file_that_says_burned_in_annotation_yes_is_confirmed(window, qtbot, tmp_path):
    import pydicom

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    path = tmp_path / "marked.dcm"
    ds.save_as(path)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    seen = []
    answer_next_box(None, seen)
    window.attach_view(False)
    assert seen and "marked as having burned-in annotation" in seen[0] and window.chat.pending_images == []
