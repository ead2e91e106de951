"""The desktop window comes up without a model, explains how to get one, and opens images off the GUI thread."""

import numpy as np
import pytest
from PIL import Image

from app.ui.main import INTENDED_USE, MainWindow


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def test_comes_up_without_a_model(window):
    assert "No model installed" in window.model_panel.text()
    assert "huatuo convert" in window.model_panel.text()
    assert INTENDED_USE in window.statusBar().currentMessage()


def test_lists_an_installed_model(window, converted, tmp_path):
    import shutil

    shutil.copytree(converted("qwen2", "original", "Q8_0"), tmp_path / "data" / "models" / "tiny")
    window.refresh_models()
    assert "<b>Model</b>" in window.model_panel.text() and "Q8_0" in window.model_panel.text()


def test_opens_a_png(window, qtbot, tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90), dtype=np.uint8)).save(path)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.current_path == str(path), timeout=5000)
    assert window.viewer.item.pixmap().width() == 90
    assert "90×60" in window.statusBar().currentMessage()


def test_a_broken_file_is_explained_and_the_window_stays(window, qtbot, tmp_path):
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage")
    window.open_path(str(path))
    qtbot.waitUntil(lambda: "broken.dcm" in window.statusBar().currentMessage()
                    and "Opening" not in window.statusBar().currentMessage(), timeout=5000)
    assert window.isVisible() and window.current_path is None


def test_opens_a_dicom_folder_in_the_viewer(window, qtbot, tmp_path):
    import shutil

    from pydicom.data import get_testdata_file

    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "IM0001")  # no extension: found by content
    window.open_path(str(folder))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    assert window.views.currentWidget() is window.series_viewer
    assert "1 series" in window.statusBar().currentMessage() and "CT" in window.series_viewer.overlay.text()
    assert window.strip.count() == 1
    qtbot.waitUntil(lambda: not window.strip.item(0).icon().isNull(), timeout=5000)  # thumbnail rendered


def test_tag_browser_masks_identifiers(window, qtbot):
    from pydicom.data import get_testdata_file

    from app.ui.tag_browser import MASK, TagBrowser

    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    header = window.series_viewer.header
    browser = TagBrowser(header, show_identifiers=False)
    qtbot.addWidget(browser)
    rows = {browser.tree.topLevelItem(i).text(1): browser.tree.topLevelItem(i).text(3)
            for i in range(browser.tree.topLevelItemCount())}
    assert rows["Patient's Name"] == MASK and rows["Modality"] == "CT"
    shown = TagBrowser(header, show_identifiers=True)
    qtbot.addWidget(shown)
    assert any(shown.tree.topLevelItem(i).text(3) == str(header.PatientName)
               for i in range(shown.tree.topLevelItemCount()))
    browser.filter.setText("modality")
    visible = [browser.tree.topLevelItem(i).text(1) for i in range(browser.tree.topLevelItemCount())
               if not browser.tree.topLevelItem(i).isHidden()]
    assert visible == ["Modality"]


def test_a_non_image_object_is_explained(window, qtbot):
    from pydicom.data import get_testdata_file

    window.open_path(get_testdata_file("rtplan.dcm"))
    qtbot.waitUntil(lambda: "nothing to show" in window.statusBar().currentMessage(), timeout=5000)
    assert "RT Plan Storage" in window.statusBar().currentMessage()


def test_window_menu_offers_presets_for_ct_only(window, qtbot):
    from pydicom.data import get_testdata_file

    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    window._fill_window_menu()
    labels = [a.text() for a in window.window_menu.actions() if a.text()]
    assert labels[:3] == ["From file", "Auto", "Invert"] and "Lung" in labels
    next(a for a in window.window_menu.actions() if a.text() == "Lung").trigger()
    assert (window.series_viewer.view.window.centre, window.series_viewer.view.window.width) == (-600, 1500)
    window.open_path(get_testdata_file("MR_small.dcm"))
    qtbot.waitUntil(lambda: "MR" in window.series_viewer.overlay.text(), timeout=5000)
    window._fill_window_menu()
    assert [a.text() for a in window.window_menu.actions() if a.text()] == ["From file", "Auto", "Invert"]


def test_sixteen_bit_png_is_shown(window, qtbot, tmp_path):
    import numpy as np
    from PIL import Image

    path = tmp_path / "16bit.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(path)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.current_path == str(path), timeout=5000)
    assert window.viewer.item.pixmap().width() == 64
