"""A big folder opened in the window: its first image is on screen before the folder is read, and stays on screen
(the same instance) once the series is complete and sorted."""

from __future__ import annotations

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from app.settings import Settings
from app.ui.main import MainWindow


def _series(folder, n):
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    uid = generate_uid()
    zs = [float((i * 7) % n) for i in range(n)]  # file order is not slice order
    for i, z in enumerate(zs):
        ds = base.copy()
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.ImagePositionPatient, ds.InstanceNumber = [0.0, 0.0, z], int(z) + 1
        ds.save_as(folder / f"IM{i:04d}", enforce_file_format=True)
    return zs


def test_the_first_image_is_shown_at_once_and_kept_after_sorting(tmp_path, qtbot, monkeypatch):
    folder = tmp_path / "series"
    folder.mkdir()
    zs = _series(folder, 40)
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    shown = []
    real = window.show_series
    monkeypatch.setattr(window, "show_series", lambda series: (shown.append(list(series.frames)), real(series)))
    window.open_path(str(folder))
    qtbot.waitUntil(lambda: window.library is not None, timeout=30_000)
    [first_shown] = shown  # shown once, from the first file read, before the other 39 were
    assert [(i.path.name, f) for i, f in first_shown] == [("IM0000", 0)]
    viewer = window.series_viewer
    assert len(viewer.frames) == 40
    assert viewer.frames[viewer.position] == (folder / "IM0000", 0)  # still on screen, at its sorted place
    assert viewer.position == sorted(zs).index(zs[0])
    instances = [i for i, _ in window.current_series.frames]
    assert [i.position[2] for i in instances] == sorted(zs)
    assert instances[viewer.position].sop_uid == pydicom.dcmread(folder / "IM0000").SOPInstanceUID
    qtbot.waitUntil(lambda: viewer.shown is not None, timeout=10_000)
    viewer.go_to(0)  # scrolling works on the sorted series
    qtbot.waitUntil(lambda: viewer.position == 0 and viewer.shown is not None, timeout=10_000)
    window.close()
