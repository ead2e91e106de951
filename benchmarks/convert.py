"""Conversion throughput and peak memory on a generated multi-GB checkpoint.

    python benchmarks/convert.py [--size-gb 2.5] [--quant F16] [--keep DIR] [--json]

Builds a random-weight checkpoint in the original HuatuoGPT-Vision layout (Qwen2 vocabulary and CLIP
ViT-L/14-336 shapes, fewer/narrower LLM layers to reach the requested size), converts it with
`huatuo convert` in a child process, and reports the child's peak resident memory next to the size of the
checkpoint's largest tensor: a streaming converter stays far below it whatever the model's size.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from inference import quantization

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=2.5, help="checkpoint size to generate (bf16)")
    parser.add_argument("--quant", default="F16", choices=quantization.TEXT)
    parser.add_argument("--keep", type=Path, help="build the checkpoint here and keep it (reused if present)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from conversion.checkpoint import Checkpoint

    work = Path(tempfile.mkdtemp(prefix="huatuo-bench-"))
    src = args.keep or work / "checkpoint"
    try:
        if not (src / "config.json").is_file():
            # Real 7B widths for the vocabulary, attention and vision; layers chosen to reach the size.
            per_layer = 2 * (2 * 3584 * 3584 + 2 * 3584 * 512 + 3 * 3584 * 18944)
            fixed = 2 * (2 * 152064 * 3584 + 303_000_000)
            layers = max(1, int((args.size_gb * 1e9 - fixed) / per_layer))
            print(f"generating a {layers}-layer checkpoint in {src} …", file=sys.stderr)
            # In its own process: a child forked from a big parent would report the parent's memory as its own.
            build = (
                "from dataclasses import replace; from conversion.shapes import QWEN2_7B; "
                "from tests.support.checkpoints import build_checkpoint; "
                f"build_checkpoint({str(src)!r}, 'qwen2', 'original', "
                f"replace(QWEN2_7B, n_layers={layers}, shard_bytes=1024**3))"
            )
            subprocess.run([sys.executable, "-c", build], check=True, cwd=ROOT)
        ckpt = Checkpoint(src)
        size = sum(t.nbytes for t in ckpt.tensors.values())
        largest = max(ckpt.tensors.values(), key=lambda t: t.nbytes)
        out = work / "out"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "app", "convert", str(src), str(out), "--quant", args.quant],
                       check=True, cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result = {
            "quant": args.quant,
            "size_mb": round(size / 1e6, 1),
            "largest_tensor": largest.name,
            "largest_tensor_mb": round(largest.nbytes / 1e6, 1),
            "largest_tensor_f32_mb": round(largest.n_elements * 4 / 1e6, 1),
            "peak_rss_mb": round(peak_kb / 1024, 1),
            "seconds": round(seconds, 2),
            "mb_per_s": round(size / 1e6 / seconds, 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"checkpoint        {result['size_mb']:.0f} MB (bf16), converted to {args.quant}")
        print(f"largest tensor    {result['largest_tensor']}: {result['largest_tensor_mb']:.0f} MB "
              f"({result['largest_tensor_f32_mb']:.0f} MB as float32)")
        print(f"peak RSS          {result['peak_rss_mb']:.0f} MB (converter process)")
        print(f"throughput        {result['mb_per_s']:.0f} MB/s of checkpoint ({result['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
