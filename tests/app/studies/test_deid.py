"""PS3.15 Annex E basic profile on real files: identifiers gone, UIDs replaced consistently, recorded."""

import pydicom
from pydicom.data import get_testdata_file

from app.studies.deid import PROFILE, burned_in_warning, deidentify


def test_identifiers_are_removed_and_the_removal_recorded():
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert str(original.PatientName) and original.PatientID and original.InstitutionName
    clean = deidentify(original, salt="site-secret")
    # Z: emptied; Z/D and X/Z/D: a dummy (valid whatever the attribute's type in the IOD); X: removed.
    assert clean.PatientName == "" and clean.PatientBirthDate == "" and "PatientBirthDate" in clean
    assert clean.PatientID == clean.InstitutionName == "ANONYMIZED" != original.PatientID
    assert "StudyDescription" not in clean and "PatientAge" not in clean
    assert not any(e.tag.is_private for e in clean.iterall())
    assert clean.PatientIdentityRemoved == "YES" and clean.DeidentificationMethod == PROFILE and len(PROFILE) <= 64
    code = clean.DeidentificationMethodCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert clean.LongitudinalTemporalInformationModified == "REMOVED"
    assert clean.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID != original.SOPInstanceUID
    assert clean.preamble == bytes(128)
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
    from app.studies.deid import DUMMY, EMPTY, REMOVE

    for name in ("rtplan.dcm", "CT_small.dcm", "MR_small.dcm", "test-SR.dcm", "examples_overlay.dcm"):
        original = pydicom.dcmread(get_testdata_file(name))
        clean = deidentify(original, "s")
        for element in clean.iterall():
            assert element.keyword not in REMOVE, (name, element.keyword)
            if element.keyword in EMPTY:
                assert element.value in ("", None) or not len(element.value), (name, element.keyword)
            if element.keyword in DUMMY and element.VR not in ("SQ", "UI"):
                assert element.value in ("ANONYMIZED", b"ANONYMIZED", "19000101", "19000101000000", "000000"), \
                    (name, element.keyword)
            assert not 0x6000 <= element.tag.group <= 0x60FF, (name, "overlay left")  # overlays removed
        assert any(0x6000 <= e.tag.group <= 0x60FF for e in original) or name != "examples_overlay.dcm"


def test_burned_in_annotation_warning():
    us = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"), stop_before_pixels=True)
    assert us.Modality == "US" and burned_in_warning(us)
    us.BurnedInAnnotation = "NO"
    assert burned_in_warning(us) is None
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    assert burned_in_warning(ct) is None
