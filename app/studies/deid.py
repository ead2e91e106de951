"""De-identification for DICOM files that leave the app: the Basic Application Level Confidentiality Profile of
DICOM PS3.15 Annex E, applied attribute by attribute from the standard's own table (`basic_profile`, Table E.1-1)
at every depth of nested sequences, and recorded in the dataset as the standard asks. Burned-in text in the pixels
is a separate risk that no header clean-up removes: `burned_in_warning` says when it must be checked by eye.

The table's compound actions depend on an attribute's type in each IOD, which a file does not say; they are
resolved so that the result is valid for every type: X/Z -> Z (empty, valid for types 2 and 3), X/D, Z/D and
X/Z/D -> D (a dummy value, valid for every type). Sequences: X/D and X/Z/D remove them (type 3 wherever they
occur), D cleans their items in place (Content Sequence, Graphic Annotation Sequence…), except Person
Identification Code Sequence, whose codes name a person and are replaced by one dummy code; X/Z/U* (Referenced
and Source Image Sequence) keeps the items with their UIDs replaced. Beyond the table: private attributes, curves
(groups 50xx) and overlays (groups 60xx) are removed whole, group lengths are dropped (they would be wrong), and
the file meta information is rebuilt from the cleaned dataset. Why this is the app's own code and not a library's:
docs/deidentification.md.
"""

from __future__ import annotations

import copy

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from .basic_profile import BASIC_PROFILE

PROFILE = "DICOM PS3.15 E.1 Basic Application Confidentiality Profile"  # LO: at most 64 characters
METHOD_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

# The action each table code resolves to (see the module's docstring).
_RESOLVED = {"X": "X", "Z": "Z", "D": "D", "U": "U", "X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D",
             "X/Z/U*": "U*"}
# The attributes whose value does not leave the app, by what happens to them (the tag browser masks them all).
REMOVE = frozenset(k for k, code in BASIC_PROFILE.items() if _RESOLVED[code] == "X")
EMPTY = frozenset(k for k, code in BASIC_PROFILE.items() if _RESOLVED[code] == "Z")
DUMMY = frozenset(k for k, code in BASIC_PROFILE.items() if _RESOLVED[code] == "D")
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y", "IS": "0", "DS": "0",
          "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0}
_BYTES = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}

# Modalities whose images often carry burned-in text when the header does not say otherwise.
BURNED_IN_MODALITIES = {"US", "SC", "XA", "RF", "ES", "OT", "SM", "DX", "CR", "MG", "IO", "PX", "GM", "XC"}


def action(keyword: str) -> str | None:
    """What the profile does to an attribute: X remove, Z empty, D dummy, U new UID, U* keep the sequence with
    its UIDs replaced; None for an attribute the profile keeps."""
    code = BASIC_PROFILE.get(keyword)
    return _RESOLVED[code] if code is not None else None


def replace_uid(uid: str, salt: str) -> str:
    """The same original UID always maps to the same new one for one salt, so series and references stay
    together; another salt (another export) gives other UIDs."""
    return generate_uid(entropy_srcs=[salt, str(uid)])


def deidentify(ds: Dataset, salt: str) -> Dataset:
    """A de-identified copy with its file meta rebuilt; the original is not changed. Pixel data is kept as it is."""
    out = copy.deepcopy(ds)
    _clean(out, salt)
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = PROFILE
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = METHOD_CODE
    out.DeidentificationMethodCodeSequence = Sequence([code])
    out.LongitudinalTemporalInformationModified = "REMOVED"  # dates emptied or replaced, not shifted
    out.file_meta = _file_meta(ds, out)
    if getattr(out, "preamble", None) is not None:
        out.preamble = bytes(128)  # a preamble can hold anything (a TIFF header and thumbnail, say)
    return out


def _clean(ds: Dataset, salt: str) -> None:
    for element in list(ds):
        tag = element.tag
        if tag.is_private or tag.element == 0 or 0x5000 <= tag.group <= 0x50FF or 0x6000 <= tag.group <= 0x60FF:
            del ds[tag]  # private attributes, group lengths, curves, overlays
            continue
        todo = action(element.keyword)
        if element.VR == "SQ":
            _clean_sequence(ds, element, todo, salt)
        elif todo == "X":
            del ds[tag]
        elif todo == "Z":
            element.value = b"" if element.VR in _BYTES else ""
        elif todo == "U" or (todo == "D" and element.VR == "UI"):
            if element.value:
                element.value = ([replace_uid(v, salt) for v in element.value] if element.VM > 1
                                 else replace_uid(element.value, salt))
        elif todo == "D":
            element.value = _dummy(element.VR)


def _clean_sequence(ds: Dataset, element, todo: str | None, salt: str) -> None:
    if todo == "X" or (todo == "D" and BASIC_PROFILE[element.keyword] != "D"):
        del ds[element.tag]
    elif todo == "Z":
        element.value = Sequence()
    elif element.keyword == "PersonIdentificationCodeSequence":
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "ANONYMIZED", "99HUATUO", "Anonymized"
        element.value = Sequence([code])
    else:  # kept (or D / U*): the items are cleaned in place
        for item in element.value:
            _clean(item, salt)


def _dummy(vr: str):
    if vr in _BYTES:
        return _DUMMY_TEXT.encode("ascii")
    return _DUMMY.get(vr, _DUMMY_TEXT)


def _file_meta(original: Dataset, cleaned: Dataset) -> FileMetaDataset:
    """New file meta information: only what Part 10 needs, with the new SOP Instance UID (the original's may
    name the sending application or station)."""
    if "SOPClassUID" not in cleaned or "SOPInstanceUID" not in cleaned:
        raise ValueError("no SOP Class or SOP Instance UID: not a DICOM instance that can be written as a file")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = cleaned.SOPClassUID
    meta.MediaStorageSOPInstanceUID = cleaned.SOPInstanceUID
    syntax = getattr(original, "file_meta", FileMetaDataset()).get("TransferSyntaxUID")
    if syntax is None:  # read without file meta: the encoding it was read in
        implicit, little = original.original_encoding
        syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    meta.TransferSyntaxUID = syntax
    return meta


def burned_in_warning(ds: Dataset) -> str | None:
    """A warning when the pixels may carry identifying text the header clean-up cannot remove."""
    flag = str(ds.get("BurnedInAnnotation", "")).upper()
    if flag == "YES":
        return "the image is marked as having burned-in annotation: check it for names or dates before sharing"
    if flag != "NO" and ds.get("Modality") in BURNED_IN_MODALITIES:
        return (f"{ds.get('Modality')} images often have text burned into the pixels and this file does not say "
                f"otherwise: check it before sharing")
    return None
