"""Find studies: files, multi-frame files, folders (recursive, DICOM detected by content), DICOMDIR, and
PNG/JPEG/TIFF images. Headers only are read; DICOM files are grouped patient -> study -> series and each
series is sorted along its slice normal (falling back to instance number)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
# Only what grouping and sorting need is parsed: headers with large private blocks stay cheap to scan.
SCAN_TAGS = [
    "SOPClassUID", "PatientID", "PatientName", "StudyInstanceUID", "StudyDescription", "SeriesInstanceUID",
    "SeriesDescription", "Modality", "InstanceNumber", "NumberOfFrames", "ImagePositionPatient",
    "ImageOrientationPatient", "Rows", "Columns", "BitsAllocated",
]


@dataclass
class Instance:
    path: Path
    sop_class: str
    patient_id: str
    patient_name: str
    study_uid: str
    study_description: str
    series_uid: str
    series_description: str
    modality: str
    instance_number: int | None
    n_frames: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    has_pixels: bool

    @property
    def kind(self) -> str:
        """What a non-image object is, in words (e.g. 'Comprehensive SR Storage')."""
        return getattr(pydicom.uid.UID(self.sop_class), "name", self.sop_class) or "unknown object"


@dataclass
class Series:
    uid: str
    modality: str
    description: str
    instances: list[Instance] = field(default_factory=list)

    @property
    def frames(self) -> list[tuple[Instance, int]]:
        """Every displayable frame in viewing order: (instance, frame index)."""
        return [(i, f) for i in self.instances if i.has_pixels for f in range(i.n_frames)]

    @property
    def is_image(self) -> bool:
        return any(i.has_pixels for i in self.instances)

    def sort(self) -> None:
        self.instances.sort(key=_slice_key(self.instances))


@dataclass
class Study:
    uid: str
    description: str
    series: dict[str, Series] = field(default_factory=dict)


@dataclass
class Patient:
    id: str
    name: str
    studies: dict[str, Study] = field(default_factory=dict)


@dataclass
class Library:
    patients: dict[str, Patient] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)  # plain PNG/JPEG/TIFF files
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable files and why

    def all_series(self) -> Iterator[Series]:
        for patient in self.patients.values():
            for study in patient.studies.values():
                yield from study.series.values()


def _slice_key(instances: list[Instance]):
    """Project positions on the slice normal when every slice has them; else use instance numbers."""
    first = instances[0] if instances else None
    if first and first.orientation and all(i.position is not None for i in instances):
        row, col = np.array(first.orientation[:3]), np.array(first.orientation[3:6])
        normal = np.cross(row, col)
        return lambda i: (float(np.dot(normal, i.position)), i.instance_number or 0)
    return lambda i: (i.instance_number if i.instance_number is not None else 0, str(i.path))


def looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _read_instance(path: Path) -> Instance:
    marker = looks_like_dicom(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=not marker, specific_tags=SCAN_TAGS)
    if not marker and "SOPClassUID" not in ds:  # without the marker, only a real SOP instance counts
        raise InvalidDicomError("not a DICOM file")

    def floats(name: str, n: int):
        value = ds.get(name)
        try:
            return tuple(float(v) for v in value) if value is not None and len(value) == n else None
        except (TypeError, ValueError):
            return None

    try:
        number = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
    except (TypeError, ValueError):
        number = None  # a damaged instance number only costs the fallback order
    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise InvalidDicomError(f"invalid Number of Frames {ds.get('NumberOfFrames')!r}") from None
    return Instance(
        path=path,
        sop_class=str(ds.get("SOPClassUID", "")),
        patient_id=str(ds.get("PatientID", "")),
        patient_name=str(ds.get("PatientName", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")) or f"study:{path.parent}",
        study_description=str(ds.get("StudyDescription", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")) or f"series:{path}",
        series_description=str(ds.get("SeriesDescription", "")),
        modality=str(ds.get("Modality", "")),
        instance_number=number,
        n_frames=n_frames,
        position=floats("ImagePositionPatient", 3),
        orientation=floats("ImageOrientationPatient", 6),
        has_pixels="Rows" in ds and "Columns" in ds and "BitsAllocated" in ds,
    )


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    yield Path(root) / name
        elif path.name.upper() == "DICOMDIR":
            yield from _dicomdir_files(path)
        else:
            yield path


def _dicomdir_files(path: Path) -> Iterator[Path]:
    from pydicom.fileset import FileSet

    try:
        for instance in FileSet(pydicom.dcmread(path)):
            yield Path(instance.path)
    except Exception:  # a damaged DICOMDIR: fall back to the folder beside it
        yield from _files([path.parent])


def scan(paths: Iterable[str | Path]) -> Library:
    library = Library()
    seen: set[Path] = set()
    for path in _files(Path(p) for p in paths):
        resolved = path.resolve()
        if resolved in seen or path.name.upper() == "DICOMDIR":
            continue
        seen.add(resolved)
        if path.suffix.lower() in IMAGE_SUFFIXES and not looks_like_dicom(path):
            library.images.append(path)
            continue
        try:
            instance = _read_instance(path)
        except Exception as exc:  # many files in a folder are not DICOM; damaged ones are reported
            if looks_like_dicom(path):
                library.skipped.append((path, f"damaged DICOM file: {str(exc).splitlines()[0] if str(exc) else exc}"))
            continue
        patient = library.patients.setdefault(instance.patient_id, Patient(instance.patient_id, instance.patient_name))
        study = patient.studies.setdefault(instance.study_uid, Study(instance.study_uid, instance.study_description))
        series = study.series.setdefault(
            instance.series_uid, Series(instance.series_uid, instance.modality, instance.series_description)
        )
        series.instances.append(instance)
    for series in library.all_series():
        series.sort()
    return library
