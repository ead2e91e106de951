"""Pixel probe in HU, lengths in mm (or labelled pixels), ellipse statistics against values worked out by hand, and
the exact inverse of the view transform."""

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from app.studies.measure import length, probe
from app.studies.view import ViewState, orient, shown_to_source


def test_probe_reads_hounsfield_units():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    frame = ds.pixel_array
    expected = frame[10, 20] * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert probe(frame, ds, 10, 20) == f"{expected:.0f} HU"


def test_length_in_mm_and_uncalibrated():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    spacing = float(ds.PixelSpacing[0])
    assert length(ds, (0, 0), (0, 100)) == f"{100 * float(ds.PixelSpacing[1]):.1f} mm"
    del ds.PixelSpacing
    assert length(ds, (0, 0), (3, 4)) == "5.0 px (uncalibrated)"
    assert spacing > 0


def test_shown_to_source_inverts_every_view():
    source = np.arange(12).reshape(3, 4)
    for rotation in (0, 90, 180, 270):
        for flip_h in (False, True):
            view = ViewState(rotation=rotation, flip_horizontal=flip_h, flip_vertical=not flip_h)
            shown = orient(source, view)
            for r in range(shown.shape[0]):
                for c in range(shown.shape[1]):
                    sr, sc = shown_to_source(c + 0.5, r + 0.5, source.shape, view)
                    assert source[sr, sc] == shown[r, c]
    assert shown_to_source(-1, 0, source.shape, ViewState()) is None


def _synthetic_ct(rows=6, cols=6):
    """A CT frame whose value at (r, c) is 10 r + c HU (stored 1000 + 10 r + c, intercept -1000)."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Modality, ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "CT", 1, -1000, "HU"
    ds.PixelSpacing = [0.5, 0.8]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsStored, ds.PixelRepresentation = 16, 0
    r, c = np.mgrid[0:rows, 0:cols]
    return (1000 + 10 * r + c).astype(np.uint16), ds


def test_ellipse_statistics_equal_hand_computed_values():
    from app.studies.measure import describe_roi, ellipse_mask, ellipse_stats

    frame, ds = _synthetic_ct()
    # Centre (3, 3), radii 2 rows x 1.5 columns: pixel centres are 0.5 off the grid, so a pixel is inside when
    # (dr / 2)^2 + (dc / 1.5)^2 <= 1: dr in {±0.5, ±1.5} with dc in {±0.5} -> rows 1-4, columns 2-3 (8 pixels).
    mask = ellipse_mask(frame.shape, (3, 3), (2, 1.5))
    assert [tuple(p) for p in np.argwhere(mask)] == [(r, c) for r in (1, 2, 3, 4) for c in (2, 3)]
    stats = ellipse_stats(frame, ds, (3, 3), (2, 1.5))
    # Values 12 13 22 23 32 33 42 43 HU: mean 220 / 8 = 27.5; squared deviations 240.25 + 210.25 + 30.25 +
    # 20.25 (twice each) = 1002, / 8 = 125.25, SD = 11.1915; area pi * 2 * 1.5 px * 0.5 * 0.8 mm = 3.7699 mm².
    assert stats.pixels == 8 and stats.unit == " HU"
    assert stats.mean == pytest.approx(27.5)
    assert stats.sd == pytest.approx(11.19151, abs=1e-5)
    assert stats.area_mm2 == pytest.approx(3.76991, abs=1e-5)
    assert describe_roi(stats) == "mean 27.5 HU  SD 11.2 HU  min 12 HU  max 43 HU  area 3.8 mm²"
    del ds.PixelSpacing
    assert describe_roi(ellipse_stats(frame, ds, (3, 3), (2, 1.5))).endswith("area 9 px² (uncalibrated)")
    assert ellipse_stats(frame, ds, (3, 3), (0.1, 0.1)) is None  # no pixel centre inside


def test_ellipse_statistics_of_a_real_ct_match_the_pixels():
    from app.studies.measure import ellipse_stats

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    frame = ds.pixel_array
    stats = ellipse_stats(frame, ds, (64, 64), (0.75, 0.75))  # the four pixels around (64, 64)
    expected = frame[63:65, 63:65].astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    inside = [expected[r, c] for r in (0, 1) for c in (0, 1)
              if ((r + 63.5 - 64) / 0.75) ** 2 + ((c + 63.5 - 64) / 0.75) ** 2 <= 1]
    assert stats.pixels == len(inside) == 4 and stats.mean == pytest.approx(np.mean(inside))


def test_continuous_map_follows_every_view_and_inverts():
    from app.studies.measure import shown_to_source_point, source_to_shown

    shape = (3, 4)
    for rotation in (0, 90, 180, 270):
        for flip_h in (False, True):
            for flip_v in (False, True):
                view = ViewState(rotation=rotation, flip_horizontal=flip_h, flip_vertical=flip_v)
                for r in range(shape[0]):
                    for c in range(shape[1]):
                        x, y = source_to_shown(r + 0.5, c + 0.5, shape, view)
                        assert shown_to_source(x, y, shape, view) == (r, c)  # the discrete map agrees
                        assert shown_to_source_point(x, y, shape, view) == pytest.approx((r + 0.5, c + 0.5))
                assert shown_to_source_point(*source_to_shown(-1.25, 7.5, shape, view), shape, view) == \
                    pytest.approx((-1.25, 7.5))
