"""The viewer's geometry: fit, zoom, rotation, flips and inversion, and the part of the image the model is given
(`model_view_png()`: the same pixels the widget shows, optionally only the zoomed region)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import QPointF, Qt

from app.studies.view import ViewState, to_png


class ViewTransform:
    """Part of `Viewer`: how the image is placed, turned and mirrored on screen."""

    def fit(self) -> None:
        if not self.item.pixmap().isNull():
            self.fitInView(self.item, Qt.AspectRatioMode.KeepAspectRatio)
            self._fitted = True
            self._zoom_changed()

    def actual_size(self) -> None:
        self.resetTransform()
        self._fitted = False
        self._zoom_changed()

    def zoom_by(self, factor: float, at: QPointF | None = None) -> None:
        """Zoomed by `factor`; about the viewport point `at` when given (what is under it stays under it)."""
        if at is None:
            self.scale(factor, factor)
        else:
            under = self.mapToScene(at.toPoint())
            anchor = self.transformationAnchor()
            self.setTransformationAnchor(self.ViewportAnchor.NoAnchor)
            self.scale(factor, factor)
            self.setTransformationAnchor(anchor)
            moved = self.mapFromScene(under) - at.toPoint()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + moved.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() + moved.y())
        self._fitted = False
        self._zoom_changed()

    def zoom(self) -> float:
        return self.transform().m11()

    def _zoom_changed(self) -> None:
        self._place_labels()  # they keep their size on screen while their anchors move apart or together
        self._update_overlay()

    def rotate_view(self, degrees: int = 90) -> None:
        self.view = self.view.rotated(degrees)
        self._show()
        self.fit()

    def flip(self, horizontal: bool) -> None:
        key = "flip_horizontal" if horizontal else "flip_vertical"
        self.view = replace(self.view, **{key: not getattr(self.view, key)})
        self._show()

    def toggle_invert(self) -> None:
        self.view = replace(self.view, invert=not self.view.invert)
        self._show()

    def reset(self) -> None:
        self.view = ViewState()
        self.set_window(None)
        self.fit()

    # --- what the model sees -------------------------------------------------------------------
    def visible_region(self) -> tuple[int, int, int, int]:
        """The part of the shown image inside the viewport, in image pixels."""
        rect = self.mapToScene(self.viewport().rect()).boundingRect().intersected(self.item.boundingRect())
        return int(rect.left()), int(rect.top()), int(np.ceil(rect.right())), int(np.ceil(rect.bottom()))

    def model_view(self, zoomed_region: bool = False) -> np.ndarray:
        if self.shown is None:
            raise ValueError("no image is shown")
        if not zoomed_region:
            return self.shown
        left, top, right, bottom = self.visible_region()
        return self.shown[top:bottom, left:right]

    def model_view_png(self, zoomed_region: bool = False) -> bytes:
        return to_png(self.model_view(zoomed_region))
