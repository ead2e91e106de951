"""The desktop window comes up without a model, explains how to get one, and opens images off the GUI thread."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.ui.main import INTENDED_USE, MainWindow


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HUATUO_DATA_DIR", str(tmp_path / "data"))
    w = MainWindow()
    qtbot.addWidget(w)
    w.confirm_burned_in = lambda verb="attach": True  # the user accepts (the question has tests of its own)
    w.show()
    return w


def test_comes_up_without_a_model(window):
    assert "No model installed" in window.model_picker.note.text()
    assert "huatuo convert" in window.model_picker.note.text()
    assert not window.model_picker.combo.isVisible()
    assert INTENDED_USE in window.statusBar().currentMessage()


def test_lists_an_installed_model(window, converted, tmp_path):
    import shutil

    shutil.copytree(converted("qwen2", "original", "Q8_0"), tmp_path / "data" / "models" / "tiny")
    window.refresh_models()
    from inference.store.manifest import Manifest

    shown = window.model_picker.combo.currentText()
    assert window.model_picker.combo.isVisible() and shown.startswith(Manifest.read(tmp_path / "data" / "models" /
                                                                                    "tiny").name)
    assert "Q8_0" in shown and not window.model_picker.note.isVisible()  # the model is named once, in the picker


def test_opens_a_png(window, qtbot, tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 90), dtype=np.uint8)).save(path)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.current_path == str(path), timeout=5000)
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    assert window.views.currentWidget() is window.series_viewer  # the one viewer, for every kind of image
    assert window.series_viewer.item.pixmap().width() == 90
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


def _tree_values(item, found):
    for i in range(item.childCount()):
        child = item.child(i)
        if child.text(1):
            found.setdefault(child.text(1), []).append(child.text(3))
        _tree_values(child, found)
    return found


def test_tag_browser_masks_what_the_basic_profile_removes_empties_or_replaces_with_a_dummy_at_every_depth(qtbot):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset

    from app.studies.deid import DUMMY, EMPTY, REMOVE
    from app.ui.tag_browser import MASK, TagBrowser

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyDescription = "Chest for Jane Roe"  # X: removed
    ds.PatientSex = "F"  # Z: emptied
    ds.InstitutionName = "St Elsewhere"  # X/Z/D: a dummy value
    ds.PerformingPhysicianName = "Doe^John"  # a person name
    inner = Dataset()
    inner.PatientID = "ID-12345"  # Z/D, nested
    inner.ScheduledProcedureStepDescription = "CT chest, Jane Roe"  # X, nested
    ds.RequestAttributesSequence = [inner]
    ds.private_block(0x0011, "ACME scanner", create=True).add_new(0x01, "LO", "Roe^Jane 12345")  # private
    assert {"StudyDescription", "ScheduledProcedureStepDescription"} <= REMOVE and "PatientSex" in EMPTY
    assert {"InstitutionName", "PatientID"} <= DUMMY
    masked = TagBrowser(ds, show_identifiers=False)
    qtbot.addWidget(masked)
    values = _tree_values(masked.tree.invisibleRootItem(), {})
    for name in ("Study Description", "Patient's Sex", "Institution Name", "Performing Physician's Name",
                 "Patient ID", "Scheduled Procedure Step Description", "Patient's Name"):
        assert values[name] and set(values[name]) == {MASK}, name
    assert values["Modality"] == ["CT"] and values["Rows"] == ["128"]  # the rest as it is
    assert values["Study Instance UID"] == [str(ds.StudyInstanceUID)]  # UIDs (replaced by the profile) are shown
    assert values["Private tag data"] == [MASK] and "ACME scanner" in values["Private Creator"]  # whose it is
    assert values["[Full fidelity]"] == [MASK]  # a private attribute known by name: its value hidden all the same
    shown = TagBrowser(ds, show_identifiers=True)
    qtbot.addWidget(shown)
    values = _tree_values(shown.tree.invisibleRootItem(), {})
    assert "ID-12345" in values["Patient ID"] and values["Study Description"] == ["Chest for Jane Roe"]
    assert values["Performing Physician's Name"] == ["Doe^John"]
    assert values["Private tag data"] == ["Roe^Jane 12345"]


def test_view_dicom_tags_opens_the_browser_masked_until_identifiers_are_turned_on(window, qtbot):
    from pydicom.data import get_testdata_file
    from PySide6.QtGui import QAction

    from app.ui.tag_browser import MASK, TagBrowser

    window.open_path(get_testdata_file("CT_small.dcm"))
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    action = next(a for a in window.findChildren(QAction) if a.text() == "DICOM &tags…")
    assert action.shortcut().toString() == "Ctrl+T"
    name = str(window.series_viewer.header.PatientName)
    for identifiers, expected in ((False, MASK), (True, name)):
        window.identifiers_action.setChecked(identifiers)
        action.trigger()
        browser = window.findChildren(TagBrowser)[-1]
        qtbot.waitUntil(browser.isVisible, timeout=5000)
        values = _tree_values(browser.tree.invisibleRootItem(), {})
        assert values["Patient's Name"] == [expected]
        browser.close()


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
    qtbot.waitUntil(lambda: window.series_viewer.shown is not None, timeout=5000)
    assert window.series_viewer.item.pixmap().width() == 64
    assert window.series_viewer.shown.min() == 0 and window.series_viewer.shown.max() == 255  # stretched to 8 bits


@pytest.mark.parametrize("suffix", [".tif", ".tiff"])
def test_a_tiff_opens_in_the_viewer_grey_value_for_value_and_16_bit_stretched(window, qtbot, tmp_path, suffix):
    grey = np.random.default_rng(1).integers(0, 256, (50, 70), dtype=np.uint8)
    path = tmp_path / f"slide{suffix}"
    Image.fromarray(grey).save(path)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.current_path == str(path) and window.series_viewer.shown is not None,
                    timeout=5000)
    assert window.views.currentWidget() is window.series_viewer
    assert np.array_equal(window.series_viewer.shown, grey)  # as stored, value for value
    assert "70×50" in window.statusBar().currentMessage()

    deep = tmp_path / f"deep{suffix}"
    Image.fromarray(np.arange(40 * 60, dtype=np.uint16).reshape(40, 60) * 20 + 1000).save(deep)
    window.open_path(str(deep))
    qtbot.waitUntil(lambda: window.current_path == str(deep) and window.series_viewer.shown is not None
                    and window.series_viewer.shown.shape == (40, 60), timeout=5000)
    shown = window.series_viewer.shown
    assert shown.min() == 0 and shown.max() == 255 and np.all(np.diff(shown.astype(int).ravel()) >= 0)


# --- what the model is given is the pixels on screen, for every kind of image -----------------------------------

def _png_array(png: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _qimage_array(image) -> np.ndarray:
    """A QImage's pixels as RGB, read back through a lossless PNG."""
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return _png_array(bytes(buffer.data()))


def _on_screen(viewer, region) -> np.ndarray:
    """The pixels the viewer's viewport shows of the image region (left, top, right, bottom), at actual size."""
    left, top, right, bottom = region
    corner = viewer.mapFromScene(left, top)
    grabbed = _qimage_array(viewer.viewport().grab().toImage())
    return grabbed[corner.y():corner.y() + bottom - top, corner.x():corner.x() + right - left]


def _scene_region(viewer, region) -> np.ndarray:
    """The viewer's image region rendered at one screen pixel per image pixel, whatever the zoom."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter

    left, top, right, bottom = region
    image = QImage(right - left, bottom - top, QImage.Format.Format_RGB888)
    painter = QPainter(image)
    viewer.scene().render(painter, QRectF(0, 0, right - left, bottom - top), QRectF(left, top, right - left,
                                                                                  bottom - top))
    painter.end()
    return _qimage_array(image)


def _attach(window, zoomed_region: bool) -> bytes:
    window.chat.attach_requested.emit(zoomed_region)  # the chat's Attach view / "Attach the zoomed region only"
    return window.chat.pending_images[-1][1]


def _image_kinds(tmp_path):
    from pydicom.data import get_testdata_file

    rng = np.random.default_rng(3)
    grey = tmp_path / "grey.png"
    Image.fromarray(rng.integers(0, 256, (130, 170), dtype=np.uint8)).save(grey)
    jpeg = tmp_path / "colour.jpg"
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(jpeg, quality=85)
    tiff = tmp_path / "grey.tiff"
    Image.fromarray(rng.integers(0, 256, (110, 150), dtype=np.uint8)).save(tiff)
    return {"png": (grey, 0), "jpeg": (jpeg, 0), "tiff": (tiff, 0),
            "multi-frame dicom": (get_testdata_file("emri_small.dcm"), 6),
            "colour multi-frame dicom": (get_testdata_file("examples_ybr_color.dcm"), 12),
            "colour dicom": (get_testdata_file("US1_UNCR.dcm"), 0)}


@pytest.mark.parametrize("kind", ["png", "jpeg", "tiff", "multi-frame dicom", "colour multi-frame dicom",
                                  "colour dicom"])
def test_the_attached_image_is_the_visible_region_pixel_for_pixel(window, qtbot, tmp_path, kind):
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    path, frame = _image_kinds(tmp_path)[kind]
    if path is None:
        pytest.skip("pydicom-data is not installed")
    viewer = window.series_viewer
    window.open_path(str(path))
    qtbot.waitUntil(lambda: viewer.shown is not None and window.current_path == str(path), timeout=10_000)
    if frame:
        with qtbot.waitSignal(viewer.frame_changed, timeout=10_000):
            viewer.go_to(frame)
    for key in (Qt.Key.Key_R, Qt.Key.Key_H, Qt.Key.Key_V, Qt.Key.Key_R, Qt.Key.Key_I):  # rotate, flip, invert
        QTest.keyClick(viewer, key)
    assert viewer.view.rotation == 180 and viewer.view.flip_horizontal and viewer.view.invert

    # Zoomed in at actual size, the viewport smaller than the image, then panned with the middle button.
    viewer.setFixedSize(40, 36)  # smaller than the smallest image (64 px) by more than the pan, from the centre
    QTest.keyClick(viewer, Qt.Key.Key_1)
    qtbot.waitUntil(lambda: viewer.horizontalScrollBar().maximum() > 0, timeout=5000)
    before = viewer.horizontalScrollBar().value(), viewer.verticalScrollBar().value()
    start = viewer.visible_region()
    QTest.mousePress(viewer.viewport(), Qt.MouseButton.MiddleButton, pos=QPoint(30, 30))
    QTest.mouseMove(viewer.viewport(), QPoint(20, 22))
    QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.MiddleButton, pos=QPoint(20, 22))
    after = viewer.horizontalScrollBar().value(), viewer.verticalScrollBar().value()
    assert after == (before[0] + 10, before[1] + 8)  # panned by the drag
    region = viewer.visible_region()
    full_height, full_width = viewer.shown.shape[:2]
    assert region[2] - region[0] < full_width and region[3] - region[1] < full_height
    assert region[:2] == (start[0] + 10, start[1] + 8)  # the region moved with the drag
    attached = _png_array(_attach(window, zoomed_region=True))
    assert attached.shape[:2] == (region[3] - region[1], region[2] - region[0])
    assert np.array_equal(attached, _on_screen(viewer, region))  # exactly what the screen shows

    # Magnified three times: the attached region is the shown image's region, pixel for pixel.
    viewer.scale(3, 3)
    region = viewer.visible_region()
    attached = _png_array(_attach(window, zoomed_region=True))
    assert np.array_equal(attached, _scene_region(viewer, region))
    whole = _png_array(_attach(window, zoomed_region=False))
    assert whole.shape[:2] == (full_height, full_width)
    assert np.array_equal(whole, _scene_region(viewer, (0, 0, full_width, full_height)))


# --- teaching cases from the conversation on screen ---------------------------------------------------------------

def _conversation_about_the_view(window, qtbot, path, frames=(0,)):
    """Open `path`, attach the given frames as the user would, and store a conversation about them (no model
    needed: the store is written as the chat writes it)."""
    viewer = window.series_viewer
    window.open_path(str(path))
    qtbot.waitUntil(lambda: viewer.shown is not None and window.current_path == str(path), timeout=10_000)
    for frame in frames:
        if frame != viewer.position:
            with qtbot.waitSignal(viewer.frame_changed, timeout=10_000):
                viewer.go_to(frame)
        window.attach_view(False)
    store, chat = window.store, window.chat
    cid = store.create_conversation("US · teaching", study_key=chat.study_key)
    shas = [store.add_image(cid, png, label) for label, png, _zoomed in chat.pending_images]
    turn = store.add_turn(cid, "What is shown?", shas)
    store.finish_answer(turn, "stop", [1], {}, text="An ultrasound frame.")
    chat.clear_attachments()
    chat.open_conversation(cid)
    return store.load(cid)


def test_export_teaching_case_warns_of_burned_in_text_and_writes_de_identified_dicom(window, qtbot, tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    source = get_testdata_file("examples_ybr_color.dcm")
    conversation = _conversation_about_the_view(window, qtbot, source, frames=(0, 5))
    assert "Teaching case (de-identified DICOM)…" in [a.text() for a in window.chat.export_button.menu().actions()]
    dialog = window.export_teaching_case()
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert len(dialog.plan.images) == 2 and list(dialog.plan.dicom_files) == [Path(source)]  # one file, once
    assert "US images often have text burned into the pixels" in dialog.warnings.text()
    assert dialog.whole_series.isEnabled()  # the series on screen is the conversation's
    assert not dialog.export_button.isEnabled()  # not before the user says the images were checked
    dialog.checked.setChecked(True)
    assert dialog.export_button.isEnabled()
    dialog.destination.setText(str(tmp_path / "case"))
    dialog.format.setCurrentIndex(dialog.format.findData("html"))
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        dialog.export_button.click()
    assert "Teaching case saved in" in window.statusBar().currentMessage()
    exported = pydicom.dcmread(tmp_path / "case" / "dicom" / "IM0001.dcm")
    original = pydicom.dcmread(source)
    assert exported.PatientIdentityRemoved == "YES" and exported.PixelData == original.PixelData
    assert exported.StudyInstanceUID != original.StudyInstanceUID
    page = (tmp_path / "case" / "conversation.html").read_text(encoding="utf-8")
    assert "dicom/IM0001.dcm, frame 1" in page and "dicom/IM0001.dcm, frame 6" in page
    assert conversation.title in page


def test_a_plain_image_is_exported_as_the_view_the_model_saw(window, qtbot, tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(path)
    conversation = _conversation_about_the_view(window, qtbot, path)
    (sha,) = conversation.images
    assert window.attached_sources.get(sha).path == path  # known in this session, not stored
    dialog = window.export_teaching_case()
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert not dialog.plan.dicom_files and dialog.plan.images[0].note == "its source is not a DICOM file"
    assert not dialog.whole_series.isEnabled()
    dialog.checked.setChecked(True)
    dialog.destination.setText(str(tmp_path / "case"))
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        dialog.export_button.click()
    written = np.asarray(Image.open(tmp_path / "case" / "images" / "image-01.png"))
    assert np.array_equal(written, np.asarray(Image.open(path)))


def test_make_practice_case_adds_to_the_users_deck_and_opens_it_in_practice_mode(window, qtbot, tmp_path):
    from pydicom.data import get_testdata_file

    from app.ui.practice import PracticeWindow

    _conversation_about_the_view(window, qtbot, get_testdata_file("CT_small.dcm"))
    dialog = window.make_practice_case()
    qtbot.addWidget(dialog)
    assert dialog.question.toPlainText() == "What is shown?" and not dialog.add_button.isEnabled()
    dialog.reference.setPlainText("An axial CT slice.")
    dialog.deck.setText(str(tmp_path / "cases.json"))
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        dialog.add_button.click()
    practice = window.findChild(PracticeWindow)
    assert practice is not None and practice.isVisible()
    assert practice.deck.path == tmp_path / "cases.json" and practice.item.question == "What is shown?"
    assert practice.item.reference == "An axial CT slice."
    qtbot.waitUntil(lambda: practice.case.viewer.shown is not None, timeout=10_000)  # the case's image, shown
    practice.close()


def test_the_whole_series_on_request(window, qtbot, tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder = tmp_path / "series"
    folder.mkdir()
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for i in range(3):
        base.SOPInstanceUID = generate_uid()
        base.ImagePositionPatient = [0, 0, float(i)]
        base.PixelData = (base.pixel_array + i * 40).astype(base.pixel_array.dtype).tobytes()
        base.save_as(folder / f"IM{i}")
    _conversation_about_the_view(window, qtbot, folder, frames=(1,))
    dialog = window.export_teaching_case()
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert len(dialog.plan.dicom_files) == 1 and not dialog.plan.warnings  # CT: no burned-in warning
    assert dialog.export_button.isEnabled()
    dialog.whole_series.setChecked(True)
    qtbot.waitUntil(lambda: dialog.plan is not None and len(dialog.plan.dicom_files) == 3, timeout=10_000)
    dialog.destination.setText(str(tmp_path / "case"))
    with qtbot.waitSignal(dialog.accepted, timeout=30_000):
        dialog.export_button.click()
    exported = [pydicom.dcmread(p) for p in sorted((tmp_path / "case" / "dicom").glob("*.dcm"))]
    assert len(exported) == 3 and len({ds.SeriesInstanceUID for ds in exported}) == 1
    assert len({ds.SOPInstanceUID for ds in exported}) == 3


def test_a_broken_model_is_listed_as_broken_and_cannot_be_chosen(window, converted, tmp_path):
    import shutil

    from inference.store.manifest import Manifest

    models = tmp_path / "data" / "models"
    shutil.copytree(converted("qwen2", "original", "Q8_0"), models / "good")
    shutil.copytree(converted("qwen2", "original", "Q8_0"), models / "damaged")
    text_file, _ = Manifest.read(models / "damaged").paths(models / "damaged")
    with open(text_file, "r+b") as f:  # a download or copy that stopped short
        f.truncate(text_file.stat().st_size // 2)
    window.refresh_models()
    combo = window.model_picker.combo
    rows = {combo.itemData(i): i for i in range(combo.count())}
    damaged, good = rows[str(models / "damaged")], rows[str(models / "good")]
    assert combo.itemText(damaged).endswith("— broken") and "broken" not in combo.itemText(good)
    assert not combo.model().item(damaged).isEnabled() and combo.model().item(good).isEnabled()
    assert combo.currentIndex() == good  # the usable one is in use
    assert "damaged" in window.model_picker.note.text()  # and the note says why the other cannot be used
