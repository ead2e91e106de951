"""The viewer driven like a user would, offscreen: window/level drag, wheel, keys, presets, model view."""

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.studies.pixels import Window
from app.ui.viewer import Viewer


@pytest.fixture
def ct_series(tmp_path):
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    paths = []
    for i in range(5):
        ds = base.copy()
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [0, 0, float(i)]
        ds.PixelData = (ds.pixel_array + i * 50).astype(ds.pixel_array.dtype).tobytes()
        path = tmp_path / f"s{i}.dcm"
        ds.save_as(path)
        paths.append(path)
    return [(p, 0) for p in paths]


def _load(qtbot, viewer, frames):
    viewer.set_frames(frames)
    qtbot.waitUntil(lambda: viewer.shown is not None, timeout=5000)


def _pixmap_array(viewer):
    """The pixels of the pixmap on screen, read back through a lossless PNG."""
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    viewer.item.pixmap().toImage().save(buffer, "PNG")
    image = Image.open(io.BytesIO(bytes(buffer.data())))
    return np.asarray(image.convert("L" if viewer.shown.ndim == 2 else "RGB"))


def test_left_drag_changes_window_and_level(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    start = viewer.view.window
    assert start == Window(40, 400)  # CT without a window in the file: the soft-tissue default
    centre = viewer.viewport().rect().center()
    QTest.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(viewer.viewport(), centre + QPoint(64, -32))
    QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       centre + QPoint(64, -32))
    step = start.width / 256
    assert viewer.view.window.width == pytest.approx(start.width + 64 * step)
    assert viewer.view.window.centre == pytest.approx(start.centre + 32 * step)
    assert "W 500  L 90" in viewer.overlay.text()


def test_wheel_and_keys_move_through_slices(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    event = QWheelEvent(QPointF(10, 10), QPointF(10, 10), QPoint(0, 0), QPoint(0, -120), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewer.viewport(), event)
    assert viewer.position == 1
    QTest.keyClick(viewer, Qt.Key.Key_End)
    assert viewer.position == 4
    qtbot.waitUntil(lambda: "5/5" in viewer.overlay.text(), timeout=5000)
    QTest.keyClick(viewer, Qt.Key.Key_Home)
    assert viewer.position == 0


def test_presets_only_for_hounsfield_data(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.apply_preset("lung")
    assert viewer.view.window == Window(-600, 1500)
    mr = Viewer()
    qtbot.addWidget(mr)
    _load(qtbot, mr, [(Path(get_testdata_file("MR_small.dcm")), 0)])
    assert mr.presets() == []
    with pytest.raises(ValueError, match="Hounsfield"):
        mr.apply_preset("lung")


def test_what_the_model_sees_is_what_is_shown(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.apply_preset("bone")
    QTest.keyClick(viewer, Qt.Key.Key_R)  # rotate
    QTest.keyClick(viewer, Qt.Key.Key_I)  # invert
    model = np.asarray(Image.open(io.BytesIO(viewer.model_view_png())))
    assert np.array_equal(model, viewer.shown)
    assert np.array_equal(model, _pixmap_array(viewer))
    viewer.scale(4, 4)  # zoom in: the model can be given the visible region only
    left, top, right, bottom = viewer.visible_region()
    region = np.asarray(Image.open(io.BytesIO(viewer.model_view_png(zoomed_region=True))))
    assert region.shape[:2] == (bottom - top, right - left) and region.shape[0] < model.shape[0]
    assert np.array_equal(region, model[top:bottom, left:right])


def test_window_and_level_change_a_colour_ultrasound(qtbot, viewer):
    """An RGB ultrasound opens as stored; left-drag stretches its channels (contrast, brightness) as on grey data, the
    overlay says so, the model is given those pixels, and "from file" and Auto W/L work on it too."""
    path = Path(get_testdata_file("US1_UNCR.dcm"))
    _load(qtbot, viewer, [(path, 0)])
    stored = pydicom.dcmread(path).pixel_array
    assert viewer.view.window == Window(128, 256) and np.array_equal(viewer.shown, stored)  # as stored
    assert "W 256  L 128" in viewer.overlay.text()
    centre = viewer.viewport().rect().center()
    QTest.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(viewer.viewport(), centre + QPoint(-128, -32))  # narrower (more contrast), higher (darker)
    QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       centre + QPoint(-128, -32))
    assert viewer.view.window == Window(160, 128)
    assert "W 128  L 160" in viewer.overlay.text()
    low, high = 160 - 0.5 - 127 / 2, 160 - 0.5 + 127 / 2  # PS3.3 C.11.2.1.2, on each channel
    expected = np.clip((stored.astype(np.float64) - low) / (high - low) * 255, 0, 255)
    assert np.abs(viewer.shown.astype(int) - expected).max() <= 1
    assert not np.array_equal(viewer.shown, stored)
    model = np.asarray(Image.open(io.BytesIO(viewer.model_view_png())))
    assert np.array_equal(model, viewer.shown) and np.array_equal(_pixmap_array(viewer), viewer.shown)
    viewer.set_window(None)  # back to the file's own: the colours as stored
    assert np.array_equal(viewer.shown, stored)
    viewer.auto_window()
    assert viewer.view.window != Window(128, 256) and not np.array_equal(viewer.shown, stored)


def test_the_overlay_of_an_image_without_a_modality_starts_with_its_position(qtbot, viewer, tmp_path):
    path = tmp_path / "drawing.png"
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(path)
    _load(qtbot, viewer, [(path, 0)])
    assert viewer.overlay.text().split("\n")[0] == "1/1"  # no blank where a modality would be
    _load(qtbot, viewer, [(Path(get_testdata_file("MR_small.dcm")), 0)])
    assert viewer.overlay.text().split("\n")[0] == "MR  1/1"


def test_colour_multiframe_scrolls_frames(qtbot, viewer):
    path = Path(get_testdata_file("examples_ybr_color.dcm"))
    _load(qtbot, viewer, [(path, i) for i in range(30)])
    assert viewer.shown.shape == (240, 320, 3)
    QTest.keyClick(viewer, Qt.Key.Key_PageDown)
    assert viewer.position == 10


def test_patient_identifiers_are_hidden_unless_asked(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    name = str(viewer.header.PatientName)
    assert name and name not in viewer.overlay.text()
    viewer.show_identifiers = True
    viewer.toggle_invert()
    assert name in viewer.overlay.text()


def test_orientation_letters_follow_rotation(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    before = {edge: label.text() for edge, label in viewer.edge_labels.items()}
    assert all(before.values())
    QTest.keyClick(viewer, Qt.Key.Key_R)
    assert viewer.edge_labels["right"].text() == before["top"]


def test_probe_and_measurement(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.actual_size()
    origin = viewer.mapFromScene(QPointF(10.5, 20.5))
    QTest.mouseMove(viewer.viewport(), origin)
    qtbot.waitUntil(lambda: " HU @ (" in viewer.overlay.text(), timeout=2000)
    x, y = map(int, viewer.probe_text.split("@ (")[1].rstrip(")").split(", "))
    assert abs(x - 10) <= 1 and abs(y - 20) <= 1  # the pixel under the cursor (view rounding aside)
    ds = viewer.header
    raw = viewer._decoded[y, x] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert viewer.probe_text.startswith(f"{raw:.0f} HU")
    QTest.keyClick(viewer, Qt.Key.Key_M)
    far = viewer.mapFromScene(QPointF(110.5, 20.5))
    QTest.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, origin)
    QTest.mouseMove(viewer.viewport(), far)
    QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, far)
    spacing = float(viewer.header.PixelSpacing[1])
    assert f"length {100 * spacing:.1f} mm" in viewer.overlay.text()
    assert viewer.view.window == Window(40, 400)  # measuring did not change the window


def test_cine_plays_and_stops(qtbot, viewer):
    path = Path(get_testdata_file("examples_ybr_color.dcm"))
    _load(qtbot, viewer, [(path, i) for i in range(30)])
    viewer.toggle_cine(fps=50)
    qtbot.waitUntil(lambda: viewer.position >= 3, timeout=5000)
    QTest.keyClick(viewer, Qt.Key.Key_Space)
    assert not viewer.cine.isActive()


def test_a_decode_for_a_series_no_longer_shown_is_ignored(qtbot, viewer, ct_series):
    from app.ui.background import run_in_background
    from app.ui.viewer import _decode

    _load(qtbot, viewer, ct_series)
    assert viewer.shown.shape == (128, 128)
    viewer.set_frames([(Path(get_testdata_file("MR_small.dcm")), 0)])
    qtbot.waitUntil(lambda: viewer.shown is not None and viewer.shown.shape == (64, 64), timeout=5000)
    shown = viewer.shown.copy()
    late = run_in_background(lambda cancel: _decode(viewer.renderer, 0, *ct_series[0]), on_done=viewer._on_decoded)
    qtbot.waitUntil(lambda: late.finished, timeout=5000)  # slice 0 of the CT series, decoded after the MR is shown
    assert np.array_equal(viewer.shown, shown)


def _sample(name):
    return Path(get_testdata_file(name))


def _show(qtbot, viewer, path, shape):
    """Open one file and wait until its own pixels are on show."""
    viewer.set_frames([(path, 0)])
    qtbot.waitUntil(lambda: viewer.shown is not None and viewer.shown.shape[:2] == shape, timeout=5000)


def test_a_new_study_starts_fitted(qtbot, viewer):
    _show(qtbot, viewer, _sample("CT_small.dcm"), (128, 128))
    viewer.zoom_by(2)  # the user zoomed in on the CT
    for name, shape in (("emri_small.dcm", (64, 64)), ("US1_UNCR.dcm", (480, 640))):
        _show(qtbot, viewer, _sample(name), shape)
        shown_zoom = viewer.zoom()
        QTest.keyClick(viewer, Qt.Key.Key_F)  # what "fit" gives for this image
        assert shown_zoom == pytest.approx(viewer.zoom()), name
        assert f"zoom {shown_zoom * 100:.0f}%" in viewer.overlay.text()
        left, top, right, bottom = viewer.visible_region()
        assert (right - left, bottom - top) == (shape[1], shape[0])  # all of it in view


def test_a_fitted_image_stays_fitted_when_the_view_is_resized(qtbot, viewer):
    _show(qtbot, viewer, _sample("US1_UNCR.dcm"), (480, 640))
    before = viewer.zoom()
    viewer.resize(900, 700)  # the window opens at its full size after the first frame was fitted
    qtbot.waitUntil(lambda: viewer.zoom() > before * 1.2, timeout=2000)
    left, top, right, bottom = viewer.visible_region()
    assert (right - left, bottom - top) == (640, 480)
    viewer.zoom_by(1.5)  # zoomed by the user: a resize leaves the zoom alone
    zoomed = viewer.zoom()
    viewer.resize(700, 600)
    qtbot.waitUntil(lambda: viewer.viewport().width() < 700, timeout=2000)
    assert viewer.zoom() == pytest.approx(zoomed)


def _lines_on_screen(viewer):
    """The ruler lines in the scene that are shown."""
    from PySide6.QtWidgets import QGraphicsLineItem

    return [i for i in viewer.scene().items() if isinstance(i, QGraphicsLineItem) and i.isVisible()]


def test_the_probe_and_ruler_do_not_outlive_their_study(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    centre = viewer.viewport().rect().center()
    QTest.mouseMove(viewer.viewport(), centre)
    qtbot.waitUntil(lambda: " HU @ (" in viewer.overlay.text(), timeout=2000)
    QTest.keyClick(viewer, Qt.Key.Key_M)
    QTest.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(viewer.viewport(), centre + QPoint(80, 0))
    QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       centre + QPoint(80, 0))
    assert "length " in viewer.overlay.text() and _lines_on_screen(viewer)
    _show(qtbot, viewer, _sample("emri_small.dcm"), (64, 64))
    text = viewer.overlay.text()
    assert viewer.probe_text == "" and " @ (" not in text and "HU" not in text
    assert "length" not in text and not _lines_on_screen(viewer) and viewer.measurements == []
    assert text.startswith("MR  1/1")


@pytest.mark.parametrize("cut", [0, 1])  # an odd and an even length: the decoder fails differently
def test_a_truncated_file_is_explained_in_the_viewer(qtbot, viewer, tmp_path, cut):
    data = _sample("CT_small.dcm").read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: len(data) // 2 + cut])
    messages = []
    viewer.message.connect(messages.append)
    viewer.set_frames([(path, 0)])
    qtbot.waitUntil(lambda: viewer.notice.isVisible(), timeout=5000)
    text = viewer.notice.text()
    assert "cannot be shown" in text and "truncated.dcm" in text and "truncated or damaged" in text
    assert messages and messages[-1] in text  # the status line says the same
    assert viewer.viewport().geometry().contains(viewer.notice.geometry())  # whole, inside the view
    assert viewer.shown is None and viewer.item.pixmap().isNull()
    assert all(label.text() == "" for label in viewer.edge_labels.values())  # no letters around nothing
    assert "zoom" not in viewer.overlay.text() and "W " not in viewer.overlay.text()
    _show(qtbot, viewer, _sample("CT_small.dcm"), (128, 128))  # the next file shows, the notice goes
    assert not viewer.notice.isVisible() and all(label.text() for label in viewer.edge_labels.values())


@pytest.mark.parametrize("content", [b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f" + b"garbage",
                                     None])  # a damaged file; one removed after the folder was scanned
def test_an_unreadable_file_is_explained_and_hovering_it_is_harmless(qtbot, viewer, tmp_path, content):
    path = tmp_path / "damaged.dcm"
    if content is not None:
        path.write_bytes(content)
    viewer.set_frames([(path, 0)])
    qtbot.waitUntil(lambda: viewer.notice.isVisible(), timeout=5000)
    assert "damaged.dcm: " in viewer.notice.text() and "zoom" not in viewer.overlay.text()
    QTest.mouseMove(viewer.viewport(), viewer.viewport().rect().center())  # no error from hovering nothing
    assert viewer.probe_text == "" and viewer.shown is None


def test_a_broken_slice_in_a_series_shows_its_notice_not_the_last_slice(qtbot, viewer, ct_series):
    broken = ct_series[2][0]
    broken.write_bytes(broken.read_bytes()[:-9000])
    _load(qtbot, viewer, ct_series)
    viewer.zoom_by(2)
    zoom = viewer.zoom()
    QTest.keyClick(viewer, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: viewer.shown is not None and "2/5" in viewer.overlay.text(), timeout=5000)
    QTest.keyClick(viewer, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: viewer.notice.isVisible(), timeout=5000)
    assert viewer.shown is None and "3/5" in viewer.overlay.text() and "s2.dcm" in viewer.notice.text()
    QTest.keyClick(viewer, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: viewer.shown is not None and "4/5" in viewer.overlay.text(), timeout=5000)
    assert not viewer.notice.isVisible() and viewer.zoom() == pytest.approx(zoom)  # same series: zoom kept


def _grey(widget):
    """The widget as rendered, as grey levels (rows, columns)."""
    from PySide6.QtGui import QImage

    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_Grayscale8)
    array = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * image.height())
    return array.reshape(image.height(), image.bytesPerLine())[:, : image.width()]


def test_overlay_text_and_ruler_read_over_white_pixels(qtbot, viewer, ct_series):
    _load(qtbot, viewer, ct_series)
    viewer.set_window(Window(-5000, 1))  # every pixel above the window: a white frame
    assert viewer.shown.min() == 255
    QTest.keyClick(viewer, Qt.Key.Key_M)
    start, end = viewer.viewport().rect().center(), viewer.viewport().rect().center() + QPoint(150, 0)
    QTest.mousePress(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(viewer.viewport(), end)
    QTest.mouseRelease(viewer.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    assert "length" in viewer.overlay.text()
    grey = _grey(viewer)
    for label in [viewer.overlay, *viewer.edge_labels.values()]:
        rect = label.geometry()
        region = grey[rect.top():rect.bottom() + 1, rect.left():rect.right() + 1]
        assert (region > 200).any() and (region < 80).any(), f"{label.text()!r} has no dark outline"
    offset = viewer.viewport().geometry().topLeft()  # the ruler, drawn in the viewport, crosses this column
    column = grey[:, offset.x() + start.x() + 75]
    near = column[offset.y() + start.y() - 4: offset.y() + start.y() + 5]
    assert (near < 80).any() and (near > 120).any()


def test_huatuo_render_gives_the_pixels_the_viewer_shows_and_the_model_is_given(qtbot, viewer, ct_series, tmp_path):
    import subprocess
    import sys

    _load(qtbot, viewer, ct_series)
    viewer.apply_preset("bone")
    QTest.keyClick(viewer, Qt.Key.Key_R)  # rotate
    QTest.keyClick(viewer, Qt.Key.Key_I)  # invert
    model = np.asarray(Image.open(io.BytesIO(viewer.model_view_png())))
    path, frame = viewer.frames[viewer.position]
    out = tmp_path / "rendered.png"
    done = subprocess.run([sys.executable, "-m", "app", "render", str(path), "--out", str(out), "--frame", str(frame),
                           "--preset", "bone", "--invert", "--rotate", "90"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    rendered = np.asarray(Image.open(out))
    assert np.array_equal(rendered, model) and np.array_equal(rendered, viewer.shown)
    assert not np.array_equal(rendered, np.rot90(rendered))  # the rotation is really compared
