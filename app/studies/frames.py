"""Lazy, cached access to the frames of DICOM files: one frame decoded at a time, never a whole series. A PNG,
JPEG or TIFF file is read as a one-frame image with a header of its own (`plain_image`), so that it goes through
the same display pipeline and view."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .plain_image import PlainImageHeader, read_plain_header, read_plain_pixels


class PixelDecodeError(Exception):
    """Pixel data that cannot be decoded here; the message names the file and the transfer syntax."""


def read_header(path: Path) -> Dataset:
    plain = read_plain_header(path)
    return plain if plain is not None else pydicom.dcmread(path, stop_before_pixels=True, force=True)


def decode_frame(path: Path, index: int, header: Dataset | None = None) -> np.ndarray:
    """Decode one frame (YBR comes back as RGB, as pydicom converts it). Reading by path decodes only
    that frame; files it cannot read that way (no file meta, deflated) are read whole as a fallback."""
    if isinstance(header, PlainImageHeader):
        try:
            return read_plain_pixels(path)
        except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for truncated or damaged files
            raise PixelDecodeError(f"{Path(path).name}: the image cannot be decoded ({exc})") from None
    try:
        return pixel_array(str(path), index=index)
    except Exception as first:
        try:
            return _decode_from_dataset(path, index)
        except Exception:
            raise _explain(path, first, header) from None


def _decode_from_dataset(path: Path, index: int) -> np.ndarray:
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:  # no file meta: the encoding pydicom detected
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return pixel_array(ds, index=index)


def _explain(path: Path, exc: Exception, header: Dataset | None) -> PixelDecodeError:
    try:
        header = header if header is not None else read_header(path)
        syntax = header.file_meta.get("TransferSyntaxUID")
    except Exception:
        syntax = None
    name = getattr(syntax, "name", None) or str(syntax or "unknown transfer syntax")
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if syntax is not None and getattr(syntax, "is_compressed", False) and "plugins" in str(exc):
        return PixelDecodeError(f"{path.name}: no installed decoder can read {name} pixel data")
    if any(sign in message.lower() for sign in ("reshape", "truncated", "buffer size must be a multiple")):
        return PixelDecodeError(f"{path.name}: the pixel data is truncated or damaged ({name})")
    return PixelDecodeError(f"{path.name}: the pixel data ({name}) cannot be decoded: {message}")


class FrameCache:
    """Decoded frames by (path, index), least recently used dropped first, bounded in bytes."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._frames: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the viewer prefetches from worker threads

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, path: Path, index: int, header: Dataset | None = None) -> np.ndarray:
        key = (str(path), index)
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
                return frame
        frame = decode_frame(path, index, header)
        with self._lock:
            if key not in self._frames:
                self._frames[key] = frame
                self._bytes += frame.nbytes
            while self._bytes > self.max_bytes and len(self._frames) > 1:
                _, old = self._frames.popitem(last=False)
                self._bytes -= old.nbytes
        return frame
