"""Teaching cases from a conversation, Qt-free: the DICOM files behind its images, de-identified, with the
conversation itself, in one folder ready to share; and a practice case for a deck of the user's own.

The conversation store keeps the images as the model saw them (PNG) and no file path, because a path can name a
patient. Where an attached view came from (file and frame) is kept by `AttachedSources`, in memory, for the session
in which it was attached. An image whose source is not known in this session, or is not a DICOM file (a PNG or JPEG
opened in the viewer), is exported as the PNG the model saw.

A teaching-case folder holds:
- `dicom/`: the source DICOM files of the attached views (or of the whole series, on request), each file once,
  de-identified with the PS3.15 Annex E basic profile (`app.studies.deid`): UIDs replaced consistently within the
  export (another export gives other UIDs), pixel data unchanged;
- `images/`: the PNG the model saw, for images without a DICOM source (pixels only, no metadata);
- `conversation.md` or `.html` (`app.export`): questions, answers and the images as the model saw them, the study's
  identifying data left out, each image labelled with the exported file it came from;
- `README.txt`: what the folder holds, how it was de-identified and what must still be checked by eye.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from . import INTENDED_USE, privacy
from .export import export_conversation
from .paths import data_dir
from .practice import Deck, append_case
from .store import StoredConversation
from .studies.deid import PROFILE, burned_in_warning, deidentify
from .studies.frames import read_header
from .studies.plain_image import PlainImageHeader

FORMATS = ("md", "html")


class TeachingCaseError(Exception):
    """The teaching case cannot be written; the message says which file and why."""


@dataclass(frozen=True)
class SourceFrame:
    path: Path
    frame: int


class AttachedSources:
    """Where each attached view came from, by the SHA-256 of the PNG the model saw (the store's key for it).
    In memory only: the path stays on this computer and in this session, never in the conversation store."""

    def __init__(self):
        self._by_sha: dict[str, SourceFrame] = {}

    def record(self, png: bytes, path: str | Path, frame: int) -> None:
        self._by_sha[hashlib.sha256(png).hexdigest()] = SourceFrame(Path(path), int(frame))

    def get(self, sha256: str) -> SourceFrame | None:
        return self._by_sha.get(sha256)


@dataclass(frozen=True)
class CaseImage:
    number: int  # as the conversation and its export number it: in the order first shown
    sha256: str
    source: SourceFrame | None  # its DICOM file and frame; None: exported as the PNG the model saw
    note: str = ""  # why it has no DICOM source, in words


@dataclass
class CasePlan:
    """What a teaching-case export will write, worked out before anything is written (so the user can be warned)."""

    images: list[CaseImage]
    dicom_files: dict[Path, str] = field(default_factory=dict)  # source file -> exported name, in export order
    warnings: list[str] = field(default_factory=list)  # burned-in text warnings: to confirm before exporting

    @property
    def png_images(self) -> list[CaseImage]:
        return [image for image in self.images if image.source is None]


def numbered_images(conv: StoredConversation) -> list[str]:
    """The conversation's image hashes in the order it first showed them (the numbering of its exports)."""
    order: dict[str, None] = {}
    for turn in conv.turns:
        order.update(dict.fromkeys(turn.image_shas))
    return list(order)


def plan_case(conv: StoredConversation, sources: AttachedSources,
              series_files: Iterable[str | Path] = ()) -> CasePlan:
    """Which files a teaching case of `conv` holds: the DICOM files of its attached views, plus `series_files`
    (the whole series, on request). Reads headers only."""
    images, files = [], []
    for number, sha in enumerate(numbered_images(conv), start=1):
        source, note = sources.get(sha), ""
        if source is None:
            note = "its source file is not known in this session"
        elif not source.path.is_file():
            source, note = None, "its source file is no longer there"
        elif isinstance(_header(source.path), PlainImageHeader):
            source, note = None, "its source is not a DICOM file"
        images.append(CaseImage(number, sha, source, note))
        if source is not None:
            files.append(source.path)
    files += [Path(p) for p in series_files]
    plan = CasePlan(images)
    for path in dict.fromkeys(files):
        plan.dicom_files[path] = f"IM{len(plan.dicom_files) + 1:04d}.dcm"
    plan.warnings = _burned_in_warnings(plan.dicom_files)
    if plan.png_images:
        plan.warnings.append(f"{_count(len(plan.png_images), 'image')} exported as the PNG the model saw: "
                             f"check {'it' if len(plan.png_images) == 1 else 'them'} for burned-in text")
    return plan


def _header(path: Path):
    try:
        return read_header(path)
    except Exception as exc:  # pydicom raises many kinds for damaged files
        raise TeachingCaseError(f"{path.name}: cannot be read ({exc})") from None


def _burned_in_warnings(files: dict[Path, str]) -> list[str]:
    """One line per kind of warning, naming the exported files it concerns."""
    by_warning: dict[str, list[str]] = {}
    for path, name in files.items():
        warning = burned_in_warning(_header(path))
        if warning:
            by_warning.setdefault(warning, []).append(name)
    lines = []
    for warning, names in by_warning.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        lines.append(f"{shown}: {warning}")
    return lines


def export_case(conv: StoredConversation, plan: CasePlan, destination: Path, fmt: str = "md",
                cancelled: Callable[[], bool] = lambda: False) -> Path:
    """Writes the teaching case to the new folder `destination` (which must not exist yet) and returns it. Built
    in a temporary folder inside the private data folder, then moved into place with the user's own default
    permissions; a failed or cancelled export leaves nothing under `destination`."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown conversation format {fmt!r}; expected one of {', '.join(FORMATS)}")
    destination = Path(destination)
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    if not destination.parent.is_dir():
        raise FileNotFoundError(f"{destination.parent}: no such folder")
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="teaching-", dir=folder))
    partial = destination.with_name(f".{destination.name}.part")
    try:
        built = staging / destination.name
        built.mkdir()
        _write_dicom(plan, built / "dicom", secrets.token_hex(16), cancelled)
        _write_pngs(conv, plan, built / "images")
        export_conversation(_labelled(conv, plan), built / f"conversation.{fmt}", fmt, include_identifiers=False)
        (built / "README.txt").write_text(_readme(conv, plan, fmt), encoding="utf-8")
        shutil.move(built, partial)
        _give_user_modes(partial)
        os.replace(partial, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)
    return destination


def _write_dicom(plan: CasePlan, folder: Path, salt: str, cancelled: Callable[[], bool]) -> None:
    if not plan.dicom_files:
        return
    folder.mkdir()
    for source, name in plan.dicom_files.items():
        if cancelled():
            raise TeachingCaseError("cancelled")
        try:
            original = pydicom.dcmread(source, force=True)
            clean = deidentify(original, salt)
            clean.save_as(folder / name, enforce_file_format=True)
        except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
            raise TeachingCaseError(f"{source.name}: could not be exported as de-identified DICOM ({exc})") from None


def _write_pngs(conv: StoredConversation, plan: CasePlan, folder: Path) -> None:
    if not plan.png_images:
        return
    folder.mkdir()
    for image in plan.png_images:
        (folder / _png_name(image)).write_bytes(pixels_only_png(conv.images[image.sha256].png))


def pixels_only_png(png: bytes) -> bytes:
    """The same pixels in a new PNG with no metadata chunks (text, dates, profiles)."""
    with Image.open(io.BytesIO(png)) as image:
        pixels = np.asarray(image)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _png_name(image: CaseImage) -> str:
    return f"image-{image.number:02d}.png"


def _where(image: CaseImage, plan: CasePlan) -> str:
    if image.source is None:
        return f"images/{_png_name(image)}"
    return f"dicom/{plan.dicom_files[image.source.path]}, frame {image.source.frame + 1}"


def _labelled(conv: StoredConversation, plan: CasePlan) -> StoredConversation:
    """The conversation with each image labelled by the exported file it came from: the labels given when it was
    attached can carry a series description or a file name, which the basic profile would remove."""
    images = {image.sha256: dataclasses.replace(conv.images[image.sha256], label=_where(image, plan))
              for image in plan.images}
    return dataclasses.replace(conv, images=images, study_info=None)


def _readme(conv: StoredConversation, plan: CasePlan, fmt: str) -> str:
    lines = [f"Teaching case: {conv.title}", INTENDED_USE, "", "Contents", ""]
    lines.append(f"conversation.{fmt}: the questions and answers, with the images as the model saw them.")
    if plan.dicom_files:
        lines.append(f"dicom/: {_count(len(plan.dicom_files), 'DICOM file')}, de-identified with the {PROFILE} "
                     f"(DICOM PS3.15 Annex E): identifying attributes removed, emptied or replaced by dummy values, "
                     f"UIDs replaced consistently within this case, private attributes, overlays and curves "
                     f"removed; Patient Identity Removed is YES and the De-identification Method Code Sequence "
                     f"says DCM 113100. Pixel data is unchanged.")
    if plan.png_images:
        lines.append(f"images/: {_count(len(plan.png_images), 'image')} whose source was not a DICOM file known "
                     f"in the session that exported it, as the PNG the model saw (pixels only).")
    lines += ["", "Images", ""]
    for image in plan.images:
        note = f" ({image.note})" if image.note else ""
        lines.append(f"Image {image.number}: {_where(image, plan)}{note}")
    lines += ["", "Check before sharing", ""]
    lines += [f"- {warning}." for warning in plan.warnings]
    lines.append("- The questions and answers are exported as they were written: check them for names, dates and "
                 "other identifiers.")
    return "\n".join(lines) + "\n"


def _give_user_modes(item: Path) -> None:
    if os.name != "posix":
        return
    for p in [item, *item.rglob("*")]:
        p.chmod(privacy.user_folder_mode() if p.is_dir() else privacy.user_file_mode())


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# --- practice cases


def practice_case(conv: StoredConversation, turn_index: int) -> tuple[str, list[str]]:
    """The question of one turn and the hashes of the images the model had been shown by then."""
    if not 0 <= turn_index < len(conv.turns):
        raise IndexError(f"the conversation has no question {turn_index + 1}")
    shown: dict[str, None] = {}
    for turn in conv.turns[:turn_index + 1]:
        shown.update(dict.fromkeys(turn.image_shas))
    return conv.turns[turn_index].question, list(shown)


def make_practice_case(conv: StoredConversation, turn_index: int, reference: str, deck_path: str | Path,
                       question: str | None = None) -> Deck:
    """Append one question of the conversation (or the user's edit of it), the user's reference answer and the
    images the model had been shown by then, as it saw them (pixels only), to the deck at `deck_path`."""
    asked, shas = practice_case(conv, turn_index)
    images = [pixels_only_png(conv.images[sha].png) for sha in shas]
    return append_case(deck_path, question if question is not None else asked, reference, images)
