"""`huatuo convert` and `huatuo verify`: their options and what they print.

The app's command line imports this module only when one of the two commands runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

from inference import quantization
from inference.sizes import size_text

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 130


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="checkpoint folder (original or -hf layout)")
    parser.add_argument("out", help="output folder (text GGUF, mmproj GGUF, manifest.json)")
    parser.add_argument("--quant", default=quantization.DEFAULT, choices=quantization.TEXT)
    parser.add_argument("--mmproj-quant", choices=quantization.PROJECTOR, help="default F16 (F32 with --quant F32)")
    parser.add_argument("--threads", type=int, help="quantizer threads (default: all cores)")


def add_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="the checkpoint folder it was converted from")
    parser.add_argument("out", help="the converted folder (its manifest's model family chooses the reference)")
    parser.add_argument("--tokens", type=int, default=24, help="greedy tokens to compare")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run_convert(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from inference.cancellation import Cancelled

    from .convert import convert
    from .errors import ConversionError

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            unit = "B" if stage in ("text model", "vision projector") else "tensor"
            bar = bars[stage] = tqdm(total=total, desc=stage, unit=unit, unit_scale=unit == "B", leave=True)
        bar.update(done - bar.n)

    cancel = threading.Event()
    try:
        manifest = convert(args.src, args.out, args.quant, args.mmproj_quant, progress, cancel, args.threads)
    except (ConversionError, FileNotFoundError, PermissionError, OSError) as exc:
        _close(bars)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, Cancelled):
        _close(bars)
        print("cancelled: no output file was left under its final name", file=sys.stderr)
        return EXIT_CANCELLED
    _close(bars)
    print(f"{manifest.text.file}  ({size_text(manifest.text.size_bytes)}, {manifest.text.quantization})")
    print(f"{manifest.mmproj.file}  ({size_text(manifest.mmproj.size_bytes)}, {manifest.mmproj.quantization})")
    print("manifest.json written")
    return EXIT_OK


def _close(bars) -> None:
    for bar in bars.values():
        bar.close()


def run_verify(args: argparse.Namespace) -> int:
    from .errors import ConversionError
    from .verify import verify

    try:
        report = verify(args.src, args.out, new_tokens=args.tokens)
    except (ConversionError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        from . import quality

        r = report
        print(f"quantization         {r.quantization}, vision projector {r.mmproj_quantization} "
              f"(KV cache {r.kv_cache})")
        print(f"tokenization         {r.tokenization_mismatches} of {r.tokenization_texts} texts differ "
              f"(reference: {r.tokenizer_reference})")
        print(f"text logits          {r.logit_positions} positions, max |diff| {r.logits_max_abs_diff:.3g}")
        print(f"greedy generation    {'identical' if r.greedy_match else 'differs'} "
              f"({len(r.greedy_tokens_llama)} tokens)")
        if hasattr(r, "follow_up_match"):  # Qwen2.5-VL: a two-image follow-up from llama.cpp's KV cache
            print(f"two-image follow-up  {'identical' if r.follow_up_match else 'differs'} "
                  f"({len(r.follow_up_tokens_llama)} tokens)")
        print(f"image embeddings     {r.image_tokens} tokens")
        print()
        print(f"{'measure':<20} {'value':>12}   threshold")
        limits = {limit.measure: limit for limit in quality.thresholds(r.quantization, r.mmproj_quantization)}
        for measure in quality.MEASURES:
            value, limit = getattr(r, measure), limits.get(measure)
            shown = format(value, {"kld_mean": ".4g", "kld_p99": ".4g", "same_top_token": ".4f"}.get(measure, ".7f"))
            if limit is None:
                print(f"{measure:<20} {shown:>12}   (none)")
            else:
                bound = f"{'<=' if limit.bound == 'max' else '>='} {limit.value:g}"
                print(f"{measure:<20} {shown:>12}   {bound:<12} {'ok' if limit.holds(value) else 'FAIL'}")
        print()
        for note in r.notes:
            print(f"note: {note}")
        for failure in r.failures:
            print(f"FAILED: {failure}")
        print("PASSED" if r.passed else "FAILED")
    return EXIT_OK if report.passed else EXIT_FAILED
