"""Every DICOM file shipped with pydicom and pydicom-data opens, or fails with a clear, named error."""

import warnings
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file, get_testdata_files

from app.studies.frames import PixelDecodeError
from app.studies.scan import scan
from app.studies.view import FrameRenderer

# file -> what the error must say. Nothing else may fail.
EXPECTED_FAILURES = {
    "JPEG-lossy.dcm": "no installed decoder can read JPEG Extended",  # 12-bit: only a GPL decoder reads it
    "JPGExtended.dcm": "no installed decoder can read JPEG Extended",
    "JPEG2000-embedded-sequence-delimiter.dcm": "no installed decoder can read JPEG 2000",  # malformed stream
    "MR_truncated.dcm": "truncated or damaged",
    "badVR.dcm": "invalid Number of Frames",
}


def _corpus() -> list[Path]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # offline: pydicom warns that it cannot download more files
        files = get_testdata_files("*")
    return sorted(p for p in map(Path, files) if p.is_file() and p.suffix not in (".py", ".json", ".txt", ".dump"))


CORPUS = _corpus()


def test_the_corpus_is_there():
    assert len(CORPUS) > 120, "pydicom-data is part of the dev extras"
    assert get_testdata_file("RG1_UNCI.dcm") is not None  # a pydicom-data file


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_each_file_opens_or_fails_clearly(path):
    library = scan([path])
    renderer = FrameRenderer()
    if library.skipped:  # unreadable as a whole: reported with its reason
        (skipped, reason), = library.skipped
        assert path.name in EXPECTED_FAILURES, f"unexpected failure: {reason}"
        assert EXPECTED_FAILURES[path.name] in reason
        return
    series = list(library.all_series())
    if not series or not series[0].is_image:
        for s in series:  # listed and explained, not crashed on
            assert all(i.kind for i in s.instances)
        assert path.name not in EXPECTED_FAILURES
        return
    try:
        pixels = renderer.pixels(path, 0)
    except PixelDecodeError as exc:
        assert path.name in EXPECTED_FAILURES, f"unexpected failure: {exc}"
        assert EXPECTED_FAILURES[path.name] in str(exc) and path.name in str(exc)
        return
    assert path.name not in EXPECTED_FAILURES, "now decodes: remove it from the expected failures"
    assert pixels.dtype.name == "uint8" and pixels.ndim in (2, 3) and pixels.size > 0


def test_non_image_objects_are_explained():
    library = scan([get_testdata_file("rtplan.dcm"), get_testdata_file("test-SR.dcm"),
                    get_testdata_file("waveform_ecg.dcm")])
    kinds = sorted(i.kind for s in library.all_series() for i in s.instances)
    assert kinds == ["12-lead ECG Waveform Storage", "Comprehensive SR Storage", "RT Plan Storage"]
    assert not any(s.is_image for s in library.all_series())
