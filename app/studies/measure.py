"""Pixel probe and length measurement on the stored frame, calibrated by Pixel Spacing when present."""

from __future__ import annotations

import math

import numpy as np
from pydicom.dataset import Dataset

from .pixels import is_colour, is_hounsfield, modality_values


def probe(frame: np.ndarray, ds: Dataset, row: int, col: int) -> str:
    """The value under the cursor, in the data's units (HU for CT)."""
    if is_colour(ds):
        return f"RGB {tuple(int(v) for v in frame[row, col])}"
    value = float(modality_values(frame[row:row + 1, col:col + 1], ds)[0, 0])
    unit = " HU" if is_hounsfield(ds) else ""
    return f"{value:.0f}{unit}" if value.is_integer() or unit else f"{value:.3g}"


def pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row spacing, column spacing) in mm: Pixel Spacing, else Imager Pixel Spacing (at the detector)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            return float(value[0]), float(value[1])
    return None


def length(ds: Dataset, start: tuple[float, float], end: tuple[float, float]) -> str:
    """The distance between two (row, column) points of the stored frame: mm when calibrated, else pixels."""
    d_row, d_col = end[0] - start[0], end[1] - start[1]
    spacing = pixel_spacing(ds)
    if spacing is None:
        return f"{math.hypot(d_row, d_col):.1f} px (uncalibrated)"
    mm = math.hypot(d_row * spacing[0], d_col * spacing[1])
    note = "" if "PixelSpacing" in ds else " (at the detector)"
    return f"{mm:.1f} mm{note}"
