"""The viewer's image: frames decoded off the GUI thread, rendered with the view's window and orientation, and a
notice in the viewer itself when a frame cannot be shown."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel

from app.studies.pixels import render
from app.studies.view import FrameRenderer, orient
from app.ui.background import run_in_background


def to_qimage(pixels: np.ndarray) -> QImage:
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    if pixels.ndim == 2:
        image = QImage(pixels.data, width, height, pixels.strides[0], QImage.Format.Format_Grayscale8)
    else:
        image = QImage(pixels.data, width, height, pixels.strides[0], QImage.Format.Format_RGB888)
    return image.copy()  # own the memory


def _decode(renderer: FrameRenderer, position: int, path: Path, frame: int):
    """Off the GUI thread: the frame's pixels (kept in the renderer's cache), with where they belong."""
    return position, (path, frame), renderer.cache.get(path, frame, renderer.header(path))


def make_notice(parent) -> QLabel:
    """Why the frame on show cannot be shown; hidden while it can."""
    notice = QLabel(parent)
    notice.setWordWrap(True)
    notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
    notice.setTextFormat(Qt.TextFormat.PlainText)
    notice.setStyleSheet("color: #f2f2f2; background: #3a2323; border: 1px solid #c06060; padding: 12px;")
    notice.hide()
    return notice


class ImageDisplay:
    """Part of `Viewer`: decoding the frame on show and putting its rendered pixels on screen."""

    @property
    def header(self):
        return self.renderer.header(self.frames[self.position][0]) if self.frames else None

    def _request(self, position: int) -> None:
        renderer, (path, frame) = self.renderer, self.frames[position]
        run_in_background(lambda cancel: _decode(renderer, position, path, frame), on_done=self._on_decoded,
                          on_failed=lambda error: self._on_decode_failed(position, (path, frame), error))
        for neighbour in (position + 1, position - 1):  # prefetch into the cache for smooth scrolling
            if 0 <= neighbour < len(self.frames):
                p, f = self.frames[neighbour]
                run_in_background(lambda cancel, n=neighbour, p=p, f=f: _decode(renderer, n, p, f))

    def _on_decoded(self, decoded) -> None:
        position, source, frame = decoded
        on_show = self.frames[position] if position < len(self.frames) else None
        if position != self.position or source != on_show:
            return  # a slice the user has already scrolled past, or one of a series no longer shown
        self._decoded = frame
        self._set_notice("")
        if self.probe_text:  # hovering while scrolling: this slice's value (a new series starts without one)
            self._update_probe()
        if self.view.window is None:
            self.view = replace(self.view, window=self._default_window())
        self._show()
        if self._fit_pending:
            self._fit_pending = False
            self.fit()
        self.frame_changed.emit(self.position, len(self.frames))

    def _on_decode_failed(self, position: int, source: tuple[Path, int], error: Exception) -> None:
        on_show = self.frames[position] if position < len(self.frames) else None
        if position != self.position or source != on_show:
            return
        reason = str(error) or type(error).__name__
        if source[0].name not in reason:  # say which file, as the decoder's own messages do
            reason = f"{source[0].name}: {reason}"
        self._clear_image()  # no pixels of another frame under this one's overlay
        self._set_notice(f"This image cannot be shown.\n\n{reason}")
        self._update_overlay()
        self.message.emit(reason)
        self.frame_changed.emit(self.position, len(self.frames))

    def _clear_image(self) -> None:
        self._decoded = self.shown = None
        self.item.setPixmap(QPixmap())
        self.viewport().update()

    def _set_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))
        self._place_notice()

    def _place_notice(self) -> None:
        if not self.notice.text():
            return
        viewport = self.viewport().geometry()
        width = max(120, min(520, viewport.width() - 40))
        self.notice.setFixedWidth(width)
        self.notice.adjustSize()
        self.notice.move(viewport.center().x() - width // 2, viewport.center().y() - self.notice.height() // 2)

    def _show(self) -> None:
        if self._decoded is None:
            return
        pixels = render(self._decoded, self.header, self.view.window, self.view.invert)
        self.shown = orient(pixels, replace(self.view, region=None))
        self.item.setPixmap(QPixmap.fromImage(to_qimage(self.shown)))
        self.scene().setSceneRect(self.item.boundingRect())
        self._draw_measurements()
        self._update_overlay()
        self.view_changed.emit()
