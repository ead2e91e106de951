"""`huatuo convert SRC OUT --quant Q`: checkpoint folder -> text GGUF + mmproj GGUF + manifest.json."""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from inference import quantization
from inference.cancellation import Cancelled
from inference.sizes import size_text
from inference.store.manifest import Manifest, ModelFile, sha256_file
from inference.store.models import VERIFICATION_NAME
from inference.store.verified import file_identity, forget_verified, record_verified

from .errors import ConversionError
from .families import open_checkpoint
from .gguf_stream import BF16, F16, F32
from .quantize import quantize

# progress(stage, done, total): stage is a short label, done/total in the stage's own units.
Progress = Callable[[str, int, int], None]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def convert(
    src: str | Path,
    out: str | Path,
    quant: str = quantization.DEFAULT,
    mmproj_quant: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    threads: int | None = None,
) -> Manifest:
    if quant not in quantization.TEXT:
        raise ConversionError(f"unknown quantization {quant!r} (choose from {', '.join(quantization.TEXT)})")
    mmproj_quant = mmproj_quant or quantization.default_projector(quant)
    if mmproj_quant not in quantization.PROJECTOR:
        raise ConversionError(f"the vision projector can be {', '.join(quantization.PROJECTOR)}, not {mmproj_quant!r}")
    ckpt = open_checkpoint(src)  # the model family is detected from config.json and the tensor names
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = _slug(ckpt.path.name)
    text_path = out / f"{name}-{quant}.gguf"
    mmproj_path = out / f"{name}-mmproj-{mmproj_quant}.gguf"
    _check_disk_space(ckpt, out, quant)

    report = progress or (lambda stage, done, total: None)

    def bytes_progress(stage: str, total: int):
        done = 0

        def on_bytes(n: int) -> None:
            nonlocal done
            if cancel is not None and cancel.is_set():
                raise Cancelled("conversion cancelled")
            done += n
            report(stage, done, total)

        return on_bytes

    text_bytes = sum(t.n_elements for n, t in ckpt.tensors.items() if n.startswith("text.")) * (
        4 if quant == "F32" else 2
    )
    vision_bytes = sum(t.n_elements for n, t in ckpt.tensors.items() if not n.startswith("text.")) * (
        4 if mmproj_quant == "F32" else 2
    )
    intermediates: list[Path] = []
    # A folder being converted again loses its old manifest first: it would describe files being replaced. So do
    # the last `huatuo verify` of the earlier files (verify.json) and their verified stamps.
    (out / "manifest.json").unlink(missing_ok=True)
    (out / VERIFICATION_NAME).unlink(missing_ok=True)
    forget_verified(out)
    try:
        if not quantization.uses_quantizer(quant):
            ckpt.write_text_gguf(text_path, F32 if quant == "F32" else F16,
                                 bytes_progress("text model", text_bytes), name=ckpt.path.name)
        else:
            # Quantize from an exact BF16 copy of the checkpoint (bf16 -> f16 could lose range).
            staging = out / f".{name}-BF16.staging.gguf"
            intermediates.append(staging)
            ckpt.write_text_gguf(staging, BF16, bytes_progress("text model", text_bytes), name=ckpt.path.name)
            quantize(staging, text_path, quant, threads,
                     lambda i, n: report(f"quantizing to {quant}", i, n), cancel)
        if quantization.uses_quantizer(mmproj_quant):
            staging = out / f".{name}-mmproj-F16.staging.gguf"
            intermediates.append(staging)
            ckpt.write_mmproj_gguf(staging, F16, bytes_progress("vision projector", vision_bytes), name=ckpt.path.name)
            quantize(staging, mmproj_path, mmproj_quant, threads, None, cancel)
        else:
            ckpt.write_mmproj_gguf(mmproj_path, F32 if mmproj_quant == "F32" else F16,
                                   bytes_progress("vision projector", vision_bytes), name=ckpt.path.name)
        report("hashing", 0, 2)
        identities = (file_identity(text_path), file_identity(mmproj_path))
        manifest = Manifest(
            name=ckpt.path.name,
            family=ckpt.FAMILY,
            text_architecture=ckpt.text.family,
            text=_file_entry(text_path, quant),
            mmproj=_file_entry(mmproj_path, mmproj_quant),
            context_length=ckpt.text.context_length,
            hidden_size=ckpt.text.hidden_size,
            **ckpt.manifest_fields(),
            source=ckpt.identity(),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        manifest.write(out)
        for path, entry, identity in zip((text_path, mmproj_path), (manifest.text, manifest.mmproj), identities,
                                         strict=True):
            if file_identity(path) == identity:  # hashed as it lies: its first load need not read it again
                record_verified(out, path, entry.sha256, identity)
        report("hashing", 2, 2)
        return manifest
    except BaseException:
        # Cancelled or failed: no output of this run may remain that looks finished.
        for path in (text_path, mmproj_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    finally:
        for path in intermediates:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _file_entry(path: Path, quant: str) -> ModelFile:
    return ModelFile(path.name, quant, path.stat().st_size, sha256_file(path))


def _check_disk_space(ckpt, out: Path, quant: str) -> None:
    weights = sum(t.n_elements for t in ckpt.tensors.values())
    staging_copy = weights * 2 if quantization.uses_quantizer(quant) else 0  # the BF16 copy quantized from
    needed = weights * quantization.TYPES[quant].bytes_per_weight + staging_copy
    free = shutil.disk_usage(out).free
    if free < needed * 1.05:
        raise ConversionError(
            f"not enough disk space in {out}: converting needs about {size_text(needed)} "
            f"(including a temporary copy), {size_text(free)} are free"
        )
