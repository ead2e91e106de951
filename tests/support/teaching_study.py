"""A study of real DICOM files (pydicom and pydicom-data) with identifiers planted in every attribute the PS3.15
Annex E basic profile names, and a stored conversation whose images are views of it: what the teaching-case tests
export. The table below is written from the standard, not taken from the code under test.

tests/app/conftest.py makes its fixtures `study` and `conversation` available to the app's tests.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from app.store import Store
from app.studies.view import FrameRenderer, to_png
from app.teaching_case import AttachedSources

# DICOM PS3.15 Table E.1-1, Basic Profile column, for the attributes these tests plant or the files carry:
# (tag, action). X remove, Z empty, D non-empty dummy, U new UID consistent within the set; a compound code
# allows any of its actions; X/Z/U* keeps a sequence whose UIDs are replaced.
STANDARD_TABLE = [
    (0x00080050, "Z"),  # Accession Number
    (0x00184000, "X"),  # Acquisition Comments
    (0x00080022, "X/Z"),  # Acquisition Date
    (0x0008002A, "X/Z/D"),  # Acquisition DateTime
    (0x00080032, "X/Z"),  # Acquisition Time
    (0x00181400, "X/D"),  # Acquisition Device Processing Description
    (0x001021B0, "X"),  # Additional Patient History
    (0x00380010, "X"),  # Admission ID
    (0x00081080, "X"),  # Admitting Diagnoses Description
    (0x00102110, "X"),  # Allergies
    (0x00101081, "X"),  # Branch of Service
    (0x00180010, "Z/D"),  # Contrast/Bolus Agent
    (0x00080023, "Z/D"),  # Content Date
    (0x00080033, "Z/D"),  # Content Time
    (0x0008009C, "Z"),  # Consulting Physician's Name
    (0x00102150, "X"),  # Country of Residence
    (0x00380300, "X"),  # Current Patient Location
    (0x00080025, "X"),  # Curve Date
    (0x00080035, "X"),  # Curve Time
    (0x00082111, "X"),  # Derivation Description
    (0x0018700A, "X/D"),  # Detector ID
    (0x00181000, "X/Z/D"),  # Device Serial Number
    (0x00181002, "U"),  # Device UID
    (0x00380040, "X"),  # Discharge Diagnosis Description
    (0x00102160, "X"),  # Ethnic Group
    (0x00200052, "U"),  # Frame of Reference UID
    (0x00204000, "X"),  # Image Comments
    (0x00080012, "X/D"),  # Instance Creation Date
    (0x00080013, "X/Z/D"),  # Instance Creation Time
    (0x00080014, "U"),  # Instance Creator UID
    (0x00080081, "X"),  # Institution Address
    (0x00080080, "X/Z/D"),  # Institution Name
    (0x00081040, "X"),  # Institutional Department Name
    (0x00083010, "U"),  # Irradiation Event UID
    (0x00100021, "X"),  # Issuer of Patient ID
    (0x001021D0, "X"),  # Last Menstrual Date
    (0x00102000, "X"),  # Medical Alerts
    (0x00101090, "X"),  # Medical Record Locator
    (0x00101080, "X"),  # Military Rank
    (0x00081060, "X"),  # Name of Physician(s) Reading Study
    (0x00102180, "X"),  # Occupation
    (0x00081070, "X/Z/D"),  # Operators' Name
    (0x00101000, "X"),  # Other Patient IDs
    (0x00101001, "X"),  # Other Patient Names
    (0x00101002, "X"),  # Other Patient IDs Sequence
    (0x00080024, "X"),  # Overlay Date
    (0x00080034, "X"),  # Overlay Time
    (0x00101040, "X"),  # Patient's Address
    (0x00101010, "X"),  # Patient's Age
    (0x00100030, "Z"),  # Patient's Birth Date
    (0x00101005, "X"),  # Patient's Birth Name
    (0x00100032, "X"),  # Patient's Birth Time
    (0x00101060, "X"),  # Patient's Mother's Birth Name
    (0x00100010, "Z"),  # Patient's Name
    (0x001021F0, "X"),  # Patient's Religious Preference
    (0x00100040, "Z"),  # Patient's Sex
    (0x00101020, "X"),  # Patient's Size
    (0x00102154, "X"),  # Patient's Telephone Numbers
    (0x00101030, "X"),  # Patient's Weight
    (0x00104000, "X"),  # Patient Comments
    (0x00100020, "Z/D"),  # Patient ID
    (0x00380500, "X"),  # Patient State
    (0x00400254, "X"),  # Performed Procedure Step Description
    (0x00400253, "X"),  # Performed Procedure Step ID
    (0x00400244, "X"),  # Performed Procedure Step Start Date
    (0x00400245, "X"),  # Performed Procedure Step Start Time
    (0x00081050, "X"),  # Performing Physician's Name
    (0x0040A123, "D"),  # Person Name
    (0x00081048, "X"),  # Physician(s) of Record
    (0x001021C0, "X"),  # Pregnancy Status
    (0x00181030, "X/D"),  # Protocol Name
    (0x00321030, "X"),  # Reason for Study
    (0x00081120, "X"),  # Referenced Patient Sequence
    (0x00081155, "U"),  # Referenced SOP Instance UID
    (0x00081110, "X/Z"),  # Referenced Study Sequence
    (0x00080092, "X"),  # Referring Physician's Address
    (0x00080090, "Z"),  # Referring Physician's Name
    (0x00080094, "X"),  # Referring Physician's Telephone Numbers
    (0x00102152, "X"),  # Region of Residence
    (0x00400275, "X"),  # Request Attributes Sequence
    (0x00321060, "X/Z"),  # Requested Procedure Description
    (0x00401001, "X"),  # Requested Procedure ID
    (0x00321032, "X"),  # Requesting Physician
    (0x00102299, "X"),  # Responsible Organization
    (0x00102297, "X"),  # Responsible Person
    (0x00400009, "X"),  # Scheduled Procedure Step ID
    (0x00080021, "X/D"),  # Series Date
    (0x0008103E, "X"),  # Series Description
    (0x0020000E, "U"),  # Series Instance UID
    (0x00080031, "X/D"),  # Series Time
    (0x001021A0, "X"),  # Smoking Status
    (0x00080018, "U"),  # SOP Instance UID
    (0x00081010, "X/Z/D"),  # Station Name
    (0x00880140, "U"),  # Storage Media File-set UID
    (0x00080020, "Z"),  # Study Date
    (0x00081030, "X"),  # Study Description
    (0x00200010, "Z"),  # Study ID
    (0x0020000D, "U"),  # Study Instance UID
    (0x00080030, "Z"),  # Study Time
    (0x00200200, "U"),  # Synchronization Frame of Reference UID
    (0x40004000, "X"),  # Text Comments
    (0x20300020, "X"),  # Text String
    (0x00080201, "X"),  # Timezone Offset From UTC
    (0x0040A124, "U"),  # UID
    (0x0040A075, "D"),  # Verifying Observer Name
    (0x00020003, "U"),  # Media Storage SOP Instance UID
    (0x00209161, "U"),  # Concatenation UID
    (0x00209164, "U"),  # Dimension Organization UID
    (0x04000561, "X"),  # Original Attributes Sequence
    (0x00100050, "X"),  # Patient's Insurance Plan Code Sequence
    (0x00081140, "X/Z/U*"),  # Referenced Image Sequence
    (0x00082112, "X/Z/U*"),  # Source Image Sequence
    (0x00080082, "X/Z/D"),  # Institution Code Sequence
    (0x00081072, "X/D"),  # Operator Identification Sequence
    (0x00384000, "X"),  # Visit Comments
    (0x00380060, "X"),  # Service Episode ID
    (0x00380020, "X"),  # Admitting Date
    (0x00380021, "X"),  # Admitting Time
]
TABLE = dict(STANDARD_TABLE)
TOKEN = "PLANTEDX"  # in every planted text value: no exported byte may carry it
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

# CT, MR, an RGB ultrasound, a multi-frame MR, a multi-frame JPEG-compressed colour ultrasound; with a second CT
# instance of the same series, six images: the most a conversation holds.
FILES = ["CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "emri_small.dcm", "examples_ybr_color.dcm"]


def data_file(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pydicom-data)")
    return Path(path)


def planted_value(vr: str):
    text = {"PN": f"{TOKEN}^Person", "DA": "20240229", "TM": "101112", "DT": "20240229101112", "AS": "042Y",
            "CS": TOKEN, "AE": TOKEN, "IS": "7", "DS": "7.5"}
    if vr == "UI":
        return generate_uid()
    if vr in ("US", "SS", "UL", "SL"):
        return 7
    if vr in ("FL", "FD"):
        return 7.5
    if vr in ("OB", "OW", "UN"):
        return TOKEN.encode()
    return text.get(vr, f"{TOKEN} text")


def planted_item() -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "P1", "99PLANT", "planted code"
    item.PersonName = f"{TOKEN}^Nested"  # D inside a sequence
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = CT_IMAGE_STORAGE, generate_uid()
    return item


def plant(ds: Dataset, referenced: Dataset | None = None) -> None:
    """Every attribute of the table the file lacks, with identifying-looking values; a private block at the top
    and inside a sequence; an overlay and a curve; a reference to another instance of the export."""
    for tag, _ in STANDARD_TABLE:
        if tag >> 16 == 0x0002 or tag in ds:
            continue
        vr = dictionary_VR(tag)
        if vr == "SQ":
            ds.add_new(tag, vr, Sequence([planted_item()]))
        else:
            ds.add_new(tag, vr, planted_value(vr))
    block = ds.private_block(0x0009, "PLANTED CREATOR", create=True)
    block.add_new(0x01, "LO", f"{TOKEN} private")
    if referenced is not None:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = referenced.SOPClassUID, referenced.SOPInstanceUID
        ref.private_block(0x0011, "PLANTED CREATOR", create=True).add_new(0x01, "LO", f"{TOKEN} nested private")
        ds.ReferencedImageSequence = Sequence([ref])
    ds.add_new(0x60000010, "US", 8)  # Overlay Rows
    ds.add_new(0x60000011, "US", 8)  # Overlay Columns
    ds.add_new(0x60003000, "OW", bytes(8))  # Overlay Data
    ds.add_new(0x60004000, "LT", f"{TOKEN} overlay comment")
    ds.add_new(0x50003000, "OW", b"CURVE-" + TOKEN.encode())  # Curve Data (retired)


@pytest.fixture
def study(tmp_path):
    """Copies of the test files with planted identifiers; two CT instances of one series, the second
    referring to the first."""
    folder = tmp_path / "study"
    folder.mkdir()
    paths = []
    for name in FILES:
        ds = pydicom.dcmread(data_file(name))
        plant(ds)
        paths.append(folder / name)
        ds.save_as(paths[-1])
    first = pydicom.dcmread(paths[0])
    second = pydicom.dcmread(data_file("CT_small.dcm"))
    second.SOPInstanceUID = second.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    plant(second, referenced=first)
    second.InstanceNumber = 2
    second.PixelData = (second.pixel_array + 50).astype(second.pixel_array.dtype).tobytes()  # another slice
    paths.append(folder / "CT_small_2.dcm")
    second.save_as(paths[-1])
    return paths


def frame_of(path: Path) -> int:
    return 3 if int(pydicom.dcmread(path, stop_before_pixels=True).get("NumberOfFrames", 1) or 1) > 3 else 0


@pytest.fixture
def conversation(tmp_path, study):
    """A stored conversation whose images are views of the study's files, attached as the app attaches them."""
    sources, renderer = AttachedSources(), FrameRenderer()
    with Store(tmp_path / "conversations.sqlite3") as store:
        cid = store.create_conversation("CT · teaching", "key", {"patient_name": "DOE^JANE"})
        shas = []
        for path in study:
            png = to_png(renderer.pixels(path, frame_of(path)))
            sources.record(png, path, frame_of(path))
            shas.append(store.add_image(cid, png, f"{path.name} SERIES DESCRIPTION"))
        turn = store.add_turn(cid, "What is shown?", shas[:4])
        store.finish_answer(turn, "stop", [1], {}, text="A slice.")
        turn = store.add_turn(cid, "And these?", shas[4:])
        store.finish_answer(turn, "stop", [1], {}, text="More slices.")
        return store.load(cid), sources


def exported(folder: Path) -> dict[str, Dataset]:
    return {p.name: pydicom.dcmread(p) for p in sorted((folder / "dicom").glob("*.dcm"))}
