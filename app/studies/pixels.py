"""The display pipeline for one frame, in the order of the standard (PS3.4 N.2):
modality LUT (rescale or LUT) -> VOI (window or VOI LUT) -> presentation (MONOCHROME1, INVERSE) -> 8 bits.
Colour images: palette lookup, or RGB as decoded (pydicom returns YBR already converted to RGB); a window on them
stretches the 8-bit channels alike (brightness and contrast, as viewers offer on ultrasound and photographs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from .presets import CT_DEFAULT, CT_PRESETS


@dataclass(frozen=True)
class Window:
    centre: float
    width: float
    function: str = "LINEAR"  # LINEAR | LINEAR_EXACT | SIGMOID (PS3.3 C.11.2.1.2)


COLOUR_WINDOW = Window(128.0, 256.0)  # a colour image as stored: the LINEAR formula maps 0..255 onto itself


def is_colour(ds: Dataset) -> bool:
    return int(ds.get("SamplesPerPixel", 1)) > 1 or ds.get("PhotometricInterpretation") == "PALETTE COLOR"


def is_hounsfield(ds: Dataset) -> bool:
    """CT with a rescale to HU: the only data for which the HU presets mean anything."""
    return ds.get("Modality") == "CT" and "RescaleSlope" in ds and ds.get("RescaleType", "HU") in ("HU", "")


def modality_values(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    """Stored values -> modality values (HU for CT), float32."""
    return np.asarray(apply_modality_lut(frame, ds), dtype=np.float32)


def file_window(ds: Dataset) -> Window | None:
    """The first window the file carries, if any."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    centre, width = ds.WindowCenter, ds.WindowWidth
    centre = float(centre[0] if hasattr(centre, "__len__") and not isinstance(centre, str) else centre)
    width = float(width[0] if hasattr(width, "__len__") and not isinstance(width, str) else width)
    if width <= 0:
        return None
    return Window(centre, width, str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper())


def auto_window(values: np.ndarray) -> Window:
    """A robust window from the data: the 0.5-99.5 percentile range."""
    low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    if high <= low:
        high = low + 1
    return Window((low + high) / 2, high - low)


def default_window(ds: Dataset, values: np.ndarray) -> Window | None:
    """The file's own window; else None when a VOI LUT applies; else the CT default or an automatic one."""
    window = file_window(ds)
    if window is not None:
        return window
    if "VOILUTSequence" in ds:
        return None
    if is_hounsfield(ds):
        return Window(*CT_PRESETS[CT_DEFAULT])
    return auto_window(values)


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Modality values -> 0..255 float, with the formulas of PS3.3 C.11.2.1.2 (output range 0..255)."""
    c, w = window.centre, window.width
    if window.function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    elif window.function == "LINEAR_EXACT":
        out = (values - (c - w / 2)) / w * 255.0
    elif w <= 1.0:  # LINEAR at width 1 (the narrowest): the standard's thresholds alone, a step at c - 0.5
        out = np.where(values > c - 0.5, 255.0, 0.0)
    else:  # LINEAR: centre and width are offset by 0.5 and 1 for integer data
        out = ((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    return np.clip(out, 0, 255)


def _voi_lut(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """The file's VOI LUT, rescaled from its own output range to 0..255."""
    item = ds.VOILUTSequence[0]
    bits = int(item.LUTDescriptor[2])
    out = np.asarray(apply_voi_lut(values, ds, index=0, prefer_lut=True), dtype=np.float32)
    return np.clip(out / (2**bits - 1) * 255.0, 0, 255)


def render_grey(frame: np.ndarray, ds: Dataset, window: Window | None = None, invert: bool = False) -> np.ndarray:
    """One grey-scale frame -> uint8 for display. window=None: the file's default (window, VOI LUT, auto)."""
    values = modality_values(frame, ds)
    chosen = window or default_window(ds, values)
    grey = apply_window(values, chosen) if chosen is not None else _voi_lut(values, ds)
    # MONOCHROME1 (low values bright) and a Presentation LUT Shape INVERSE are the same single inversion:
    # the standard asks MONOCHROME1 images to carry INVERSE, so the two are not applied twice.
    if ds.get("PhotometricInterpretation") == "MONOCHROME1" or ds.get("PresentationLUTShape") == "INVERSE":
        grey = 255.0 - grey
    if invert:
        grey = 255.0 - grey
    return (grey + 0.5).astype(np.uint8)


def render_colour(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    """A colour frame -> uint8 RGB. pydicom has already converted YBR to RGB: it is never converted twice."""
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        rgb = np.asarray(apply_color_lut(frame, ds), dtype=np.float32)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return (rgb / (2**bits - 1) * 255 + 0.5).clip(0, 255).astype(np.uint8)
    bits = int(ds.get("BitsStored", 8))
    if frame.dtype == np.uint8 or bits <= 8:
        return frame.astype(np.uint8)
    return (frame.astype(np.float32) / (2**bits - 1) * 255 + 0.5).clip(0, 255).astype(np.uint8)


def window_values(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    """What a window applies to, float32: modality values (HU for CT); for colour, the 8-bit RGB channels."""
    return render_colour(frame, ds).astype(np.float32) if is_colour(ds) else modality_values(frame, ds)


def render(frame: np.ndarray, ds: Dataset, window: Window | None = None, invert: bool = False) -> np.ndarray:
    if is_colour(ds):
        rgb = render_colour(frame, ds)
        if window is not None and window != COLOUR_WINDOW:
            rgb = (apply_window(rgb.astype(np.float32), window) + 0.5).astype(np.uint8)
        return 255 - rgb if invert else rgb
    return render_grey(frame, ds, window, invert)
