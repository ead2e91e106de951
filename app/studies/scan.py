"""Find studies: files, multi-frame files, folders (recursive, DICOM detected by content), DICOMDIR, and
PNG/JPEG/TIFF images. Headers only are read; DICOM files are grouped patient -> study -> series and each
series is sorted along its slice normal (falling back to instance number).

A thin-slice CT folder holds thousands of files: `scan_progressively` yields what it has read so far (the
first image at once, then every fraction of a second), so the first image is on screen while the rest is read."""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
# Only what grouping and sorting need is parsed: headers with large private blocks stay cheap to scan.
SCAN_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "PatientID", "PatientName", "StudyInstanceUID", "StudyDescription",
    "SeriesInstanceUID", "SeriesDescription", "Modality", "InstanceNumber", "NumberOfFrames", "ImagePositionPatient",
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
    sop_uid: str = ""

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

    def add(self, instance: Instance) -> None:
        patient = self.patients.setdefault(instance.patient_id, Patient(instance.patient_id, instance.patient_name))
        study = patient.studies.setdefault(instance.study_uid, Study(instance.study_uid, instance.study_description))
        series = study.series.setdefault(
            instance.series_uid, Series(instance.series_uid, instance.modality, instance.series_description)
        )
        series.instances.append(instance)

    def sorted_copy(self) -> Library:
        """What has been read so far, each series sorted, sharing nothing mutable with this one (the scan goes on
        adding to this one on its own thread)."""
        copy = Library(images=list(self.images), skipped=list(self.skipped))
        for patient in self.patients.values():
            for study in patient.studies.values():
                for series in study.series.values():
                    for instance in series.instances:
                        copy.add(instance)
        for series in copy.all_series():
            series.sort()
        return copy


@dataclass(frozen=True)
class ScanProgress:
    library: Library  # what has been read so far, grouped and sorted
    done: int  # files looked at
    total: int  # files found


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
        sop_uid=str(ds.get("SOPInstanceUID", "")),
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
    """Every file read, grouped and sorted."""
    stages = scan_progressively(paths, interval_s=None)
    while True:
        try:
            next(stages)
        except StopIteration as end:
            return end.value


def scan_progressively(paths: Iterable[str | Path], interval_s: float | None = 0.5
                       ) -> Generator[ScanProgress, None, Library]:
    """Read the headers, yielding what is read so far: as soon as the first image is, then every interval_s
    (None: never); returns the whole library. Files are listed first (names only), so progress has a total."""
    files = list(_files(Path(p) for p in paths))
    library = Library()
    seen: set[Path] = set()
    shown_first = interval_s is None
    last, read, yielded = time.monotonic(), 0, 0
    for done, path in enumerate(files, 1):
        if shown_first and read > yielded and interval_s is not None and time.monotonic() - last >= interval_s:
            yield ScanProgress(library.sorted_copy(), done - 1, len(files))
            last, yielded = time.monotonic(), read
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
        library.add(instance)
        read += 1
        if not shown_first and instance.has_pixels:  # something to show: at once
            shown_first = True
            yield ScanProgress(library.sorted_copy(), done, len(files))
            last, yielded = time.monotonic(), read
    for series in library.all_series():
        series.sort()
    return library
