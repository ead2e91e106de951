"""PNG, JPEG and TIFF files as one-frame images of the DICOM display pipeline, so that every kind of image goes
through the same view (window, inversion, rotation, flips, zoomed region) and the model is given the pixels on
screen whatever the file.

A plain image gets a header that says what its pixels are: grey (MONOCHROME2) or RGB, 8 bits, and for grey an
identity window (centre 128, width 256: each stored value is shown as itself until the user changes the window).
Its pixels are the file's first frame as stored; 16-bit and floating-point images are stretched to 8 bits between
their minimum and maximum, palette, CMYK and alpha images become RGB (alpha dropped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset

from .scan import looks_like_dicom

_GREY = {"L", "LA", "1"}
_WIDE_GREY = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}
IDENTITY_WINDOW = (128, 256)


class PlainImageHeader(Dataset):
    """The header of a PNG/JPEG/TIFF file: what its pixels are, no patient, no study."""


def read_plain_header(path: Path) -> PlainImageHeader | None:
    """The header of a plain image file; None when the file is DICOM or not an image Pillow reads."""
    if looks_like_dicom(path):
        return None
    try:
        with Image.open(path) as image:
            mode, (width, height), kind = image.mode, image.size, image.format
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    grey = mode in _GREY or mode in _WIDE_GREY
    ds = PlainImageHeader()
    ds.Rows, ds.Columns = height, width
    ds.SamplesPerPixel = 1 if grey else 3
    ds.PhotometricInterpretation = "MONOCHROME2" if grey else "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if grey:
        ds.WindowCenter, ds.WindowWidth = IDENTITY_WINDOW
    if kind == "JPEG":
        ds.LossyImageCompression = "01"
    return ds


def read_plain_pixels(path: Path) -> np.ndarray:
    """The first frame as 8-bit grey (rows, columns) or RGB (rows, columns, 3), as its header says."""
    with Image.open(path) as image:
        image.load()
        if image.mode in _WIDE_GREY:
            values = np.asarray(image, dtype=np.float64)
            return _stretch(values, float(values.min()), float(values.max()))
        return np.asarray(image.convert("L" if image.mode in _GREY else "RGB"))


def _stretch(values: np.ndarray, low: float, high: float) -> np.ndarray:
    span = max(high - low, 1e-9)
    return (np.clip((values - low) / span, 0, 1) * 255 + 0.5).astype(np.uint8)
