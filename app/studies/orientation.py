"""Orientation letters for the image edges, from Image Orientation (Patient) and the current view."""

from __future__ import annotations

import numpy as np

from .view import ViewState

_AXES = (("L", "R"), ("P", "A"), ("H", "F"))  # DICOM patient axes: +x left, +y posterior, +z head


def direction_letters(vector: np.ndarray, threshold: float = 0.25) -> str:
    """Up to two letters naming where a direction points (e.g. 'LP'), the dominant axis first."""
    order = np.argsort(-np.abs(vector))
    letters = [_AXES[axis][0 if vector[axis] > 0 else 1] for axis in order[:2] if abs(vector[axis]) > threshold]
    return "".join(letters)


def edge_letters(orientation: tuple[float, ...] | None, view: ViewState | None = None) -> dict[str, str] | None:
    """{'left','right','top','bottom'}: where each edge of the shown image points in the patient."""
    if orientation is None or len(orientation) != 6:
        return None
    view = view or ViewState()
    right = np.asarray(orientation[:3], dtype=float)  # direction of increasing column
    down = np.asarray(orientation[3:], dtype=float)  # direction of increasing row
    if view.flip_horizontal:
        right = -right
    if view.flip_vertical:
        down = -down
    for _ in range(view.rotation // 90):  # a clockwise quarter turn: the old top edge becomes the right edge
        right, down = -down, right
    return {"right": direction_letters(right), "left": direction_letters(-right),
            "bottom": direction_letters(down), "top": direction_letters(-down)}
