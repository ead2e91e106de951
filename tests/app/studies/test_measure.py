"""Pixel probe in HU, lengths in mm (or labelled pixels), and the exact inverse of the view transform."""

import numpy as np
import pydicom
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
