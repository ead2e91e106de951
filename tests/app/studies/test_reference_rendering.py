"""Rendering checked against an independent toolkit (dcmtk's dcmj2pnm), within one grey level."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from app.studies.pixels import Window
from app.studies.view import FrameRenderer, ViewState

pytestmark = pytest.mark.skipif(shutil.which("dcmj2pnm") is None,
                                reason="dcmtk, the independent reference renderer, is not installed (apt dcmtk)")

CASES = [  # file, dcmj2pnm window options, our window (None: the file's own)
    ("CT_small.dcm", ["+Ww", "40", "400"], Window(40, 400)),  # HU window on a rescaled CT
    ("CT_small.dcm", ["+Ww", "-600", "1500"], Window(-600, 1500)),
    ("mlut_18.dcm", ["+Ww", "2000", "3000"], Window(2000, 3000)),  # a Modality LUT Sequence, not a rescale
    ("MR_small.dcm", ["+Wi", "1"], None),  # the file's own window
    ("MR_small_RLE.dcm", ["+Wi", "1"], None),  # compressed
    ("RG1_UNCI.dcm", ["+Wi", "1"], None),  # MONOCHROME1
    ("RG1_UNCR.dcm", ["+Wi", "1"], None),
    ("RG3_UNCI.dcm", ["+Wi", "1"], None),
    ("vlut_04.dcm", ["+Wl", "1"], None),  # VOI LUT
    ("OBXXXX1A.dcm", [], None),  # palette colour
    ("examples_ybr_color.dcm", [], None),  # YBR_FULL_422, converted once
    ("SC_rgb.dcm", [], None),
]


@pytest.mark.parametrize("name,options,window", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_matches_dcmtk(tmp_path, name, options, window):
    path = Path(get_testdata_file(name))
    reference_png = tmp_path / "ref.png"
    subprocess.run(["dcmj2pnm", "+on", *options, str(path), str(reference_png)], check=True, capture_output=True)
    reference = np.asarray(Image.open(reference_png)).astype(int)
    ours = FrameRenderer().pixels(path, 0, ViewState(window=window)).astype(int)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 1


def test_presentation_lut_shape_inverse_matches_dcmtk(tmp_path):
    """A MONOCHROME2 image whose Presentation LUT Shape is INVERSE is shown inverted, as dcmtk shows it."""
    import pydicom

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PresentationLUTShape = "INVERSE"
    path = tmp_path / "inverse.dcm"
    ds.save_as(path)
    reference_png = tmp_path / "ref.png"
    subprocess.run(["dcmj2pnm", "+on", "+Wi", "1", str(path), str(reference_png)], check=True, capture_output=True)
    reference = np.asarray(Image.open(reference_png)).astype(int)
    ours = FrameRenderer().pixels(path, 0, ViewState()).astype(int)
    assert np.abs(ours - reference).max() <= 1
    plain = FrameRenderer().pixels(Path(get_testdata_file("MR_small.dcm")), 0, ViewState()).astype(int)
    assert np.abs(ours - (255 - plain)).max() <= 1  # inverted, once


def test_a_linear_window_one_value_wide_is_the_standards_step_without_a_division_by_zero():
    """PS3.3 C.11.2.1.2.1 at width 1: values up to c - 0.5 are black, above it white (the formula's w - 1 is 0)."""
    from app.studies.pixels import apply_window

    values = np.array([98.0, 99.5, 99.6, 100.0, 140.0])
    with np.errstate(all="raise"):  # a division by zero, or a NaN from 0/0, fails here
        out = apply_window(values, Window(100.0, 1.0))
    assert out.tolist() == [0.0, 0.0, 255.0, 255.0, 255.0]
