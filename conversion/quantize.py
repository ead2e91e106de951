"""Quantization through llama.cpp's own quantizer, in a child process.

The native quantizer cannot be interrupted from Python and can abort on a bad file, so it runs in a
child process: cancelling kills it, a crash becomes an error, and the caller (the app's GUI, the CLI)
stays up. Progress comes from the quantizer's "[ i/ n]" log lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from inference import quantization
from inference.cancellation import Cancelled

from .errors import ConversionError

_PROGRESS = re.compile(rb"\[\s*(\d+)/\s*(\d+)\]")


def quantize(
    src: Path,
    dst: Path,
    quant: str,
    threads: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> None:
    """Quantize the GGUF `src` into `dst` (written as dst.part, then renamed)."""
    partial = dst.with_name(dst.name + ".part")
    command = [sys.executable, "-m", "conversion.quantize", str(src), str(partial), quant, str(threads or 0)]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    log = bytearray()

    def read_log() -> None:  # the quantizer logs one "[ i/ n] tensor ..." line per tensor
        while chunk := process.stderr.read1(4096):
            log.extend(chunk)
            for match in _PROGRESS.finditer(chunk):
                if on_progress:
                    on_progress(int(match.group(1)), int(match.group(2)))

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        while True:
            try:
                code = process.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("quantization cancelled") from None
        reader.join()
        if code != 0:
            tail = log.decode(errors="replace").strip().splitlines()[-3:]
            raise ConversionError(f"quantizing {src.name} to {quant} failed (exit {code}): {' / '.join(tail)}")
        os.replace(partial, dst)
    except BaseException:
        process.kill()
        process.wait()
        partial.unlink(missing_ok=True)
        raise


def _main(src: str, dst: str, quant: str, threads: str) -> int:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = quantization.TYPES[quant].llama_ftype
    params.nthread = int(threads)
    return int(llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)) != 0)


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:5]))
