"""Measurements on the stored frame, calibrated by Pixel Spacing when present: the pixel probe, lengths, angles,
ellipse and rectangle regions (mean, SD, min, max, area), and the map between stored-frame and shown-image
coordinates that keeps them in place."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from .pixels import is_colour, is_hounsfield, modality_values
from .view import ViewState


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


def angle(ds: Dataset, end: tuple[float, float], vertex: tuple[float, float],
          other_end: tuple[float, float]) -> float | None:
    """The angle at `vertex` between its two arms, in degrees (0-180), measured in millimetres when the pixels are
    not square; None while an arm has no length."""
    row_mm, col_mm = pixel_spacing(ds) or (1.0, 1.0)
    arms = [((p[0] - vertex[0]) * row_mm, (p[1] - vertex[1]) * col_mm) for p in (end, other_end)]
    if any(math.hypot(*arm) == 0 for arm in arms):
        return None
    (y1, x1), (y2, x2) = arms
    return math.degrees(abs(math.atan2(x1 * y2 - y1 * x2, x1 * x2 + y1 * y2)))


# --- geometry between the stored frame and the shown image -----------------------------------------------------
# Continuous coordinates: (row, column) of the stored frame and (x, y) of the shown image, pixel (r, c) covering
# [r, r + 1) x [c, c + 1). Rotations by 90 degrees and flips keep axis-aligned shapes axis-aligned.

def source_to_shown(row: float, col: float, source_shape: tuple[int, int], view: ViewState) -> tuple[float, float]:
    """A point of the stored frame to (x, y) of the shown image: flips, then clockwise rotation, as `orient`."""
    height, width = source_shape[:2]
    if view.flip_horizontal:
        col = width - col
    if view.flip_vertical:
        row = height - row
    for _ in range(view.rotation // 90):  # a quarter turn clockwise: (r, c) of (H, W) -> (c, H - r) of (W, H)
        row, col, height, width = col, height - row, width, height
    return col, row


def shown_to_source_point(x: float, y: float, source_shape: tuple[int, int], view: ViewState) -> tuple[float, float]:
    """The exact inverse of `source_to_shown`, for points anywhere (also outside the image)."""
    height, width = source_shape[:2]
    turns = view.rotation // 90
    shown_h, shown_w = (width, height) if turns % 2 else (height, width)
    row, col = y, x
    for _ in range(turns):  # a quarter turn back: (r', c') of (H', W') -> (W' - c', r') of (W', H')
        row, col, shown_h, shown_w = shown_w - col, row, shown_w, shown_h
    if view.flip_vertical:
        row = height - row
    if view.flip_horizontal:
        col = width - col
    return row, col


# --- regions of interest ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoiStats:
    pixels: int  # pixels whose centre lies inside the region
    mean: float
    sd: float  # population standard deviation of those pixels, as reading viewers report it
    minimum: float
    maximum: float
    area_mm2: float | None  # the region's own area (pi a b, or width x height), None when not calibrated
    area_px: float
    unit: str  # " HU" for CT in Hounsfield units, else ""


def ellipse_mask(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """Pixels of a frame whose centre lies inside the axis-aligned ellipse (centre and radii as (row, column))."""
    rows = (np.arange(shape[0]) + 0.5 - centre[0]) / max(radii[0], 1e-9)
    cols = (np.arange(shape[1]) + 0.5 - centre[1]) / max(radii[1], 1e-9)
    return rows[:, None] ** 2 + cols[None, :] ** 2 <= 1.0


def rectangle_mask(shape: tuple[int, int], corner: tuple[float, float], other: tuple[float, float]) -> np.ndarray:
    """Pixels of a frame whose centre lies inside the axis-aligned rectangle of two opposite (row, column) corners."""
    (r1, r2), (c1, c2) = sorted((corner[0], other[0])), sorted((corner[1], other[1]))
    rows, cols = np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5
    return ((rows >= r1) & (rows <= r2))[:, None] & ((cols >= c1) & (cols <= c2))[None, :]


def region_stats(frame: np.ndarray, ds: Dataset, mask: np.ndarray, area_px: float) -> RoiStats | None:
    """Mean, SD, min, max and area of the masked pixels of a grey-scale frame, in modality units (HU for CT);
    None for colour data or a region holding no pixel centre."""
    if is_colour(ds) or not mask.any():
        return None
    values = modality_values(frame, ds)[mask].astype(np.float64)
    spacing = pixel_spacing(ds)
    area_mm2 = area_px * spacing[0] * spacing[1] if spacing is not None else None
    return RoiStats(int(mask.sum()), float(values.mean()), float(values.std()), float(values.min()),
                    float(values.max()), area_mm2, area_px, " HU" if is_hounsfield(ds) else "")


def ellipse_stats(frame: np.ndarray, ds: Dataset, centre: tuple[float, float],
                  radii: tuple[float, float]) -> RoiStats | None:
    """The statistics of an axis-aligned ellipse (see `region_stats`)."""
    return region_stats(frame, ds, ellipse_mask(frame.shape[:2], centre, radii), math.pi * radii[0] * radii[1])


def rectangle_stats(frame: np.ndarray, ds: Dataset, corner: tuple[float, float],
                    other: tuple[float, float]) -> RoiStats | None:
    """The statistics of an axis-aligned rectangle given by two opposite corners (see `region_stats`)."""
    area_px = abs(other[0] - corner[0]) * abs(other[1] - corner[1])
    return region_stats(frame, ds, rectangle_mask(frame.shape[:2], corner, other), area_px)


def _value(v: float) -> str:
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def describe_roi(stats: RoiStats | None) -> str:
    if stats is None:
        return "no statistics (colour image or empty region)"
    area = f"{stats.area_mm2:.1f} mm²" if stats.area_mm2 is not None else f"{stats.area_px:.0f} px² (uncalibrated)"
    u = stats.unit
    return (f"mean {stats.mean:.1f}{u}  SD {stats.sd:.1f}{u}  min {_value(stats.minimum)}{u}  "
            f"max {_value(stats.maximum)}{u}  area {area}")
