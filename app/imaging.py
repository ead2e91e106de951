"""Open an image file for display: PNG/JPEG/TIFF through Pillow, a DICOM file through pydicom
(modality LUT, the file's own VOI window or LUT, MONOCHROME1 inverted; first frame). Qt-free."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageOpenError(Exception):
    """The file cannot be shown; the message says why in words a user understands."""


def is_dicom(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def open_image(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise ImageOpenError(f"{path.name}: no such file")
    if is_dicom(path):
        return _open_dicom(path)
    try:
        with Image.open(path) as image:
            image.load()
            return _to_display(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageOpenError(f"{path.name} is neither an image (PNG, JPEG, TIFF) nor a DICOM file ({exc})") from None


def _to_display(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        return Image.fromarray(_stretch(pixels, pixels.min(), pixels.max()))
    return image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()


def _stretch(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    span = max(high - low, 1e-9)
    return (np.clip((pixels - low) / span, 0, 1) * 255 + 0.5).astype(np.uint8)


def _open_dicom(path: Path) -> Image.Image:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises many types for damaged files
        raise ImageOpenError(f"{path.name}: a damaged DICOM file ({exc})") from None
    if "PixelData" not in ds:
        kind = getattr(ds, "Modality", "non-image")
        raise ImageOpenError(f"{path.name}: a DICOM {kind} object without pixel data (nothing to show)")
    try:
        frame = ds.pixel_array if int(getattr(ds, "NumberOfFrames", 1) or 1) == 1 else ds.pixel_array[0]
    except Exception as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(syntax, "name", str(syntax))
        raise ImageOpenError(f"{path.name}: its pixel data ({name}) cannot be decoded here ({exc})") from None
    if getattr(ds, "PhotometricInterpretation", "").startswith(("RGB", "YBR", "PALETTE")) or frame.ndim == 3:
        return Image.fromarray(np.asarray(frame, dtype=np.uint8) if frame.dtype != np.uint8 else frame).convert("RGB")
    values = apply_modality_lut(frame, ds)
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        values = apply_voi_lut(values, ds, index=0)
    display = _stretch(np.asarray(values, dtype=np.float64), float(np.min(values)), float(np.max(values)))
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        display = 255 - display
    return Image.fromarray(display, "L")
