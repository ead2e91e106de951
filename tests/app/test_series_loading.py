"""A big folder opened in the window: its first image is on screen before the folder is read, and stays on screen
(the same instance) once the series is complete and sorted."""

from __future__ import annotations

from functools import partial

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from PySide6.QtCore import Qt

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


def test_the_strip_shows_the_scan_and_scrolling_works_on_what_is_read(tmp_path, qtbot, monkeypatch):
    """A snapshot after every file (instead of every half second): each one is seen in the strip and the viewer."""
    import app.opening
    from app.studies.scan import scan_progressively

    monkeypatch.setattr(app.opening, "scan_progressively", partial(scan_progressively, interval_s=0.0))
    folder = tmp_path / "series"
    folder.mkdir()
    n = 120
    zs = _series(folder, n)
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    strip, viewer = window.strip, window.series_viewer
    seen, chosen = [], []
    real = strip.show_scan

    def record(done, total):
        real(done, total)
        tile = strip.scan_tile
        seen.append((done, total, tile.label.text(), tile.bar.value(), tile.bar.maximum(), strip.count(),
                     len(viewer.frames)))
        if len(viewer.frames) >= n // 2 and not chosen:  # half read: the user scrolls to the last slice read
            viewer.go_to_last()
            chosen.append(viewer.frames[viewer.position])

    monkeypatch.setattr(strip, "show_scan", record)
    window.open_path(str(folder))
    qtbot.waitUntil(lambda: window.library is not None, timeout=60_000)

    assert seen[0] == (1, n, f"scanning 1 of {n}…", 1, n, 1, 1)  # the first image, and the scan in the strip
    assert all(count == 1 and text == f"scanning {done} of {n}…" and (value, maximum) == (done, n)
               for done, _, text, value, maximum, count, _ in seen)
    assert [done for done, *_ in seen] == sorted({done for done, *_ in seen})  # it only moves forward
    assert all(frames == done for done, *_, frames in seen)  # the viewer holds every image read so far
    assert seen[-1][0] >= n - 1
    # Once read: the sorted series replaces the scan, and the slice the user scrolled to is still on screen.
    assert strip.scan_tile is None and strip.count() == 1 and strip.item(0).text().endswith(f"{n} image(s)")
    assert strip.item(0).flags() & Qt.ItemFlag.ItemIsSelectable
    [on_screen] = chosen
    assert len(viewer.frames) == n and viewer.frames[viewer.position] == on_screen
    assert [i.position[2] for i, _ in window.current_series.frames] == sorted(zs)
    window.close()


def test_the_scan_tile_is_not_a_series_and_gives_way_to_the_sorted_series(tmp_path, qtbot):
    from app.studies.scan import scan
    from app.ui.series_strip import SeriesStrip

    folder = tmp_path / "series"
    folder.mkdir()
    _series(folder, 3)
    strip = SeriesStrip()
    qtbot.addWidget(strip)
    strip.set_series(scan([get_testdata_file("CT_small.dcm")]).all_series())  # an earlier study
    chosen = []
    strip.series_chosen.connect(chosen.append)
    strip.show_scan(240, 1024)
    strip.show_scan(512, 1024)
    tile = strip.scan_tile
    assert strip.count() == 1 and tile.label.text() == "scanning 512 of 1024…"
    assert (tile.bar.value(), tile.bar.maximum()) == (512, 1024)
    assert not strip.item(0).flags() & (Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
    strip.setCurrentRow(0)
    assert chosen == []  # nothing to open: the earlier study's series are gone, the tile is none
    [series] = scan([folder]).all_series()
    strip.set_series([series])
    assert strip.scan_tile is None and strip.count() == 1 and strip.item(0).text().endswith("3 image(s)")
    strip.setCurrentRow(0)
    assert chosen == [series]


def test_only_the_newest_opening_reaches_the_window(tmp_path, qtbot):
    """A folder still being read when a file is opened: whichever ends first, the file is what stays open."""
    folder = tmp_path / "series"
    folder.mkdir()
    _series(folder, 60)
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    reading = window.open_path(str(folder))
    single = get_testdata_file("MR_small.dcm")
    opened = window.open_path(single)
    qtbot.waitUntil(lambda: reading.finished and opened.finished, timeout=60_000)
    assert window.current_path == single
    assert [s.modality for s in window.library.all_series()] == ["MR"]  # not the CT folder read meanwhile
    assert [(str(path), frame) for path, frame in window.series_viewer.frames] == [(single, 0)]
    window.close()


def test_a_series_chosen_while_the_folder_is_read_stays_on_screen(tmp_path, qtbot, monkeypatch):
    import app.opening
    from app.studies.scan import scan_progressively

    folder = tmp_path / "study"
    folder.mkdir()
    _series(folder, 20)
    other = folder / "other"
    other.mkdir()
    _series(other, 20)
    # A snapshot after every file, so that the second series is on offer before the folder is read.
    monkeypatch.setattr(app.opening, "scan_progressively", partial(scan_progressively, interval_s=0.0))
    window = MainWindow(Settings.load())
    qtbot.addWidget(window)
    window.show()
    chosen = []

    def choose_the_other_series(part):
        if not chosen:
            ready = [s for s in part.library.all_series() if s.is_image and s.uid != window._opening[1]]
            if ready:
                chosen.append(ready[0].uid)
                window.show_series(ready[0])  # as a click in the strip does

    window.open_path(str(folder)).progress.connect(choose_the_other_series)
    qtbot.waitUntil(lambda: window.library is not None, timeout=60_000)
    assert chosen and window.current_series.uid == chosen[0]
    window.close()
