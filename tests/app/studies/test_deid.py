"""PS3.15 Annex E basic profile on real files: identifiers gone, UIDs replaced consistently, recorded."""

import pydicom
from pydicom.data import get_testdata_file

from app.studies.deid import PROFILE, burned_in_warning, deidentify


def test_identifiers_are_removed_and_the_removal_recorded():
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert str(original.PatientName) and original.InstitutionName
    clean = deidentify(original, salt="site-secret")
    assert clean.PatientName == "" and clean.PatientID == "" and "PatientBirthDate" in clean
    assert "InstitutionName" not in clean and "StudyDescription" not in clean
    assert not any(e.tag.is_private for e in clean.iterall())
    assert clean.PatientIdentityRemoved == "YES" and clean.DeidentificationMethod == PROFILE
    assert clean.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert str(original.PatientName)  # the original is untouched
    assert (clean.pixel_array == original.pixel_array).all()  # pixels are kept


def test_uids_map_consistently():
    a = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    b = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    b.SOPInstanceUID = pydicom.uid.generate_uid()
    clean_a, clean_b = deidentify(a, "s"), deidentify(b, "s")
    assert clean_a.StudyInstanceUID == clean_b.StudyInstanceUID != a.StudyInstanceUID
    assert clean_a.SOPInstanceUID != clean_b.SOPInstanceUID
    assert deidentify(a, "other").StudyInstanceUID != clean_a.StudyInstanceUID  # salted


def test_every_listed_attribute_is_handled_at_every_depth():
    from app.studies.deid import EMPTY, REMOVE

    for name in ("rtplan.dcm", "CT_small.dcm", "MR_small.dcm", "test-SR.dcm"):
        clean = deidentify(pydicom.dcmread(get_testdata_file(name)), "s")
        for element in clean.iterall():
            assert element.keyword not in REMOVE, (name, element.keyword)
            if element.keyword in EMPTY:
                assert element.value in ("", None) or not len(element.value), (name, element.keyword)


def test_burned_in_annotation_warning():
    us = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"), stop_before_pixels=True)
    assert us.Modality == "US" and burned_in_warning(us)
    us.BurnedInAnnotation = "NO"
    assert burned_in_warning(us) is None
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    assert burned_in_warning(ct) is None
