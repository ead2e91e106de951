"""A teaching case's DICOM files against the standard (pydicom and pydicom-data files with planted identifiers):
they keep no value that the PS3.15 Annex E basic profile removes or replaces (checked against the standard's table
as written in tests/support/teaching_study.py, not against the code under test), their pixel data is unchanged,
they are valid (pydicom reads them back as Part 10 files, dcmtk's dcmdump reads them without error), and their UIDs
are remapped consistently within one export and differently across exports."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, validate_file_meta

from app.teaching_case import export_case, plan_case
from tests.support.teaching_study import STANDARD_TABLE, TABLE, TOKEN, exported, frame_of


def problem(code: str, original, kept) -> str | None:
    """Why an exported attribute breaks the table's action, or None. `kept` is None when it was removed."""
    allowed = set(code.rstrip("*").split("/"))
    if kept is None:
        return None if "X" in allowed else "removed, which its action does not allow"
    value = kept.value
    if value in (None, "", b"") or (kept.VR == "SQ" and len(value) == 0):
        return None if "Z" in allowed else "emptied, which its action does not allow"
    if kept.VR == "SQ":
        return None if ("D" in allowed or code.endswith("*")) else "kept"  # items are checked one by one
    if str(value) == str(original.value):
        return "kept its original value"
    return None if allowed & {"D", "U"} else f"replaced, which {code} does not allow"


def compare(original: Dataset, clean: Dataset, where: str, failures: list[str]) -> None:
    for element in original:
        tag = int(element.tag)
        kept = clean[tag] if tag in clean else None
        if tag in TABLE and element.value not in (None, "", b""):
            reason = problem(TABLE[tag], element, kept)
            if reason:
                failures.append(f"{where} {element.keyword or element.tag}: {reason}")
        if element.VR == "SQ" and kept is not None and kept.VR == "SQ":
            for i, (a, b) in enumerate(zip(element.value, kept.value, strict=False)):
                compare(a, b, f"{where} {element.keyword}[{i}]", failures)


def uid_pairs(original: Dataset, clean: Dataset, out: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(original, exported) of every UID the table replaces, at every depth the export kept."""
    for element in original:
        tag = int(element.tag)
        if tag not in clean:
            continue
        if element.VR == "SQ":
            for a, b in zip(element.value, clean[tag].value, strict=False):
                uid_pairs(a, b, out)
        elif TABLE.get(tag) == "U" and element.value:
            out.append((str(element.value), str(clean[tag].value)))
    return out


def test_a_teaching_case_keeps_nothing_the_basic_profile_removes_or_replaces(tmp_path, conversation, study):
    conv, sources = conversation
    plan = plan_case(conv, sources)
    assert [image.source.path for image in plan.images] == study and not plan.png_images
    folder = export_case(conv, plan, tmp_path / "case one")
    files = exported(folder)
    assert sorted(files) == sorted(plan.dicom_files.values()) and len(files) == len(study)
    failures: list[str] = []
    for source, name in plan.dicom_files.items():
        original, clean = pydicom.dcmread(source), files[name]
        compare(original, clean, name, failures)
        compare(original.file_meta, clean.file_meta, f"{name} file meta", failures)
        assert not any(e.tag.is_private for e in clean.iterall()), name
        assert not any(0x5000 <= e.tag.group <= 0x50FF or 0x6000 <= e.tag.group <= 0x60FF for e in clean), name
        assert clean.PatientIdentityRemoved == "YES", name
        method = clean.DeidentificationMethodCodeSequence[0]
        assert (method.CodeValue, method.CodingSchemeDesignator) == ("113100", "DCM"), name
        raw = (folder / "dicom" / name).read_bytes()
        raw = raw[:raw.index(b"\xe0\x7f\x10\x00")]  # the header: everything before the pixel data
        assert TOKEN.encode() not in raw, name
        for text in (str(original.PatientName), original.PatientID, original.StudyInstanceUID,
                     original.SOPInstanceUID):
            assert len(text) < 6 or text.encode() not in raw, (name, text)  # short ones occur in other words
        assert raw[:128] == bytes(128), name  # the preamble too (MR_small's carries a TIFF header)
        # Pixel data unchanged: the stored bytes (compressed or not) and the decoded frame.
        assert clean.PixelData == original.PixelData, name
        frame = frame_of(source)
        assert np.array_equal(pydicom.pixels.pixel_array(clean, index=frame),
                              pydicom.pixels.pixel_array(original, index=frame)), name
    assert not failures, "\n".join(failures)


def test_exported_files_are_valid_part_10_files(tmp_path, conversation):
    conv, sources = conversation
    folder = export_case(conv, plan_case(conv, sources), tmp_path / "case")
    for path in sorted((folder / "dicom").glob("*.dcm")):
        ds = pydicom.dcmread(path)  # not forced: a Part 10 preamble and file meta are required
        validate_file_meta(ds.file_meta, enforce_standard=True)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        if shutil.which("dcmdump") is None:
            pytest.skip("dcmtk's dcmdump is not installed")
        dump = subprocess.run(["dcmdump", "-q", str(path)], capture_output=True, timeout=60)
        assert dump.returncode == 0 and not dump.stderr, (path.name, dump.stderr[:400])


def test_uids_are_remapped_consistently_within_an_export_and_differently_across_exports(tmp_path, conversation):
    conv, sources = conversation
    plan = plan_case(conv, sources)
    first = exported(export_case(conv, plan, tmp_path / "first"))
    second = exported(export_case(conv, plan, tmp_path / "second"))
    mapping: dict[str, set[str]] = {}
    for source, name in plan.dicom_files.items():
        original, clean = pydicom.dcmread(source), first[name]
        pairs = uid_pairs(original, clean, []) + uid_pairs(original.file_meta, clean.file_meta, [])
        assert len(pairs) >= 5, name  # study, series, instance, frame of reference, media storage instance
        for old, new in pairs:
            assert new != old, (name, old)
            mapping.setdefault(old, set()).add(new)
        assert second[name].StudyInstanceUID != clean.StudyInstanceUID  # another export, other UIDs
        assert second[name].SOPInstanceUID != clean.SOPInstanceUID
    assert all(len(new) == 1 for new in mapping.values())  # the same original always became the same new UID
    news = [next(iter(new)) for new in mapping.values()]
    assert len(set(news)) == len(news)  # different originals stay different
    ct, ct2 = first["IM0001.dcm"], first["IM0006.dcm"]
    assert ct.StudyInstanceUID == ct2.StudyInstanceUID and ct.SeriesInstanceUID == ct2.SeriesInstanceUID
    assert ct.SOPInstanceUID != ct2.SOPInstanceUID
    assert ct2.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID  # the reference still holds


def test_the_apps_profile_table_says_what_the_standard_says():
    from pydicom.datadict import keyword_for_tag

    from app.studies.basic_profile import BASIC_PROFILE

    assert {keyword_for_tag(tag): code for tag, code in STANDARD_TABLE} == {
        keyword_for_tag(tag): BASIC_PROFILE.get(keyword_for_tag(tag)) for tag, _ in STANDARD_TABLE}
