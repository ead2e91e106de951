"""Open an image file for display, Qt-free: a DICOM file or a PNG/JPEG/TIFF through the one display pipeline
(`app.studies`), its first frame with its own window (a plain image's pixels as stored, 16-bit stretched to 8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from app.studies.frames import PixelDecodeError
from app.studies.plain_image import read_plain_header
from app.studies.scan import looks_like_dicom
from app.studies.view import FrameRenderer


class ImageOpenError(Exception):
    """The file cannot be shown; the message says why in words a user understands."""


def open_image(path: str | Path) -> Image.Image:
    return Image.fromarray(_first_frame(Path(path), FrameRenderer())[1])


def load_first_frame(path: str | Path, renderer: FrameRenderer) -> Dataset:
    """Read the file's header and decode its first frame into the renderer's cache (off the GUI thread: the viewer
    then shows it at once). Returns the header; ImageOpenError says why the file cannot be shown."""
    return _first_frame(Path(path), renderer)[0]


def _first_frame(path: Path, renderer: FrameRenderer) -> tuple[Dataset, np.ndarray]:
    if not path.is_file():
        raise ImageOpenError(f"{path.name}: no such file")
    if not looks_like_dicom(path) and read_plain_header(path) is None:
        raise ImageOpenError(f"{path.name} is neither an image (PNG, JPEG, TIFF) nor a DICOM file")
    try:
        header = renderer.header(path)
        if "Rows" not in header:
            kind = header.get("Modality", "non-image")
            raise ImageOpenError(f"{path.name}: a DICOM {kind} object without pixel data (nothing to show)")
        return header, renderer.pixels(path, 0)
    except PixelDecodeError as exc:
        raise ImageOpenError(str(exc)) from None
