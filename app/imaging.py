"""Open an image file for display: PNG/JPEG/TIFF through Pillow (16-bit stretched to 8), a DICOM file
through the studies pipeline (its first frame with its own window). Qt-free."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.studies.scan import looks_like_dicom


class ImageOpenError(Exception):
    """The file cannot be shown; the message says why in words a user understands."""


def open_image(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise ImageOpenError(f"{path.name}: no such file")
    if looks_like_dicom(path):
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
    from app.studies.frames import PixelDecodeError
    from app.studies.view import FrameRenderer

    renderer = FrameRenderer()
    try:
        if "Rows" not in renderer.header(path):
            kind = renderer.header(path).get("Modality", "non-image")
            raise ImageOpenError(f"{path.name}: a DICOM {kind} object without pixel data (nothing to show)")
        return Image.fromarray(renderer.pixels(path, 0))
    except PixelDecodeError as exc:
        raise ImageOpenError(str(exc)) from None
