"""Grouping, slice order, lazy frames, the view transform and `huatuo render`."""

import subprocess
import sys

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from app.studies.frames import FrameCache
from app.studies.scan import scan
from app.studies.view import FrameRenderer, ViewState, orient


def _write_series(folder, positions, numbers, name="slice"):
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid = generate_uid()
    paths = []
    for i, (z, number) in enumerate(zip(positions, numbers, strict=True)):
        ds = base.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.ImagePositionPatient = [0, 0, z] if z is not None else None
        if z is None:
            del ds.ImagePositionPatient
        ds.InstanceNumber = number
        path = folder / f"{name}{i}"  # no extension: detected by content
        ds.save_as(path)
        paths.append(path)
    return paths


def test_slices_sort_along_the_normal(tmp_path):
    _write_series(tmp_path, [30.0, -10.0, 10.0], [1, 2, 3])
    (tmp_path / "notes.txt").write_text("not dicom")
    library = scan([tmp_path])
    (series,) = list(library.all_series())
    assert [i.position[2] for i in series.instances] == [-10.0, 10.0, 30.0]


def test_a_folder_is_searched_recursively(tmp_path):
    deep = tmp_path / "patient" / "study" / "series"
    deep.mkdir(parents=True)
    paths = _write_series(deep, [20.0, 0.0, 10.0], [1, 2, 3])  # one series, spread over two levels
    paths[2].rename(tmp_path / "patient" / "top")
    (series,) = list(scan([tmp_path]).all_series())
    assert [i.position[2] for i in series.instances] == [0.0, 10.0, 20.0]
    assert {i.path.parent for i in series.instances} == {deep, tmp_path / "patient"}


def test_instance_number_is_the_fallback(tmp_path):
    _write_series(tmp_path, [None, None, None], [3, 1, 2])
    (series,) = list(scan([tmp_path]).all_series())
    assert [i.instance_number for i in series.instances] == [1, 2, 3]


def test_dicomdir_groups_patients_and_studies():
    library = scan([get_testdata_file("DICOMDIR")])
    assert len(library.patients) >= 2
    assert sum(len(s.instances) for s in library.all_series()) > 10


def test_multiframe_frames_decode_one_at_a_time():
    path = get_testdata_file("examples_ybr_color.dcm")  # 30 frames
    cache = FrameCache(max_bytes=3 * 240 * 320 * 3)
    renderer = FrameRenderer(cache)
    first = renderer.pixels(path, 0)
    for frame in range(10):
        renderer.pixels(path, frame)
    assert cache.nbytes <= 3 * 240 * 320 * 3  # bounded, not the whole file
    assert first.shape == (240, 320, 3)
    with pytest.raises(IndexError, match="30 frame"):
        renderer.pixels(path, 30)


def test_view_transform_order():
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert orient(pixels, ViewState(rotation=90)).tolist() == [[3, 0], [4, 1], [5, 2]]
    assert orient(pixels, ViewState(flip_horizontal=True)).tolist() == [[2, 1, 0], [5, 4, 3]]
    assert orient(pixels, ViewState(region=(1, 0, 3, 1))).tolist() == [[1, 2]]


def _render(*args):
    return subprocess.run([sys.executable, "-m", "app", "render", *args], capture_output=True, text=True, timeout=120)


def test_render_command(tmp_path):
    ct = get_testdata_file("CT_small.dcm")
    out = tmp_path / "ct.png"
    assert _render(ct, "--out", str(out), "--preset", "lung").returncode == 0
    lung = np.asarray(Image.open(out))
    assert _render(ct, "--out", str(out), "--window=-600,1500").returncode == 0
    assert np.array_equal(lung, np.asarray(Image.open(out)))
    assert _render(ct, "--out", str(out)).returncode == 0  # no window in the file: the CT default
    assert np.array_equal(np.asarray(Image.open(out)), FrameRenderer().pixels(ct, 0, ViewState()))
    refused = _render(get_testdata_file("MR_small.dcm"), "--out", str(out), "--preset", "brain")
    assert refused.returncode == 2 and "CT" in refused.stderr
    missing = _render(ct, "--out", str(out), "--frame", "5")
    assert missing.returncode == 1 and "frame 5 does not exist" in missing.stderr
    broken = _render(get_testdata_file("MR_truncated.dcm"), "--out", str(out))
    assert broken.returncode == 1 and "truncated" in broken.stderr


def test_a_folder_is_read_progressively_first_image_at_once(tmp_path):
    from app.studies.scan import scan_progressively

    (tmp_path / "notes.txt").write_text("not dicom")  # listed first, not an image
    positions = [float(z) for z in (40, -20, 0, 60, 20, -40, 80, -60)]
    paths = _write_series(tmp_path, positions, range(1, 9))
    stages = scan_progressively([tmp_path], interval_s=0.0)  # a snapshot before every file after the first image
    parts = []
    while True:
        try:
            parts.append(next(stages))
        except StopIteration as end:
            library = end.value
            break
    first = parts[0]
    (series,) = list(first.library.all_series())
    assert [i.path for i in series.instances] == [paths[0]]  # the first image read, before the others
    assert first.total == 9 and first.done == 2
    assert [len(next(p.library.all_series()).instances) for p in parts] == list(range(1, 8))  # read so far
    for part in parts:
        zs = [i.position[2] for i in next(part.library.all_series()).instances]
        assert zs == sorted(zs)
    (whole,) = list(library.all_series())
    assert [i.position[2] for i in whole.instances] == sorted(positions)
    assert len({i.sop_uid for i in whole.instances}) == 8 and all(i.sop_uid for i in whole.instances)
    assert scan([tmp_path]).patients.keys() == library.patients.keys()
