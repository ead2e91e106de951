"""Opening what the user picked or dropped, off the GUI thread (Qt-free): a DICOM file or folder becomes a scanned
Library, a PNG/JPEG/TIFF a one-frame view through the same renderer as DICOM."""

from __future__ import annotations

import os
from pathlib import Path

from app.imaging import ImageOpenError, load_first_frame
from app.studies.scan import looks_like_dicom, scan, scan_progressively


def load_path(path: str, renderer):
    """Reads a path off the GUI thread: a DICOM file or folder becomes a scanned Library (what is read so far is
    yielded meanwhile: a big folder's first image is shown at once); a PNG/JPEG/TIFF is read into the viewer's
    cache and shown through the same view as DICOM (its header comes back)."""
    source = Path(path)
    if source.is_dir() or looks_like_dicom(source) or source.name.upper() == "DICOMDIR":
        library = yield from scan_progressively([source])
        if not any(s.is_image for s in library.all_series()):
            reasons = [r for _, r in library.skipped] or [
                f"{i.kind} (not an image)" for s in library.all_series() for i in s.instances]
            raise ImageOpenError(f"{source.name}: nothing to show: " + ("; ".join(reasons[:3]) or "no DICOM"))
        return path, library
    return path, load_first_frame(path, renderer)


def load_several(paths: list[str], renderer):
    """Several dropped files or folders: their DICOM read together as one library (labelled by the folder that
    holds them all); plain images alone: the first one."""
    sources = [Path(p) for p in paths]
    if not any(p.is_dir() or looks_like_dicom(p) or p.name.upper() == "DICOMDIR" for p in sources):
        return load_path(paths[0], renderer)
    library = scan(sources)
    if not any(s.is_image for s in library.all_series()):
        reasons = [r for _, r in library.skipped] or ["no DICOM image"]
        raise ImageOpenError(f"{len(paths)} items: nothing to show: " + "; ".join(reasons[:3]))
    return os.path.commonpath([str(p.resolve().parent) for p in sources]), library
