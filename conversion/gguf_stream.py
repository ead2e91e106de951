"""Write a GGUF file tensor by tensor, in row blocks, so peak memory does not grow with the model.

`gguf.GGUFWriter` writes the header, metadata and tensor table; the tensor data is then streamed in blocks
(a 545M-element embedding never sits in memory whole). The file is written under a temporary name and
renamed at the end, so an interruption never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from .safetensors_reader import StoredTensor

BLOCK_BYTES = 64 * 1024 * 1024
F32, F16, BF16 = gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16
_ITEMSIZE = {F32: 4, F16: 2, BF16: 2}


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)  # round to nearest even
    return (rounded >> 16).astype(np.uint16)


def _encode(block: np.ndarray, dtype: gguf.GGMLQuantizationType) -> np.ndarray:
    if dtype == F32:
        return np.ascontiguousarray(block, dtype=np.float32)
    if dtype == F16:
        return np.ascontiguousarray(block, dtype=np.float16)
    return f32_to_bf16_bits(block)


@dataclass
class PlannedTensor:
    """One output tensor: where its data comes from and how each row block is transformed."""

    name: str
    source: StoredTensor
    dtype: gguf.GGMLQuantizationType
    transform: Callable[[np.ndarray], np.ndarray] | None = None  # applied per row block; keeps the rows
    rows_multiple: int = 1  # blocks must keep groups of rows together (e.g. heads for Q/K permutation)
    shape: tuple[int, ...] | None = None  # the written shape when the transform changes it (default: the source's)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.shape or self.source.shape

    @property
    def nbytes(self) -> int:
        return math.prod(self.out_shape) * _ITEMSIZE[self.dtype]

    def blocks(self) -> Iterator[np.ndarray]:
        for block in self.source.row_blocks(BLOCK_BYTES, self.rows_multiple):
            yield _encode(self.transform(block) if self.transform else block, self.dtype)


def write(
    path: Path,
    writer: gguf.GGUFWriter,
    tensors: list[PlannedTensor],
    on_bytes: Callable[[int], None] | None = None,
) -> None:
    """Write `writer`'s metadata and the planned tensors to `path`, atomically."""
    for t in tensors:
        raw = np.dtype(np.uint16) if t.dtype == BF16 else np.dtype(np.float16 if t.dtype == F16 else np.float32)
        writer.add_tensor_info(t.name, t.out_shape, raw, t.nbytes, raw_dtype=t.dtype)
    partial = path.with_name(path.name + ".part")
    try:
        writer.write_header_to_file(partial)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        fout = writer.fout[0]
        for t in tensors:
            writer.write_padding(fout, fout.tell())
            written = 0
            for block in t.blocks():
                block.tofile(fout)
                written += block.nbytes
                if on_bytes:
                    on_bytes(block.nbytes)
            if written != t.nbytes:
                raise RuntimeError(f"{t.name}: wrote {written} bytes, expected {t.nbytes}")
            writer.write_padding(fout, t.nbytes)
        writer.flush()
        os.fsync(fout.fileno())
        writer.close()
        os.replace(partial, path)
    except BaseException:
        writer.close()
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
