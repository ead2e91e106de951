"""Teaching cases on real DICOM files (pydicom and pydicom-data): the exported files keep no value that the
PS3.15 Annex E basic profile removes or replaces (checked against the standard's table as written below, not
against the code under test), their pixel data is unchanged, they are valid (pydicom reads them back as Part 10
files, dcmtk's dcmdump reads them without error), their UIDs are remapped consistently within one export and
differently across exports; and a practice case made from the conversation opens in practice mode."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, validate_file_meta
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from app.paths import data_dir
from app.practice import DeckError, load_deck
from app.store import Store
from app.studies.view import FrameRenderer, to_png
from app.teaching_case import AttachedSources, export_case, make_practice_case, plan_case

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


def test_the_folder_holds_the_conversation_without_identifiers(tmp_path, conversation):
    conv, sources = conversation
    plan = plan_case(conv, sources)
    folder = export_case(conv, plan, tmp_path / "case", fmt="html")
    page = (folder / "conversation.html").read_text(encoding="utf-8")
    assert "What is shown?" in page and "More slices." in page
    assert "DOE^JANE" not in page and "SERIES DESCRIPTION" not in page  # study data and attach labels left out
    assert "dicom/IM0001.dcm, frame 1" in page and "dicom/IM0004.dcm, frame 4" in page
    readme = (folder / "README.txt").read_text(encoding="utf-8")
    assert "Image 4: dicom/IM0004.dcm, frame 4" in readme and "113100" in readme
    assert "US images often have text burned into the pixels" in readme
    assert not list(data_dir().glob("teaching-*"))  # the staging folder is gone
    with pytest.raises(FileExistsError):
        export_case(conv, plan, folder)


def test_images_without_a_dicom_source_are_exported_as_the_png_the_model_saw(tmp_path, conversation):
    conv, _ = conversation
    plan = plan_case(conv, AttachedSources())  # another session: no source is known
    assert not plan.dicom_files and len(plan.png_images) == len(conv.images)
    assert "exported as the PNG the model saw" in plan.warnings[-1]
    folder = export_case(conv, plan, tmp_path / "case")
    assert not (folder / "dicom").exists()
    for image in plan.images:
        written = np.asarray(Image.open(folder / "images" / f"image-{image.number:02d}.png"))
        assert np.array_equal(written, np.asarray(Image.open(io.BytesIO(conv.images[image.sha256].png))))
    assert "its source file is not known in this session" in (folder / "README.txt").read_text(encoding="utf-8")


def test_the_whole_series_on_request_and_the_burned_in_warning(tmp_path, conversation, study):
    conv, sources = conversation
    extra = study[0].with_name("CT_small_3.dcm")
    ds = pydicom.dcmread(study[0])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(extra)
    plan = plan_case(conv, sources, series_files=[study[0], extra])
    assert list(plan.dicom_files)[-1] == extra and len(plan.dicom_files) == len(study) + 1  # each file once
    warnings = " ".join(plan.warnings)
    assert "US images often have text burned into the pixels" in warnings and "IM0003.dcm" in warnings
    assert "IM0004.dcm" not in warnings  # emri_small says Burned In Annotation NO
    ct_only = plan_case(conv, AttachedSources(), series_files=[study[0]])
    assert list(ct_only.dicom_files) == [study[0]] and not any("burned into" in w for w in ct_only.warnings)


# --- practice cases --------------------------------------------------------------------------------


def test_a_practice_case_is_appended_to_the_users_deck_and_opens_in_practice_mode(qtbot, tmp_path, conversation):
    from app.ui.engine_runner import EngineRunner
    from app.ui.practice import PracticeWindow

    conv, _ = conversation
    deck_path = tmp_path / "decks" / "My cases.json"
    deck_path.parent.mkdir()
    first = make_practice_case(conv, 0, "A CT slice of the head.", deck_path)
    assert first.title == "My cases" and len(first.items) == 1
    item = first.items[0]
    assert (item.question, item.reference, item.options) == ("What is shown?", "A CT slice of the head.", ())
    assert len(item.images) == 4  # the images the model had been shown by the first question
    for path, sha in zip(item.images, conv.turns[0].image_shas, strict=True):
        assert path.parent.name == "My cases_images"
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(io.BytesIO(conv.images[sha].png))))
        assert not Image.open(path).info.get("exif")
    second = make_practice_case(conv, 1, "More slices of the same study.", deck_path, question="Which series?")
    assert [i.question for i in second.items] == ["What is shown?", "Which series?"]
    assert len(second.items[1].images) == len(conv.images)  # every image shown by then
    assert json.loads(deck_path.read_text(encoding="utf-8"))["title"] == "My cases"
    again = load_deck(deck_path)
    assert again.sha256 == hashlib.sha256(deck_path.read_bytes()).hexdigest() and len(again.items) == 2

    runner = EngineRunner()
    window = PracticeWindow(runner)
    qtbot.addWidget(window)
    window.show()
    assert window.open_deck(deck_path) and window.item.number == 1
    qtbot.waitUntil(lambda: window.case.viewer.shown is not None, timeout=10_000)  # the case's image, shown
    runner.shutdown()


def test_a_practice_case_keeps_a_list_deck_a_list_and_refuses_a_broken_one(tmp_path, conversation):
    conv, _ = conversation
    listed = tmp_path / "listed.json"
    Image.new("L", (8, 8), 50).save(tmp_path / "a.png")
    listed.write_text(json.dumps([{"question": "Q?", "answer": "A.", "image": "a.png"}]), encoding="utf-8")
    deck = make_practice_case(conv, 0, "Reference.", listed)
    assert isinstance(json.loads(listed.read_text(encoding="utf-8")), list) and len(deck.items) == 2
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2", encoding="utf-8")
    with pytest.raises(DeckError, match="not valid JSON"):
        make_practice_case(conv, 0, "Reference.", broken)
    assert broken.read_text(encoding="utf-8") == "[1, 2"  # left as it was
    with pytest.raises(DeckError, match="reference answer"):
        make_practice_case(conv, 0, "  ", tmp_path / "new.json")
    assert not (tmp_path / "new.json").exists()


def test_the_apps_profile_table_says_what_the_standard_says():
    from pydicom.datadict import keyword_for_tag

    from app.studies.basic_profile import BASIC_PROFILE

    assert {keyword_for_tag(tag): code for tag, code in STANDARD_TABLE} == {
        keyword_for_tag(tag): BASIC_PROFILE.get(keyword_for_tag(tag)) for tag, _ in STANDARD_TABLE}


def test_files_added_to_the_export_need_the_burned_in_confirmation_again(qtbot, conversation, study):
    """The export is confirmed for the files it holds: ticking the whole series, which adds an ultrasound file that
    may have text in its pixels, asks again."""
    from app.ui.teaching_case_dialog import TeachingCaseDialog

    conv, _ = conversation
    ultrasound = next(path for path in study if pydicom.dcmread(path).Modality == "US")
    dialog = TeachingCaseDialog(conv, AttachedSources(), [ultrasound])  # sources unknown: the PNGs the model saw
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert dialog.plan.warnings and not dialog.export_button.isEnabled()
    dialog.checked.setChecked(True)
    assert dialog.export_button.isEnabled()
    dialog.whole_series.setChecked(True)
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert "US images often have text burned into the pixels" in dialog.warnings.text()
    assert not dialog.checked.isChecked() and not dialog.export_button.isEnabled()
    dialog.checked.setChecked(True)
    dialog.whole_series.setChecked(False)  # fewer files: what was confirmed still covers them
    qtbot.waitUntil(lambda: dialog.plan is not None, timeout=10_000)
    assert dialog.checked.isChecked() and dialog.export_button.isEnabled()
