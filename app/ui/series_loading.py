"""A series that grows or is re-sorted while it is on screen (a big folder being read): the viewer keeps the image
it shows (the same file and frame: the same SOP instance) and the user's window, zoom and rotation."""

from __future__ import annotations

from pathlib import Path

from app.studies.scan import Library, Series
from app.ui.viewer import Viewer


def series_with_uid(library: Library, uid: str | None) -> Series | None:
    return next((s for s in library.all_series() if s.is_image and s.uid == uid), None) if uid else None


def keep_place(viewer: Viewer, frames: list[tuple[Path, int]]) -> bool:
    """Give the viewer this list of frames in place of its own, with the frame on screen still on screen and nothing
    decoded again. False when the frame on screen is not in the list (then nothing changed)."""
    on_screen = viewer.frames[viewer.position] if viewer.frames else None
    if on_screen is None or on_screen not in frames:
        return False
    viewer.frames = list(frames)
    viewer.position = frames.index(on_screen)
    viewer.frame_changed.emit(viewer.position, len(viewer.frames))
    return True
