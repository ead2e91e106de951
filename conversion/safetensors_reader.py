"""Lazy, torch-free reading of safetensors files, bf16 included.

numpy has no bfloat16, so the `safetensors` package cannot hand bf16 tensors to numpy; the format is a JSON
header followed by raw little-endian data, so reading it directly is simple and lets every tensor be
read in row blocks with plain file reads (no memory map, so resident memory stays bounded).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import ConversionError

_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits, widened to float32 on read
    "F64": np.dtype("<f8"),
    # integer buffers (e.g. position ids) are listed but never converted
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
}
MAX_HEADER_BYTES = 100 * 1024 * 1024


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


@dataclass(frozen=True)
class StoredTensor:
    """One tensor inside a safetensors file, read on demand."""

    path: Path
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int  # absolute byte offset in the file

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.n_elements * _DTYPES[self.dtype].itemsize

    def _read(self, first_element: int, count: int) -> np.ndarray:
        raw_dtype = _DTYPES[self.dtype]
        with open(self.path, "rb") as f:
            f.seek(self.offset + first_element * raw_dtype.itemsize)
            data = np.fromfile(f, dtype=raw_dtype, count=count)
        if data.size != count:
            raise ConversionError(f"{self.path.name}: tensor {self.name} is cut short (file truncated?)")
        if self.dtype == "BF16":
            return bf16_to_f32(data)
        return data.astype(np.float32, copy=False)

    def rows(self, start: int, stop: int) -> StoredTensor:
        """The rows start..stop-1 (first axis) as a tensor of their own: rows are contiguous, so this is
        only another offset and shape (e.g. the thirds of a fused q/k/v projection)."""
        if not 0 <= start < stop <= self.shape[0]:
            raise ValueError(f"{self.name}: rows {start}:{stop} are outside its {self.shape[0]} rows")
        row_bytes = math.prod(self.shape[1:]) * _DTYPES[self.dtype].itemsize
        return replace(self, name=f"{self.name}[{start}:{stop}]", shape=(stop - start, *self.shape[1:]),
                       offset=self.offset + start * row_bytes)

    def read(self) -> np.ndarray:
        """The whole tensor as float32."""
        return self._read(0, self.n_elements).reshape(self.shape)

    def row_blocks(self, max_bytes: int, multiple_of: int = 1) -> Iterator[np.ndarray]:
        """float32 blocks of whole rows (first axis), each about max_bytes at most, a multiple of
        `multiple_of` rows long, so that memory stays bounded whatever the tensor's size."""
        if len(self.shape) < 2:
            yield self.read()
            return
        row_elements = math.prod(self.shape[1:])
        rows = max(multiple_of, (max_bytes // (row_elements * 4)) // multiple_of * multiple_of)
        for start in range(0, self.shape[0], rows):
            stop = min(self.shape[0], start + rows)
            block = self._read(start * row_elements, (stop - start) * row_elements)
            yield block.reshape((stop - start, *self.shape[1:]))


def read_header(path: Path) -> dict[str, StoredTensor]:
    """The tensors of one safetensors file, checked against the file's real size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ConversionError(f"{path.name} is not a safetensors file (only {size} bytes)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise ConversionError(f"{path.name} is not a safetensors file or is truncated (bad header length)")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConversionError(f"{path.name}: the safetensors header is not valid JSON ({exc})") from None
    header.pop("__metadata__", None)
    data_start = 8 + header_len
    tensors: dict[str, StoredTensor] = {}
    for name, info in header.items():
        dtype = info.get("dtype")
        if dtype not in _DTYPES:
            raise ConversionError(f"{path.name}: tensor {name} has dtype {dtype}, which is not supported")
        begin, end = info["data_offsets"]
        tensor = StoredTensor(path, name, dtype, tuple(info["shape"]), data_start + begin)
        if end - begin != tensor.nbytes:
            raise ConversionError(f"{path.name}: tensor {name} has a size that does not match its shape")
        if data_start + end > size:
            raise ConversionError(
                f"{path.name} is truncated: tensor {name} ends at byte {data_start + end:,} "
                f"but the file has {size:,} bytes"
            )
        tensors[name] = tensor
    return tensors


def read_checkpoint_tensors(path: Path) -> dict[str, StoredTensor]:
    """Every tensor of a checkpoint folder (sharded with an index, or plain *.safetensors files), with
    missing shards and tensors the index names but no shard holds reported by name."""
    index_path = path / "model.safetensors.index.json"
    if index_path.is_file():
        weight_map: dict[str, str] = json.loads(index_path.read_text())["weight_map"]
        shard_names = sorted(set(weight_map.values()))
        missing = [n for n in shard_names if not (path / n).is_file()]
        if missing:
            raise ConversionError(f"{path}: shard {missing[0]} named in model.safetensors.index.json is missing")
    else:
        shard_names = sorted(p.name for p in path.glob("*.safetensors"))
        weight_map = {}
        if not shard_names:
            raise ConversionError(f"{path}: no .safetensors weights found (other weight formats are not supported)")
    stored: dict[str, StoredTensor] = {}
    for name in shard_names:
        stored.update(read_header(path / name))
    absent = [k for k in weight_map if k not in stored]
    if absent:
        raise ConversionError(f"{path}: tensor {absent[0]} is listed in the index but missing from its shard")
    return stored
