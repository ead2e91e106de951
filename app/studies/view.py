"""A view of one frame — window, inversion, rotation, flips and an optional zoomed region — rendered to
the exact pixels shown on screen and given to the model ("what the model sees"). Every kind of image goes
through it: DICOM frames, and PNG/JPEG/TIFF files as one-frame images (`plain_image`)."""

from __future__ import annotations

import functools
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from .frames import FrameCache, PixelDecodeError, read_header
from .pixels import Window, render


@dataclass(frozen=True)
class ViewState:
    window: Window | None = None  # None: the file's own (or the modality default)
    invert: bool = False
    rotation: int = 0  # degrees clockwise: 0, 90, 180, 270
    flip_horizontal: bool = False
    flip_vertical: bool = False
    region: tuple[int, int, int, int] | None = None  # (left, top, right, bottom) in displayed pixels

    def rotated(self, degrees: int) -> ViewState:
        return replace(self, rotation=(self.rotation + degrees) % 360)


def orient(pixels: np.ndarray, view: ViewState) -> np.ndarray:
    """Flips, then clockwise rotation, then the region: the same order the viewer uses."""
    if view.flip_horizontal:
        pixels = pixels[:, ::-1]
    if view.flip_vertical:
        pixels = pixels[::-1]
    if view.rotation:
        pixels = np.rot90(pixels, k=-(view.rotation // 90))
    if view.region is not None:
        left, top, right, bottom = view.region
        pixels = pixels[max(top, 0):bottom, max(left, 0):right]
    return np.ascontiguousarray(pixels)


class FrameRenderer:
    """Renders frames of DICOM files, and PNG/JPEG/TIFF files as one frame, through one bounded frame cache."""

    MAX_HEADERS = 512  # headers can carry large private blocks: keep only the recently used ones

    def __init__(self, cache: FrameCache | None = None):
        self.cache = cache or FrameCache()
        self._headers: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()  # the viewer reads headers from worker threads too

    def header(self, path: Path):
        key = str(path)
        with self._lock:
            if key in self._headers:
                self._headers.move_to_end(key)
                return self._headers[key]
        try:
            header = read_header(Path(path))
        except Exception as exc:  # pydicom raises many kinds for damaged files
            raise PixelDecodeError(f"{Path(path).name}: a damaged DICOM file ({exc})") from None
        with self._lock:
            self._headers[key] = header
            while len(self._headers) > self.MAX_HEADERS:
                self._headers.popitem(last=False)
        return header

    def pixels(self, path: Path, frame: int, view: ViewState = ViewState()) -> np.ndarray:
        ds = self.header(path)
        try:
            n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            value = ds.get("NumberOfFrames")
            raise PixelDecodeError(f"{Path(path).name}: invalid Number of Frames {value!r}") from None
        if not 0 <= frame < n_frames:
            raise IndexError(f"{Path(path).name} has {n_frames} frame(s); frame {frame} does not exist")
        frame_pixels = self.cache.get(Path(path), frame, ds)
        try:
            shown = render(frame_pixels, ds, view.window, view.invert)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # inconsistent display attributes
            raise PixelDecodeError(f"{Path(path).name}: its display attributes are invalid ({exc})") from None
        return orient(shown, view)


def to_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def shown_to_source(x: float, y: float, source_shape: tuple[int, int], view: ViewState) -> tuple[int, int] | None:
    """A point of the shown image (column x, row y) back to (row, column) of the stored frame, or None
    outside it. The map is `orient` applied to the pixel indices themselves, so it is its exact inverse."""
    index = _index_map(tuple(source_shape[:2]), view.rotation, view.flip_horizontal, view.flip_vertical)
    r, c = int(np.floor(y)), int(np.floor(x))
    if not (0 <= r < index.shape[0] and 0 <= c < index.shape[1]):
        return None
    return divmod(int(index[r, c]), source_shape[1])


@functools.lru_cache(maxsize=8)
def _index_map(shape: tuple[int, int], rotation: int, flip_horizontal: bool, flip_vertical: bool) -> np.ndarray:
    view = ViewState(rotation=rotation, flip_horizontal=flip_horizontal, flip_vertical=flip_vertical)
    return orient(np.arange(shape[0] * shape[1], dtype=np.int32).reshape(shape), view)
